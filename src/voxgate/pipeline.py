"""Where a voice turn happens: the only module in which STT, LLM and TTS meet.

`Pipeline.turn` takes text or audio bytes and returns the reply as text and, when asked,
as encoded speech, with the time each stage took. Every model call goes through the
role's bounded `Lane`, so the event loop never blocks and overload becomes a 503.
"""

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, aclosing, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from voxgate import audio
from voxgate.catalog import Role
from voxgate.chunker import SentenceChunker, spoken_pieces
from voxgate.config import Settings
from voxgate.engines.base import (
    ChatMessage,
    ChatModel,
    ChatRequest,
    ChatResult,
    Drafts,
    HearsAlternatives,
    Prefills,
    Readings,
    SpeechChunk,
    SpeechToText,
    Transcription,
)
from voxgate.errors import BadRequest, ContextExceeded, NoSpeech, PayloadTooLarge
from voxgate.lanes import Emit, Lane
from voxgate.prompts import estimate_tokens, fit_history, system_prompt
from voxgate.registry import Registry
from voxgate.scheduler import Deadline, DeadlinePool, current_deadline, due_at
from voxgate.turn_events import ClauseAudio, Heard, TextDelta, TurnDone, TurnEvent, TurnInput, TurnResult

log = logging.getLogger("voxgate")
E = TypeVar("E")  # an engine
R = TypeVar("R")  # what work on it returns


class _Stopwatch:
    def __init__(self) -> None:
        self.ms: dict[str, float | None] = {"decode": None, "stt": None, "llm": None, "tts": None}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = round((time.perf_counter() - start) * 1000, 1)


_END = object()
_PLAYBACK_MARGIN = 0.5  # seconds of audio a client should still have queued when the next clause arrives
_SPOKEN_CHARS_PER_SECOND = 15.0  # hibari heart spoke 11-14 in the benchmark's replies: more is the safe side


class _ReplyPace:
    """Moves a reply's deadline as it is written. Its first clause is due at the caller's
    deadline: the listener waits for it. Each later clause only when the clauses before it
    will have been heard (at speaking pace, which a reader keeps up with too), less the
    playback margin; until then another reply's first clause may go first."""

    def __init__(self, deadline: Deadline):
        self.deadline = deadline
        self._chunker = SentenceChunker()
        self._first_at: float | None = None  # when the first clause was written
        self._chars = 0  # in the clauses written

    def wrote(self, delta: str) -> None:
        if not (pieces := self._chunker.push(delta)):
            return
        if self._first_at is None:
            self._first_at = time.monotonic()
        self._chars += sum(len(piece) for piece in pieces)
        self.deadline.at = self._first_at + self._chars / _SPOKEN_CHARS_PER_SECOND - _PLAYBACK_MARGIN


class Pipeline:
    def __init__(self, registry: Registry, settings: Settings):
        self.registry = registry
        self.settings = settings
        # The speech engines share the CPU budget's speech threads, most urgent work first;
        # the LLM's lane threads only wait on llama.cpp (or a remote engine), which has its own.
        self.speech_pool = DeadlinePool("speech", settings.speech_threads)
        self.llm_pool = DeadlinePool("llm", settings.llm.slots)
        places = settings.speech_threads + settings.queue_size
        self.decode_lane = Lane("the audio decoder", pool=self.speech_pool, capacity=places)
        self.stt_lane = Lane("the speech-to-text model", pool=self.speech_pool, capacity=places)
        self.llm_lane = Lane(
            "the language model", pool=self.llm_pool, capacity=settings.llm.slots + settings.queue_size
        )
        self.tts_lane = Lane("the text-to-speech model", pool=self.speech_pool, capacity=places)
        self.turn_lane = Lane("the end-of-turn model", pool=self.speech_pool, capacity=places)

    def close(self) -> None:
        self.speech_pool.close()
        self.llm_pool.close()

    # Stages, each usable on its own (the OpenAI-compatible endpoints call them directly).

    async def decode(self, data: bytes) -> audio.DecodedAudio:
        return await self.decode_lane.run(audio.decode, data, max_seconds=self.settings.max_audio_seconds)

    @staticmethod
    def _on(use: Callable[[str | None], AbstractContextManager[E]], name: str | None, work: Callable[[E], R]) -> R:
        """Run `work(engine)` with the model `name` (the role's default when None) that `use`
        (a Registry.use_* method) gives, loaded if needed: called on a lane's worker thread,
        so a first load blocks no event loop."""
        with use(name) as engine:
            return work(engine)

    async def transcribe(
        self,
        decoded: audio.DecodedAudio,
        *,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float = 0.0,
        model: str | None = None,
    ) -> Transcription:
        return await self.stt_lane.run(
            self._on,
            self.registry.use_stt,
            model,
            lambda stt: stt.transcribe(decoded.samples, language=language, prompt=prompt, temperature=temperature),
        )

    async def draft(self, decoded: audio.DecodedAudio, *, language: str | None = None) -> Transcription:
        """Words heard so far in speech still being said: quickly, maybe inexactly."""

        def hear(stt: SpeechToText) -> Transcription:
            if isinstance(stt, Drafts):
                return stt.draft(decoded.samples, language=language)
            return stt.transcribe(decoded.samples, language=language)

        return await self.stt_lane.run(self._on, self.registry.use_stt, None, hear)

    async def readings(
        self,
        decoded: audio.DecodedAudio,
        *,
        language: str | None = None,
        prompt: str | None = None,
        model: str | None = None,
    ) -> Readings:
        """What short speech may have said: the STT's close alternatives where it can give
        them, else its one transcript (taken as sure: nothing says otherwise)."""

        def read(stt: SpeechToText) -> Readings:
            if isinstance(stt, HearsAlternatives):
                return stt.alternatives(decoded.samples, language=language, prompt=prompt)
            heard = stt.transcribe(decoded.samples, language=language, prompt=prompt)
            return Readings((heard.text,) if heard.text else (), language=heard.language)

        return await self.stt_lane.run(self._on, self.registry.use_stt, model, read)

    def chat_request(
        self,
        messages: list[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: tuple[str, ...] = (),
    ) -> ChatRequest:
        return ChatRequest(
            messages=tuple(messages),
            max_tokens=max_tokens or self.settings.max_tokens,
            temperature=self.settings.temperature if temperature is None else temperature,
            top_p=top_p,
            stop=stop,
            seed=self.settings.seed,
        )

    async def chat(self, request: ChatRequest, *, model: str | None = None) -> ChatResult:
        """The whole answer. Read from the stream, so a caller that stops waiting (client
        gone, shutdown) stops the LLM at its next token instead of at `max_tokens`."""
        return await _result_of(self.stream_chat(request, model=model))

    def stream_chat(self, request: ChatRequest, *, model: str | None = None) -> AsyncGenerator[str | ChatResult, None]:
        """Text deltas as they are generated, then the ChatResult. Starts now, so a full
        lane raises here, before any byte is sent; leaving early stops the LLM."""
        pace = _ReplyPace(Deadline(current_deadline()))

        def answer(llm: ChatModel, emit: Emit) -> None:
            def on_delta(delta: str) -> bool:
                pace.wrote(delta)
                return emit(delta)

            with due_at(pace.deadline):
                emit(result := llm.generate(request, on_delta=on_delta))
            if result.finish_reason != "cancelled" and request.reuse_prefix and isinstance(llm, Prefills):
                answered = (*request.messages, ChatMessage("assistant", result.text))
                self._prefill((*answered, ChatMessage("user", "")), model)  # the next message's opening

        items = self.llm_lane.stream(lambda emit: self._on(self.registry.use_llm, model, lambda llm: answer(llm, emit)))
        return _abandoning(items, pace.deadline)

    def prefill_question(self, request: TurnInput, words: str, language: str | None) -> None:
        """While the user is still speaking, and the LLM has nothing else to do: evaluate
        the prompt their turn will have, with the words said so far as its question."""
        if not self.llm_lane.in_flight:
            self._prefill(self._chat_for(request, words, language).messages, request.model)

    def _prefill(self, messages: tuple[ChatMessage, ...], model: str | None) -> None:
        """Let the LLM prefill `messages` once its threads have nothing more urgent: on its
        pool behind every other job, and outside the lane, so it takes no caller's place
        (a full lane would refuse the next question)."""

        def prefill(llm: ChatModel) -> None:
            if isinstance(llm, Prefills):  # the model loaded now may not be the one asked for
                llm.prefill(messages)

        work = self.llm_pool.submit(lambda: self._on(self.registry.use_llm, model, prefill), deadline=math.inf)
        work.add_done_callback(_log_failure)

    def stream_speech(
        self, text: str, *, speed: float = 1.0, voice: str | None = None
    ) -> AsyncGenerator[SpeechChunk, None]:
        """Audio sentence by sentence as it is synthesized."""
        return self.tts_lane.stream(
            lambda emit: self._on(
                self.registry.use_tts,
                voice,
                lambda tts: any(emit(c) for piece in spoken_pieces(text) for c in tts.synthesize(piece, speed=speed)),
            )
        )

    async def speak(self, text: str, *, speed: float = 1.0, voice: str | None = None) -> tuple[np.ndarray, int]:
        """Synthesize `text` completely; returns int16 mono samples and their rate."""

        def run(tts) -> tuple[np.ndarray, int]:
            chunks = [chunk.pcm for piece in spoken_pieces(text) for chunk in tts.synthesize(piece, speed=speed)]
            return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)), tts.sample_rate

        return await self.tts_lane.run(self._on, self.registry.use_tts, voice, run)

    async def encode(self, pcm: np.ndarray, sample_rate: int, fmt: str) -> bytes:
        return await self.tts_lane.run(audio.encode, pcm, sample_rate, fmt)

    async def turn_completion(self, samples: np.ndarray) -> float:
        """How likely the speaker has finished their turn (0..1), judged from 16 kHz audio."""
        return await self.turn_lane.run(self._on, self.registry.use_turn, None, lambda model: model.completion(samples))

    # The whole turn.

    async def _hear(self, request: TurnInput, clock: "_Stopwatch") -> tuple[str, Transcription | None, str | None]:
        """The question as text: checked text input, or the transcript of the audio."""
        if (request.text is None) == (request.audio is None):
            raise BadRequest("send exactly one of `text` or `audio`", code="text_or_audio")
        if request.text is not None:
            question = request.text.strip()
            if not question:
                raise BadRequest("`text` is empty", code="empty_text")
            if len(question) > self.settings.max_text_chars:
                raise PayloadTooLarge(
                    f"`text` has {len(question)} characters; the limit is {self.settings.max_text_chars}",
                    code="text_too_long",
                )
            return question, None, None
        if request.samples is not None:
            decoded = audio.DecodedAudio(request.samples, "wav")
        else:
            assert request.audio is not None  # checked above: text or audio
            with clock.stage("decode"):
                decoded = await self.decode(request.audio)
        with clock.stage("stt"):
            transcription = await self.transcribe(decoded, language=request.language)
        if not transcription.text:
            raise NoSpeech("no speech was detected in the audio")
        return transcription.text, transcription, decoded.container

    async def _check(self, request: TurnInput) -> None:
        """Refuse an unknown model or voice before any model runs."""
        if request.model:
            self.registry.require(Role.LLM, request.model)
        if request.voice and request.reply_as == "voice":
            await asyncio.to_thread(self.registry.voice_for, None, request.voice)

    async def _answer_plan(self, request: TurnInput, transcription: Transcription | None) -> "_Plan":
        language = request.language or (transcription.language if transcription else None)
        voice = (
            await asyncio.to_thread(self.registry.voice_for, language, request.voice)
            if request.reply_as == "voice"
            else None
        )
        llm = request.model or self.registry.defaults[Role.LLM]
        stt = self.registry.defaults[Role.STT] if request.audio is not None else None
        models = {"stt": stt, "llm": llm, "tts": voice}
        return _Plan(language, voice, llm, models)

    def _chat_for(self, request: TurnInput, question: str, language: str | None, *, scale: float = 1.0) -> ChatRequest:
        """The LLM request for a turn, its history fitted to the context; `scale` shrinks the
        budget when the engine counted more tokens than estimated."""
        chat = self.chat_request([], max_tokens=request.max_tokens, temperature=request.temperature)
        system = system_prompt(request.system or self.settings.system_prompt, language)
        budget = int((self.settings.llm.context - chat.max_tokens) * scale)
        return replace(chat, messages=tuple(fit_history(system, request.history, question, budget=budget)))

    async def _reply(self, request: TurnInput, question: str, plan: "_Plan") -> AsyncGenerator[str | ChatResult, None]:
        """The reply as the LLM writes it (text deltas, then the ChatResult).

        The history was fitted by estimate; if the engine's real count says the prompt does
        not fit, it is fitted once more, scaled by that count. A question that does not fit
        even without history is refused: never an empty reply.
        """
        chat = self._chat_for(request, question, plan.language)
        for attempt in range(2):
            try:
                async with aclosing(self.stream_chat(chat, model=plan.llm)) as items:
                    async for item in items:
                        yield item
                return
            except ContextExceeded as exc:
                if attempt or len(chat.messages) <= 2:  # nothing (left) to trim: the question is the problem
                    context = exc.context or self.settings.llm.context
                    raise ContextExceeded(
                        f"the question does not fit the language model's context ({context} tokens, "
                        f"{chat.max_tokens} of them kept for the reply); ask it in fewer words",
                        code="question_too_long",
                    ) from exc
                estimated = sum(estimate_tokens(m.content) for m in chat.messages)
                chat = self._chat_for(
                    request, question, plan.language, scale=estimated / exc.prompt_tokens if exc.prompt_tokens else 0.5
                )

    async def _begin(
        self, request: TurnInput, clock: "_Stopwatch"
    ) -> tuple[str, Transcription | None, str | None, "_Plan"]:
        """The start of every turn: refuse what cannot be answered, hear the question (with
        its transcription and container, for audio), and plan the answer."""
        await self._check(request)
        question, transcription, container = await self._hear(request, clock)
        return question, transcription, container, await self._answer_plan(request, transcription)

    async def turn(self, request: TurnInput) -> TurnResult:
        """One buffered turn: the whole reply, then (if asked) all of its audio."""
        clock = _Stopwatch()
        question, transcription, container, plan = await self._begin(request, clock)
        with clock.stage("llm"):
            answer = await _result_of(self._reply(request, question, plan))
        result = TurnResult(
            transcript=transcription.text if transcription else None,
            reply=answer.text,
            language=plan.language,
            timings=clock.ms,
            input_container=container,
            voice=plan.voice,
            models=plan.models,
            usage=_usage(answer),
        )
        if request.reply_as == "voice":
            with clock.stage("tts"):
                pcm, rate = await self.speak(answer.text, voice=plan.voice)
                result.speech = await self.encode(pcm, rate, request.voice_format)
            result.speech_format, result.sample_rate = request.voice_format, rate
        return result

    async def stream_turn(self, request: TurnInput) -> AsyncGenerator[TurnEvent, None]:
        """One streamed turn: the transcript, reply text deltas, and (for voice) audio per
        clause while the LLM is still generating, then TurnDone.

        The LLM and TTS overlap: the chunker hands each finished clause to the synthesizer
        task while generation goes on. Closing the iterator early (client gone, barge-in)
        cancels both and stops the LLM at its next token.
        """
        started = time.perf_counter()
        clock = _Stopwatch()
        question, transcription, container, plan = await self._begin(request, clock)
        if transcription:
            yield Heard(transcription.text, transcription.language)

        def since_start() -> float:
            return round((time.perf_counter() - started) * 1000, 1)

        voice = request.reply_as == "voice"
        events: asyncio.Queue = asyncio.Queue()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        deltas: list[str] = []
        spoken: list[np.ndarray] = []
        firsts: dict[str, float] = {}
        rates: list[int] = []
        usage: dict[str, int] = {}

        async def generate() -> None:
            chunker = SentenceChunker()
            with clock.stage("llm"):
                async with aclosing(self._reply(request, question, plan)) as reply:
                    async for item in reply:
                        if isinstance(item, ChatResult):
                            usage.update(_usage(item))
                            break
                        firsts.setdefault("first_text", since_start())
                        deltas.append(item)
                        events.put_nowait(TextDelta(item))
                        for piece in chunker.push(item) if voice else ():
                            pieces.put_nowait(piece)
            for piece in chunker.flush() if voice else ():
                pieces.put_nowait(piece)
            pieces.put_nowait(None)

        async def synthesize() -> None:
            tts_ms = 0.0
            needed_at: float | None = None  # when the client will have played what it has
            while (piece := await pieces.get()) is not None:
                begin = time.perf_counter()
                # The first clause is due when the turn's other first-audio work is (the
                # caller's deadline); a later one only before the audio ahead of it runs out,
                # so another session's first clause may go first.
                with due_at(needed_at - _PLAYBACK_MARGIN) if needed_at is not None else nullcontext():
                    pcm, rate = await self.speak(piece, voice=plan.voice)
                    data = await self.encode(pcm, rate, request.voice_format)
                tts_ms += (time.perf_counter() - begin) * 1000
                firsts.setdefault("tts_first", round(tts_ms, 1))
                firsts.setdefault("first_audio", since_start())
                needed_at = max(needed_at or 0.0, time.monotonic()) + len(pcm) / rate
                spoken.append(pcm)
                rates.append(rate)
                events.put_nowait(ClauseAudio(data, rate, piece, len(spoken) - 1, pcm))
            clock.ms["tts"] = round(tts_ms, 1)

        tasks = [asyncio.create_task(generate())] + ([asyncio.create_task(synthesize())] if voice else [])
        finished = asyncio.gather(*tasks)
        finished.add_done_callback(lambda _: events.put_nowait(_END))
        try:
            while (event := await events.get()) is not _END:
                yield event
            await finished
        finally:
            finished.cancel()  # cancels whichever of the two is still running
            finished.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved"

        result = TurnResult(
            transcript=transcription.text if transcription else None,
            reply="".join(deltas).strip(),
            language=plan.language,
            timings={**clock.ms, **firsts, "total": since_start()},
            input_container=container,
            voice=plan.voice,
            models=plan.models,
            usage=usage,
        )
        if voice and spoken:
            result.speech = await self.encode(np.concatenate(spoken), rates[0], "wav")
            result.speech_format, result.sample_rate = "wav", rates[0]
        yield TurnDone(result)


def _log_failure(work: Future) -> None:
    if not work.cancelled() and (error := work.exception()) is not None:
        log.error("readying the next turn failed", exc_info=error)


def _usage(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cached_tokens": result.cached_tokens,  # of the prompt: the prefix the engine had cached
    }


async def _abandoning(
    items: AsyncGenerator[str | ChatResult, None], deadline: Deadline
) -> AsyncGenerator[str | ChatResult, None]:
    """`items`; once their consumer is done with them, nobody waits for the work behind
    them, so a reply left early (barge-in, a dropped speculative turn) takes nobody's turn."""
    async with aclosing(items):
        try:
            async for item in items:
                yield item
        finally:
            deadline.abandon()


async def _result_of(items: AsyncGenerator[str | ChatResult, None]) -> ChatResult:
    """The ChatResult that ends a stream of text deltas."""
    async with aclosing(items):
        async for item in items:
            if isinstance(item, ChatResult):
                return item
    raise RuntimeError("the language model's stream ended without a result")


@dataclass(frozen=True)
class _Plan:
    """How a heard question is answered: in which language, by which LLM, in which voice."""

    language: str | None
    voice: str | None
    llm: str
    models: dict[str, str | None]
