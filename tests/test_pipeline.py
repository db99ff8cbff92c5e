import asyncio
import time
from contextlib import contextmanager

import pytest


class CharCountingLLM:
    """Counts a token per character (more than `estimate_tokens` assumes) and refuses, as
    llama.cpp does, a prompt longer than its context."""

    name = "fake-llm"

    def __init__(self, context: int, reply: str = "Fine.", delay: float = 0.0):
        self.context, self.reply, self.delay = context, reply, delay
        self.prompts: list[tuple] = []  # the messages of every call
        self.emitted = 0

    def generate(self, request, on_delta=None):
        from voxgate.engines.base import ChatResult

        self.prompts.append(request.messages)
        tokens = sum(len(m.content) for m in request.messages)
        if tokens > self.context:
            from voxgate.errors import ContextExceeded

            raise ContextExceeded("too long", prompt_tokens=tokens, context=self.context)
        for word in self.reply.split(" "):
            time.sleep(self.delay)
            self.emitted += 1
            if on_delta is not None and on_delta(word + " "):
                return ChatResult("", "cancelled")
        return ChatResult(self.reply, "stop", tokens)


class ReadyingLLM(CharCountingLLM):
    """Also readies follow-ups: each waits until the test lets it finish, and is recorded."""

    def __init__(self, **kwargs):
        import threading

        super().__init__(context=10_000, **kwargs)
        self.readied: list[tuple] = []
        self.let_finish = threading.Event()

    def prefill(self, messages):
        self.let_finish.wait(10)
        self.readied.append(messages)


class HeardAs:
    """Speech-to-text whose transcript is the first of `readings` (nothing if none)."""

    name = "fake-stt"

    def __init__(self, *readings: str):
        self.readings = readings

    def transcribe(self, samples, *, language=None, prompt=None, temperature=0.0):
        from voxgate.engines.base import Transcription

        return Transcription(self.readings[0] if self.readings else "", "en", len(samples) / 16_000)


class Drafting(HeardAs):
    def draft(self, samples, *, language=None):
        from voxgate.engines.base import Transcription

        return Transcription("In a", "en", len(samples) / 16_000)


class HearingAlternatives(HeardAs):
    def alternatives(self, samples, *, language=None, prompt=None):
        from voxgate.engines.base import Readings

        return Readings(self.readings, sure=False)


class OneModel:
    """A registry holding one LLM or one STT: all the pipeline needs for text turns, or to hear."""

    def __init__(self, llm=None, stt=None):
        from voxgate.catalog import Role

        self.llm, self.stt = llm, stt
        self.defaults = {Role.LLM: llm.name} if llm else {Role.STT: stt.name}

    @contextmanager
    def use_llm(self, name=None):
        yield self.llm

    @contextmanager
    def use_stt(self, name=None):
        yield self.stt


def text_pipeline(llm, context: int, *, slots: int | None = None, queue_size: int = 8):
    from voxgate.config import Settings
    from voxgate.pipeline import Pipeline

    slotted = {"slots": slots} if slots else {}
    settings = Settings(llm={"context": context, **slotted}, max_tokens=100, warmup=False, queue_size=queue_size)
    return Pipeline(OneModel(llm), settings)


def long_history(pairs: int, chars: int):
    from voxgate.engines.base import ChatMessage

    return tuple(
        ChatMessage(role, f"{i}{role[0]}" + "x" * chars) for i in range(pairs) for role in ("user", "assistant")
    )


def test_history_the_engine_counts_longer_than_estimated_is_trimmed_by_its_count():
    from voxgate.turn_events import TurnDone, TurnInput

    llm = CharCountingLLM(context=1000)
    pipeline = text_pipeline(llm, context=1000)
    history = long_history(10, 100)
    request = TurnInput(text="And now?", system="sys", history=history)

    async def both():
        buffered = await pipeline.turn(request)
        streamed = [event async for event in pipeline.stream_turn(request)][-1]
        return buffered, streamed

    buffered, streamed = asyncio.run(asyncio.wait_for(both(), 30))
    pipeline.close()
    assert buffered.reply == "Fine." and isinstance(streamed, TurnDone) and streamed.result.reply == "Fine."
    answered = llm.prompts[1]  # the first call was refused, the second fitted by the engine's count
    assert sum(len(m.content) for m in answered) <= 1000
    assert answered[0].content == "sys" and answered[-1].content == "And now?"
    kept = answered[1:-1]
    assert 2 <= len(kept) < len(history) and kept == history[-len(kept) :] and kept[0].role == "user"


@pytest.mark.parametrize("streamed", [False, True])
def test_a_question_longer_than_the_context_is_refused_not_answered_empty(streamed):
    from voxgate.errors import ContextExceeded
    from voxgate.turn_events import TurnInput

    pipeline = text_pipeline(CharCountingLLM(context=600), context=600)
    request = TurnInput(text="why " * 200, system="sys", history=long_history(2, 50))

    async def answer():
        if streamed:
            return [event async for event in pipeline.stream_turn(request)]
        return await pipeline.turn(request)

    with pytest.raises(ContextExceeded) as refused:
        asyncio.run(asyncio.wait_for(answer(), 30))
    pipeline.close()
    assert refused.value.status == 400 and refused.value.code == "question_too_long"
    assert "600 tokens" in refused.value.message


def test_a_buffered_answer_nobody_waits_for_stops_the_model_and_is_not_readied():
    from voxgate.engines.base import ChatMessage

    llm = ReadyingLLM(reply="word " * 500, delay=0.01)
    llm.let_finish.set()
    pipeline = text_pipeline(llm, context=10_000)

    async def abandon():
        chat = asyncio.create_task(pipeline.chat(pipeline.chat_request([ChatMessage("user", "talk")])))
        await asyncio.sleep(0.3)
        chat.cancel()
        await asyncio.sleep(0.5)

    asyncio.run(abandon())
    stopped_at = llm.emitted
    time.sleep(0.3)
    pipeline.close()
    assert 0 < stopped_at == llm.emitted < 200  # it stopped at its next token, long before its 500 words
    assert llm.readied == []  # a conversation that will not go on like this


def test_a_finished_answer_readies_its_follow_up_while_the_caller_goes_on():
    from voxgate.engines.base import ChatMessage
    from voxgate.turn_events import TurnDone, TurnInput

    llm = ReadyingLLM()
    pipeline = text_pipeline(llm, context=10_000)

    async def answers():  # would time out if either waited for the readying
        turn = [event async for event in pipeline.stream_turn(TurnInput(text="Hi", system="sys"))]
        chat = [item async for item in pipeline.stream_chat(pipeline.chat_request([ChatMessage("user", "Yo")]))]
        return turn[-1], chat[-1]

    done, chat = asyncio.run(asyncio.wait_for(answers(), 5))
    assert isinstance(done, TurnDone) and done.result.reply == "Fine." and chat.text == "Fine."
    assert llm.readied == []
    llm.let_finish.set()
    pipeline.close()  # waits for the lanes' threads
    opening = ChatMessage("user", "")  # of the next message
    assert set(llm.readied) == {(*prompt, ChatMessage("assistant", "Fine."), opening) for prompt in llm.prompts}
    assert len(llm.readied) == 2


def test_readying_takes_no_place_in_the_lane_the_next_question_waits_for_it_instead():
    """One slot, no queue: the question asked while the last answer is being readied is
    answered (once the readying ends), not refused as busy."""
    import threading

    from voxgate.engines.base import ChatMessage

    llm = ReadyingLLM()
    pipeline = text_pipeline(llm, context=10_000, slots=1, queue_size=0)

    async def two_questions():
        first = await pipeline.chat(pipeline.chat_request([ChatMessage("user", "One")]))
        threading.Timer(0.3, llm.let_finish.set).start()  # the readying of "One" holds the thread till then
        second = await pipeline.chat(pipeline.chat_request([ChatMessage("user", "Two")]))
        return first, second

    first, second = asyncio.run(asyncio.wait_for(two_questions(), 10))
    pipeline.close()
    assert first.text == second.text == "Fine." and len(llm.readied) == 2


@pytest.mark.parametrize(
    ("stt", "readings"),
    [
        (HearingAlternatives("In a month.", "Mm-hmm."), ("In a month.", "Mm-hmm.")),
        (HeardAs("In a month.", "Mm-hmm."), ("In a month.",)),  # an STT that gives one transcript
        (HeardAs(), ()),
    ],
)
def test_short_speech_is_read_every_way_the_stt_can_say(stt, readings):
    """An STT with alternatives says how sure it is; one without is taken as sure."""
    import numpy as np

    from voxgate.audio import DecodedAudio
    from voxgate.config import Settings
    from voxgate.pipeline import Pipeline

    pipeline = Pipeline(OneModel(stt=stt), Settings(warmup=False))
    heard = asyncio.run(pipeline.readings(DecodedAudio(np.zeros(8_000, np.float32), "pcm"), prompt="Mm-hmm."))
    pipeline.close()
    assert heard.texts == readings and heard.sure is not isinstance(stt, HearingAlternatives)


@pytest.mark.parametrize(("stt", "heard"), [(Drafting("In a month."), "In a"), (HeardAs("In a month."), "In a month.")])
def test_speech_still_being_said_is_drafted_where_the_stt_can_else_transcribed(stt, heard):
    import numpy as np

    from voxgate.audio import DecodedAudio
    from voxgate.config import Settings
    from voxgate.pipeline import Pipeline

    pipeline = Pipeline(OneModel(stt=stt), Settings(warmup=False))
    drafted = asyncio.run(pipeline.draft(DecodedAudio(np.zeros(8_000, np.float32), "pcm")))
    pipeline.close()
    assert drafted.text == heard


class DeadlineRecordingLLM:
    """Writes `reply` word by word and records, at each word, the deadline its caller gave."""

    name = "fake-llm"

    def __init__(self, reply: str):
        self.reply = reply
        self.seen: list[tuple[str, float]] = []  # (text so far, deadline then)
        self.deadline = None

    def generate(self, request, on_delta=None):
        from voxgate.engines.base import ChatResult
        from voxgate.scheduler import caller_deadline

        self.deadline, written = caller_deadline(), ""
        for word in self.reply.split(" "):
            written += word + " "
            self.seen.append((written.strip(), self.deadline.at))
            if on_delta is not None and on_delta(word + " "):
                return ChatResult(written.strip(), "cancelled")
        return ChatResult(self.reply, "stop")


def test_a_reply_is_due_with_its_caller_until_its_first_clause_then_at_speaking_pace():
    from voxgate.engines.base import ChatMessage
    from voxgate.scheduler import due_at

    llm = DeadlineRecordingLLM("Sure thing. Paris is the capital of France, on the Seine. It is lovely.")
    pipeline = text_pipeline(llm, context=10_000)
    spoke_until = time.monotonic() - 0.2  # the user stopped talking 200 ms ago

    async def ask():
        with due_at(spoke_until):
            return await pipeline.chat(pipeline.chat_request([ChatMessage("user", "Tell me about Paris.")]))

    asyncio.run(asyncio.wait_for(ask(), 30))
    pipeline.close()
    due = dict(llm.seen)
    assert due["Sure"] == due["Sure thing."] == spoke_until  # the listener waits for the first clause
    # After it, each clause is due when the ones before it will have been heard (15 chars/s),
    # less the playback margin.
    first_written = due["Sure thing. Paris"] - (len("Sure thing.") / 15 - 0.5)
    assert spoke_until < first_written < time.monotonic()
    on = "Sure thing. Paris is the capital of France, on"
    it = on + " the Seine. It"
    assert due[on] - due["Sure thing. Paris"] == pytest.approx(len("Paris is the capital of France,") / 15)
    assert due[it] - due[on] == pytest.approx(len("on the Seine.") / 15)


def test_a_reply_left_early_is_waited_for_by_nobody():
    from voxgate.engines.base import ChatMessage

    llm = DeadlineRecordingLLM("One two three four five six seven eight nine ten.")
    pipeline = text_pipeline(llm, context=10_000)

    async def read_one():
        replies = pipeline.stream_chat(pipeline.chat_request([ChatMessage("user", "Count.")]))
        async for _ in replies:
            break  # the first word is enough: the caller leaves
        await replies.aclose()

    asyncio.run(asyncio.wait_for(read_one(), 30))
    pipeline.close()
    assert llm.deadline.abandoned  # a turn still waiting for the model would give up its place
