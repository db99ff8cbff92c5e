"""One realtime voice session: microphone audio in, VAD, streamed turns out, barge-in.

The session is transport-agnostic: it gets audio and control messages, and sends JSON
events through an async `send` (the WebSocket router awaits the socket's drain there, so
a slow client slows its own session down instead of growing buffers). Each session owns
its detector and at most one running turn; closing it cancels that turn.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import numpy as np

from voxgate import audio
from voxgate.config import Settings
from voxgate.errors import BadRequest, VoxgateError, internal_error
from voxgate.pipeline import Heard, Pipeline, SpokenChunk, TextDelta, TurnDone, TurnInput, TurnResult
from voxgate.store.db import Database
from voxgate.store.tables import User
from voxgate.turns import commit_turn, load_context
from voxgate.vad import SpeechDetector

log = logging.getLogger("voxgate")
Send = Callable[[dict], Awaitable[None]]


@dataclass
class SessionOptions:
    """Set by the client's `session.start` message."""

    conversation_id: str | None = None
    persona: str | None = None
    model: str | None = None
    voice: str | None = None
    language: str | None = None
    reply_as: str = "voice"
    voice_format: str = "wav"
    input_format: str = "pcm16"  # or "container": each binary message is a whole recording
    sample_rate: int = 16_000
    vad_threshold: float = 0.5
    silence_ms: int = 700


@dataclass
class _Reply:
    """What of the running reply has reached the client, for trimming on barge-in."""

    text: list[str] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)


class RealtimeSession:
    def __init__(self, pipeline: Pipeline, db: Database, settings: Settings, user: User, options: SessionOptions,
                 send: Send):
        self.pipeline, self.db, self.settings, self.user = pipeline, db, settings, user
        self.options = options
        self.send = send
        self.detector = SpeechDetector(threshold=options.vad_threshold, silence_ms=options.silence_ms)
        self._turn: asyncio.Task | None = None
        # Speech whose turn got no reply yet: a pause mid-question ("What is..., and why?")
        # ends an utterance, and the continuation must not lose the first part.
        self._unanswered = np.zeros(0, np.float32)

    async def on_audio(self, data: bytes) -> None:
        if self.options.input_format == "container":
            await self._start_turn(TurnInput(audio=data))
            return
        if len(data) % 2:
            raise BadRequest("pcm16 audio must be whole 16-bit samples")
        samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768
        if self.options.sample_rate != audio.STT_SAMPLE_RATE:
            samples = audio.resample(samples, self.options.sample_rate, audio.STT_SAMPLE_RATE)
        for event in await asyncio.to_thread(self.detector.feed, samples):  # VAD is a model: off the loop
            if event == "start":
                await self.send({"type": "speech.started"})
                await self.interrupt()  # barge-in: the user talks over the reply
            else:
                await self.send({"type": "speech.stopped"})
                utterance = self._unanswered = np.concatenate([self._unanswered, self.detector.take_utterance()])
                wav = audio.encode((utterance * 32767).astype(np.int16), audio.STT_SAMPLE_RATE, "wav")
                await self._start_turn(TurnInput(audio=wav))

    async def on_text(self, text: str) -> None:
        await self.interrupt()
        await self._start_turn(TurnInput(text=text))

    async def interrupt(self) -> None:
        """Stop the running reply now; its stored part is what the client already got."""
        if self._turn and not self._turn.done():
            self._turn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._turn

    async def close(self) -> None:
        await self.interrupt()

    async def _start_turn(self, turn: TurnInput) -> None:
        await self.interrupt()
        options = self.options
        turn = self.pipeline.expand_model(replace(
            turn, reply_as=options.reply_as, voice_format=options.voice_format, model=options.model,
            voice=options.voice, language=options.language))
        self._turn = asyncio.create_task(self._run_turn(turn))

    async def _run_turn(self, turn: TurnInput) -> None:
        options = self.options
        sent = _Reply()
        heard: Heard | None = None
        try:
            context = await load_context(self.db, self.user, conversation_id=options.conversation_id,
                                         persona_name=options.persona)
            events = self.pipeline.stream_turn(context.apply(turn))
            try:
                async for event in events:
                    match event:
                        case Heard(text, language):
                            heard = event
                            await self.send({"type": "transcript", "text": text, "language": language})
                        case TextDelta(text):
                            self._unanswered = np.zeros(0, np.float32)  # the reply has begun
                            await self.send({"type": "text", "delta": text})
                            sent.text.append(text)
                        case SpokenChunk():
                            await self.send({"type": "audio", **event.to_json(options.voice_format)})
                            sent.spoken.append(event.text)
                        case TurnDone(result):
                            await self._finish(context, turn, result, "done")
            except asyncio.CancelledError:
                await events.aclose()
                await self._store_interrupted(context, turn, heard, sent)
                raise
        except VoxgateError as exc:
            await self.send({"type": "error", **exc.envelope()})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("realtime turn failed")
            await self.send({"type": "error", **internal_error().envelope()})

    async def _finish(self, context, turn: TurnInput, result: TurnResult, kind: str) -> None:
        stored = await commit_turn(self.db, self.settings, context, turn, result)
        self.options.conversation_id = stored.conversation_id  # the next turn continues it
        await self.send({"type": kind, **stored.summary()})

    async def _store_interrupted(self, context, turn: TurnInput, heard: Heard | None, sent: _Reply) -> None:
        """Keep the turn as far as the user got it: the clauses spoken (voice) or text sent."""
        reply = " ".join(sent.spoken) if self.options.reply_as == "voice" else "".join(sent.text).strip()
        if not reply or (turn.audio is not None and heard is None):
            return  # nothing of the reply reached the user: nothing to remember
        result = TurnResult(transcript=heard.text if heard else None, reply=reply,
                            language=heard.language if heard else None, timings={"interrupted": True})
        # Shielded: the task is being cancelled, but the partial turn must still be written.
        await asyncio.shield(self._finish(context, turn, result, "interrupted"))

