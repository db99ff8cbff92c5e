"""What the LLM is asked: the system prompt for the reply's language, and the history
fitted to the model's context."""

from voxgate.engines.base import ChatMessage
from voxgate.languages import base_language, language_name


def system_prompt(base: str, language: str | None) -> str:
    """`base`, led by an instruction to answer in `language` when that is not English: small
    models drift into English unless told first thing, and the user hears their own language."""
    if language and base_language(language) != "en":
        return f"Always answer in {language_name(language)}, never in another language. {base}"
    return base


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate (English BPE averages ~4 characters a token; a CJK
    character is about one), so the trimmed prompt usually fits the context. When it does
    not, the engine's own count decides (`Pipeline._reply`)."""
    wide = sum(1 for char in text if char >= "\u2e80")
    return (len(text) - wide) // 3 + wide + 4


def fit_history(system: str, history: tuple[ChatMessage, ...], question: str, budget: int) -> list[ChatMessage]:
    """System prompt + as many of the newest earlier messages as fit `budget` tokens + the question.

    The oldest messages are dropped first, a user/assistant pair at a time; the system
    prompt and the new question are always kept.
    """
    remaining = budget - estimate_tokens(system) - estimate_tokens(question)
    kept: list[ChatMessage] = []
    for message in reversed(history):
        remaining -= estimate_tokens(message.content)
        if remaining < 0:
            break
        kept.append(message)
    if kept and kept[-1].role == "assistant":
        kept.pop()  # never start the visible history with an answer to a dropped question
    return [ChatMessage("system", system), *reversed(kept), ChatMessage("user", question)]
