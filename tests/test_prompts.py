from voxgate.engines.base import ChatMessage
from voxgate.prompts import estimate_tokens, fit_history, system_prompt


def test_a_reply_not_in_english_is_asked_for_first_thing():
    assert system_prompt("Be brief.", "fr") == "Always answer in French, never in another language. Be brief."
    assert system_prompt("Be brief.", "en-us") == system_prompt("Be brief.", None) == "Be brief."


def test_fit_history_drops_oldest_turns_first_and_keeps_system_and_question():
    history = tuple(
        ChatMessage(role, f"{role} message number {i} " + "word " * 20)
        for i in range(10)
        for role in ("user", "assistant")
    )
    everything = fit_history("sys", history, "question?", budget=100_000)
    assert len(everything) == 22 and everything[0].content == "sys" and everything[-1].content == "question?"

    per_pair = estimate_tokens(history[0].content) * 2
    trimmed = fit_history("sys", history, "question?", budget=3 * per_pair + 20)
    assert trimmed[0] == ChatMessage("system", "sys") and trimmed[-1] == ChatMessage("user", "question?")
    kept = trimmed[1:-1]
    assert kept == list(history[-len(kept) :])  # the newest, in order
    assert 2 <= len(kept) < 8 and kept[0].role == "user"

    assert fit_history("sys", history, "question?", budget=0) == [
        ChatMessage("system", "sys"),
        ChatMessage("user", "question?"),
    ]
