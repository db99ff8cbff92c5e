"""llama.cpp in-process: the `speculative` preset's pair (Qwen2.5-Coder 1.5B drafted by the
0.5B) answers exactly as the 1.5B alone does at temperature 0: drafting changes speed only;
and each conversation's prompt stays cached in its own slot, with the opening of its next
message once readied; a more urgent request goes first, and the one that stepped aside
for it goes on as if it had not."""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from voxgate import model_files
from voxgate.catalog import Role
from voxgate.config import PRESETS, Settings
from voxgate.engines.base import ChatMessage, ChatRequest, ChatResult
from voxgate.engines.llamacpp import LlamaCppLLM
from voxgate.scheduler import due_at

MODEL, DRAFT = PRESETS["speculative"]
QUESTIONS = ("What is the capital of France?", "Name three planets.")


def _path(name: str):
    return model_files.resolve(name, Role.LLM, Settings().models_dir)[1]


def _answers(llm: LlamaCppLLM) -> list[str]:
    return [
        llm.generate(ChatRequest((ChatMessage("user", q),), max_tokens=40, temperature=0.0)).text for q in QUESTIONS
    ]


@pytest.fixture(scope="module")
def plain_answers() -> list[str]:
    return _answers(LlamaCppLLM(MODEL, _path(MODEL), threads=1, context=1024, slots=1))


def test_the_drafted_model_answers_as_the_model_alone(plain_answers):
    drafted = LlamaCppLLM(MODEL, _path(MODEL), threads=1, context=1024, slots=1, draft=_path(DRAFT))
    assert _answers(drafted) == plain_answers
    assert "paris" in plain_answers[0].lower()


def test_the_preset_names_the_pair_and_an_explicit_model_wins():
    speculative = Settings(preset="speculative").llm
    assert (speculative.model, speculative.draft_model) == (MODEL, DRAFT)
    assert Settings(preset="speculative", llm={"model": "my.gguf"}).llm.model == "my.gguf"
    assert Settings(preset="speculative", llm={"draft_model": None}).llm.draft_model is None
    assert Settings().llm.draft_model is None


def _conversing() -> tuple[LlamaCppLLM, ChatMessage, Callable[..., ChatResult]]:
    """The default model in 2 slots, each started with the system prompt; and `ask`, which
    answers the messages after that system prompt at temperature 0."""
    name = Settings().llm.model
    system = ChatMessage("system", Settings().system_prompt)
    llm = LlamaCppLLM(name, _path(name), threads=1, context=1024, slots=2, prefix=(system,))
    llm.warm_up()

    def ask(*messages: ChatMessage) -> ChatResult:
        return llm.generate(ChatRequest((system, *messages), max_tokens=20, temperature=0.0, seed=0))

    return llm, system, ask


def test_slots_start_with_the_system_prompt_and_a_conversation_keeps_its_own():
    _, _, ask = _conversing()
    question = ChatMessage("user", "What is the capital of France?")
    first = ask(question)
    assert first.cached_tokens >= 20  # the system prompt, evaluated at warm-up
    other = ask(ChatMessage("user", "Name a river in Europe."))  # a second conversation, same system prompt
    assert other.cached_tokens >= 20
    follow_up = ask(question, ChatMessage("assistant", first.text), ChatMessage("user", "And of Spain?"))
    # Its history is still cached: the other conversation did not take its slot.
    assert follow_up.cached_tokens >= first.prompt_tokens


def test_a_readied_follow_up_finds_the_opening_of_its_message_cached_and_is_answered_as_usual():
    llm, system, ask = _conversing()

    def follow_up(question: str, *, readied: bool):
        asked = ChatMessage("user", question)
        answered = (asked, ChatMessage("assistant", ask(asked).text))
        if readied:
            llm.prefill((system, *answered, ChatMessage("user", "")))
        return ask(*answered, ChatMessage("user", "And of Spain?"))

    plain = follow_up("What is the capital of Italy?", readied=False)
    readied = follow_up("What is the capital of France?", readied=True)
    # The same follow-up words; readied, the template's opening of the message was already evaluated.
    assert plain.prompt_tokens - plain.cached_tokens - (readied.prompt_tokens - readied.cached_tokens) >= 3
    assert "madrid" in readied.text.lower() and "madrid" in plain.text.lower()


def test_a_question_prefilled_while_spoken_finds_its_opening_cached_and_is_answered_as_usual():
    llm, system, ask = _conversing()
    plain = ask(ChatMessage("user", "What is the capital of Italy?"))
    llm.prefill((system, ChatMessage("user", "What is the capital")))
    prefilled = ask(ChatMessage("user", "What is the capital of Spain?"))
    # The same number of question words; prefilled, its first four were already evaluated.
    assert prefilled.cached_tokens - plain.cached_tokens >= 4
    assert "rome" in plain.text.lower() and "madrid" in prefilled.text.lower()


def test_a_more_urgent_reply_goes_first_and_the_one_that_stepped_aside_reads_as_if_it_had_not():
    llm, system, _ = _conversing()
    long = ChatRequest(
        (system, ChatMessage("user", "Name the planets of the solar system, one by one.")),
        max_tokens=40,
        temperature=0.0,
        seed=0,
    )
    capital = ChatMessage("user", "What is the capital of France?")
    urgent = ChatRequest((system, capital), max_tokens=20, temperature=0.0)
    alone = llm.generate(long)
    now = time.monotonic()
    written: list[str] = []  # which reply wrote each piece, in order
    five_pieces = threading.Event()

    def write(name: str, request: ChatRequest, due: float) -> ChatResult:
        def on_delta(_: str) -> bool:
            written.append(name)
            if written.count(name) == 5:
                five_pieces.set()
            return False

        with due_at(due):
            return llm.generate(request, on_delta=on_delta)

    with ThreadPoolExecutor(2) as pool:
        later = pool.submit(write, "later", long, now + 10)  # e.g. a later clause
        assert five_pieces.wait(60)
        first = pool.submit(write, "first", urgent, now)  # e.g. another user's first clause
        assert "paris" in first.result(60).text.lower()
        stepped_aside = later.result(60)
    assert stepped_aside.text == alone.text
    # Once the urgent reply had begun, the other wrote at most the piece it was decoding.
    begun = written.index("first")
    assert written[begun:].count("later") >= 5
    assert written[begun : begun + written.count("first") + 1].count("later") <= 1
    # And it is counted as if written in one go.
    counts = (stepped_aside.prompt_tokens, stepped_aside.completion_tokens)
    assert counts == (alone.prompt_tokens, alone.completion_tokens)
