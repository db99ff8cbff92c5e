"""Language codes as Whisper reports them ("fr", "zh") and as voices name them ("fr-fr", "en_US")."""

from functools import cache

import langcodes


def base_language(code: str) -> str:
    """The language without region or script: "en_US" -> "en", "pt-BR" -> "pt"."""
    return code.replace("_", "-").split("-")[0].lower()


@cache
def language_name(code: str) -> str:
    """The language's English name, for telling the LLM which language to answer in."""
    try:
        return langcodes.Language.get(code.replace("_", "-")).display_name()
    except (langcodes.LanguageTagError, ValueError):
        return code
