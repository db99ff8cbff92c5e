"""Language codes as Whisper reports them ("fr", "zh") and as voices name them ("fr-fr", "en_US")."""

from functools import cache

import langcodes


def base_language(code: str) -> str:
    """The language without region or script: "en_US" -> "en", "pt-BR" -> "pt"."""
    return code.replace("_", "-").split("-")[0].lower()


def language_code(language: str) -> str:
    """A language as a code: OpenAI's transcription API names it ("french" -> "fr")."""
    if len(language) <= 3 or "-" in language or "_" in language:
        return language
    try:
        return langcodes.find(language).language or language
    except LookupError:
        return language


@cache
def language_name(code: str) -> str:
    """The language's English name, for telling the LLM which language to answer in."""
    try:
        return langcodes.Language.get(code.replace("_", "-")).display_name()
    except (langcodes.LanguageTagError, ValueError):
        return code
