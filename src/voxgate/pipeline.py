"""Where a voice turn happens: the only module in which STT, LLM and TTS meet.

`Pipeline.turn` takes text or audio bytes and returns the reply as text and, when asked,
as encoded speech, with the time each stage took. Every model call goes through the
role's bounded `Lane`, so the event loop never blocks and overload becomes a 503.
"""

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from voxgate import audio
from voxgate.audio import VoiceFormat
from voxgate.catalog import Role
from voxgate.config import Settings
from voxgate.chunker import SentenceChunker
from voxgate.engines.base import (
    ChatMessage,
    ChatModel,
    ChatRequest,
    ChatResult,
    SpeechChunk,
    SpeechToText,
    TextToSpeech,
    Transcription,
)
from voxgate.errors import BadRequest, NoSpeech, PayloadTooLarge
from voxgate.lanes import Lane
from voxgate.models import resolve


@dataclass(frozen=True)
class Engines:
    stt: SpeechToText
    llm: ChatModel
    tts: TextToSpeech


def load_engines(settings: Settings) -> Engines:
    """Load the three configured models (blocking, seconds) and warm each up once."""
    from voxgate.engines.llamacpp import LlamaCppLLM
    from voxgate.engines.piper import PiperTTS
    from voxgate.engines.whisper import WhisperSTT

    stt = WhisperSTT(*resolve(settings.stt_model, Role.STT, settings.models_dir), threads=settings.threads)
    llm = LlamaCppLLM(
        *resolve(settings.llm_model, Role.LLM, settings.models_dir),
        threads=settings.threads,
        context=settings.llm_context,
        slots=settings.llm_slots,
    )
    tts = PiperTTS(*resolve(settings.tts_model, Role.TTS, settings.models_dir))
    if settings.warmup:
        for engine in (stt, llm, tts):
            engine.warm_up()
    return Engines(stt=stt, llm=llm, tts=tts)


@dataclass(frozen=True)
class TurnInput:
    text: str | None = None
    audio: bytes | None = None
    reply_as: Literal["text", "voice"] = "text"
    voice_format: VoiceFormat = "wav"
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    language: str | None = None
    history: tuple[ChatMessage, ...] = ()  # earlier turns of the conversation, oldest first


@dataclass
class TurnResult:
    transcript: str | None
    reply: str
    language: str | None
    timings: dict[str, float | None] = field(default_factory=dict)
    input_container: str | None = None  # the demuxer that read the user's audio
    speech: bytes | None = None
    speech_format: str | None = None
    sample_rate: int | None = None


@dataclass(frozen=True)
class Heard:
    """What the user said."""

    text: str
    language: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class SpokenChunk:
    """One clause of the reply, encoded in the requested voice format."""

    audio: bytes
    sample_rate: int
    text: str
    index: int

    def to_json(self, voice_format: str) -> dict:
        """The chunk as JSON for text-only transports (SSE, WebSocket messages)."""
        return {"audio": base64.b64encode(self.audio).decode(), "format": voice_format,
                "sample_rate": self.sample_rate, "index": self.index, "text": self.text}


@dataclass(frozen=True)
class TurnDone:
    result: TurnResult


TurnEvent = Heard | TextDelta | SpokenChunk | TurnDone


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate (English BPE averages ~4 characters a token), so the
    trimmed prompt fits the context even for text that tokenizes badly."""
    return len(text) // 3 + 4


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


_MARKDOWN = re.compile(r"[*_`#>|]+")


def speakable(text: str) -> str:
    """Text as a voice should read it: markdown emphasis, code ticks and headings removed."""
    return " ".join(_MARKDOWN.sub(" ", text).split())


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


class Pipeline:
    def __init__(self, engines: Engines, settings: Settings):
        self.engines = engines
        self.settings = settings
        queue = settings.queue_size
        self.decode_lane = Lane("the audio decoder", workers=2, queue_size=queue)
        self.stt_lane = Lane("the speech-to-text model", workers=1, queue_size=queue)
        self.llm_lane = Lane("the language model", workers=settings.llm_slots, queue_size=queue)
        self.tts_lane = Lane("the text-to-speech model", workers=1, queue_size=queue)

    def close(self) -> None:
        for lane in (self.decode_lane, self.stt_lane, self.llm_lane, self.tts_lane):
            lane.close()

    # Stages, each usable on its own (the OpenAI-compatible endpoints call them directly).

    async def decode(self, data: bytes) -> audio.DecodedAudio:
        return await self.decode_lane.run(audio.decode, data, max_seconds=self.settings.max_audio_seconds)

    async def transcribe(
        self, decoded: audio.DecodedAudio, *, language: str | None = None, prompt: str | None = None,
        temperature: float = 0.0,
    ) -> Transcription:
        return await self.stt_lane.run(
            self.engines.stt.transcribe, decoded.samples, language=language, prompt=prompt, temperature=temperature
        )

    def chat_request(
        self, messages: list[ChatMessage], *, max_tokens: int | None = None, temperature: float | None = None,
        top_p: float | None = None, stop: tuple[str, ...] = (),
    ) -> ChatRequest:
        return ChatRequest(
            messages=tuple(messages),
            max_tokens=max_tokens or self.settings.max_tokens,
            temperature=self.settings.temperature if temperature is None else temperature,
            top_p=top_p,
            stop=stop,
        )

    async def chat(self, request: ChatRequest) -> ChatResult:
        return await self.llm_lane.run(self.engines.llm.generate, request)

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[str | ChatResult]:
        """Text deltas as they are generated, then the ChatResult. Starts now, so a full
        lane raises here, before any byte is sent; leaving early stops llama.cpp."""
        return self.llm_lane.stream(lambda emit: emit(self.engines.llm.generate(request, on_delta=emit)))

    def stream_speech(self, text: str, *, speed: float = 1.0) -> AsyncIterator[SpeechChunk]:
        """Audio sentence by sentence as it is synthesized."""
        tts = self.engines.tts
        return self.tts_lane.stream(lambda emit: any(emit(c) for c in tts.synthesize(speakable(text), speed=speed)))

    async def speak(self, text: str, *, speed: float = 1.0) -> tuple[np.ndarray, int]:
        """Synthesize `text` completely; returns int16 mono samples and their rate."""
        tts = self.engines.tts

        def run() -> np.ndarray:
            chunks = [chunk.pcm for chunk in tts.synthesize(speakable(text), speed=speed)]
            return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

        return await self.tts_lane.run(run), tts.sample_rate

    async def encode(self, pcm: np.ndarray, sample_rate: int, fmt: str) -> bytes:
        return await self.tts_lane.run(audio.encode, pcm, sample_rate, fmt)

    # The whole turn.

    async def _hear(self, request: TurnInput, clock: "_Stopwatch") -> tuple[str, Transcription | None, str | None]:
        """The question as text: checked text input, or the transcript of the audio."""
        if (request.text is None) == (request.audio is None):
            raise BadRequest("send exactly one of `text` or `audio`", code="text_or_audio")
        if request.audio is None:
            question = request.text.strip()
            if not question:
                raise BadRequest("`text` is empty", code="empty_text")
            if len(question) > self.settings.max_text_chars:
                raise PayloadTooLarge(
                    f"`text` has {len(question)} characters; the limit is {self.settings.max_text_chars}",
                    code="text_too_long",
                )
            return question, None, None
        with clock.stage("decode"):
            decoded = await self.decode(request.audio)
        with clock.stage("stt"):
            heard = await self.transcribe(decoded, language=request.language)
        if not heard.text:
            raise NoSpeech("no speech was detected in the audio")
        return heard.text, heard, decoded.container

    def _chat_for(self, request: TurnInput, question: str) -> ChatRequest:
        chat = self.chat_request([], max_tokens=request.max_tokens, temperature=request.temperature)
        messages = fit_history(request.system or self.settings.system_prompt, request.history, question,
                               budget=self.settings.llm_context - chat.max_tokens)
        return replace(chat, messages=tuple(messages))

    async def turn(self, request: TurnInput) -> TurnResult:
        """One buffered turn: the whole reply, then (if asked) all of its audio."""
        clock = _Stopwatch()
        question, heard, container = await self._hear(request, clock)
        with clock.stage("llm"):
            answer = await self.chat(self._chat_for(request, question))
        result = TurnResult(transcript=heard and heard.text, reply=answer.text,
                            language=heard.language if heard else request.language, timings=clock.ms,
                            input_container=container)
        if request.reply_as == "voice":
            with clock.stage("tts"):
                pcm, rate = await self.speak(answer.text)
                result.speech = await self.encode(pcm, rate, request.voice_format)
            result.speech_format, result.sample_rate = request.voice_format, rate
        return result

    async def stream_turn(self, request: TurnInput) -> AsyncIterator[TurnEvent]:
        """One streamed turn: the transcript, reply text deltas, and (for voice) audio per
        clause while the LLM is still generating, then TurnDone.

        The LLM and TTS overlap: the chunker hands each finished clause to the synthesizer
        task while generation goes on. Closing the iterator early (client gone, barge-in)
        cancels both and stops llama.cpp at its next token.
        """
        started = time.perf_counter()
        clock = _Stopwatch()
        question, heard, container = await self._hear(request, clock)
        language = heard.language if heard else request.language
        if heard:
            yield Heard(heard.text, heard.language)

        def since_start() -> float:
            return round((time.perf_counter() - started) * 1000, 1)

        voice = request.reply_as == "voice"
        events: asyncio.Queue = asyncio.Queue()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        deltas: list[str] = []
        spoken: list[np.ndarray] = []
        firsts: dict[str, float] = {}
        rate = self.engines.tts.sample_rate

        async def generate() -> None:
            chunker = SentenceChunker()
            with clock.stage("llm"):
                async for item in self.stream_chat(self._chat_for(request, question)):
                    if isinstance(item, ChatResult):
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
            while (piece := await pieces.get()) is not None:
                begin = time.perf_counter()
                pcm, _ = await self.speak(piece)
                data = await self.encode(pcm, rate, request.voice_format)
                tts_ms += (time.perf_counter() - begin) * 1000
                firsts.setdefault("first_audio", since_start())
                spoken.append(pcm)
                events.put_nowait(SpokenChunk(data, rate, piece, len(spoken) - 1))
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

        result = TurnResult(transcript=heard and heard.text, reply="".join(deltas).strip(), language=language,
                            timings={**clock.ms, **firsts, "total": since_start()}, input_container=container)
        if voice:
            result.speech = audio.encode(np.concatenate(spoken) if spoken else np.zeros(0, np.int16), rate, "wav")
            result.speech_format, result.sample_rate = "wav", rate
        yield TurnDone(result)
