from voxgate.pipeline import speakable


def test_speakable_drops_markdown_but_keeps_words():
    assert speakable("**Paris** is the `capital`.\n# Notes\n> quoted") == "Paris is the capital . Notes quoted"


def test_fit_history_drops_oldest_turns_first_and_keeps_system_and_question():
    from voxgate.engines.base import ChatMessage
    from voxgate.pipeline import estimate_tokens, fit_history

    history = tuple(ChatMessage(role, f"{role} message number {i} " + "word " * 20)
                    for i in range(10) for role in ("user", "assistant"))
    everything = fit_history("sys", history, "question?", budget=100_000)
    assert len(everything) == 22 and everything[0].content == "sys" and everything[-1].content == "question?"

    per_pair = estimate_tokens(history[0].content) * 2
    trimmed = fit_history("sys", history, "question?", budget=3 * per_pair + 20)
    assert trimmed[0] == ChatMessage("system", "sys") and trimmed[-1] == ChatMessage("user", "question?")
    kept = trimmed[1:-1]
    assert kept == list(history[-len(kept):])  # the newest, in order
    assert 2 <= len(kept) < 8 and kept[0].role == "user"

    assert fit_history("sys", history, "question?", budget=0) == [
        ChatMessage("system", "sys"), ChatMessage("user", "question?")]
