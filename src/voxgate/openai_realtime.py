"""OpenAI's Realtime API protocol over a voxgate realtime session.

Code written for OpenAI's Realtime API (the `openai` SDK's `client.realtime.connect`, and
frameworks on the same protocol) talks to voxgate by changing only the base URL and the
key. The `RealtimeSession` does the work (VAD, turn detection, barge-in, stored turns);
this module only translates: client events into session calls, the session's events into
the API's server events (GA names, e.g. `response.output_audio.delta`), plus the
bookkeeping the protocol asks for (item and response ids, audio offsets for truncation).
"""

import asyncio
import base64
import binascii
import json
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voxgate import audio
from voxgate.catalog import Role
from voxgate.errors import BadRequest, VoxgateError
from voxgate.realtime import MAX_UTTERANCE_SECONDS, RealtimeSession, SessionOptions
from voxgate.store.tables import User
from voxgate.turn_events import TurnInput
from voxgate.turns import TurnService

SendJson = Callable[[dict], Awaitable[None]]
OUTPUT_RATE = 24_000  # the API's pcm16 output rate
# OpenAI's own voice names: a client written for OpenAI sends one; it gets voxgate's default voice.
OPENAI_VOICES = frozenset("alloy ash ballad coral echo sage shimmer verse marin cedar".split())
KEPT_ITEMS = 32  # replies remembered for `conversation.item.truncate`
MAX_PENDING_PARTS = 16  # user input parts waiting for `response.create`
# semantic_vad's eagerness as Smart Turn settings: (probability that ends a turn, longest silence in ms).
EAGERNESS = {"low": (0.7, 3_000), "medium": (0.5, 2_000), "auto": (0.5, 2_000), "high": (0.3, 1_000)}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the API keeps adding fields; unknown ones change nothing


class AudioFormat(_Lenient):
    type: Literal["audio/pcm"] = Field("audio/pcm", description="16-bit PCM; G.711 (pcmu/pcma) is not supported.")
    rate: int = Field(24_000, ge=8_000, le=96_000)


class TurnDetection(_Lenient):
    type: Literal["server_vad", "semantic_vad"]
    threshold: float | None = Field(None, gt=0.0, lt=1.0)
    silence_duration_ms: int | None = Field(None, ge=100, le=5_000)
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: Literal[True] = Field(True, description="voxgate answers every turn its VAD ends.")


class InputTranscription(_Lenient):
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$")


class AudioInput(_Lenient):
    format: AudioFormat | None = None
    turn_detection: TurnDetection | None = None  # null: the client commits the buffer itself
    transcription: InputTranscription | None = None


class AudioOutput(_Lenient):
    format: AudioFormat | None = None
    voice: str | None = Field(None, max_length=100)


class SessionAudio(_Lenient):
    input: AudioInput | None = None
    output: AudioOutput | None = None


class SessionConfig(_Lenient):
    instructions: str | None = Field(None, max_length=20_000)
    output_modalities: list[Literal["text", "audio"]] | None = Field(None, min_length=1, max_length=1)
    audio: SessionAudio | None = None
    tools: list[dict] = Field([], max_length=0, description="voxgate calls no tools.")


class ResponseConfig(_Lenient):
    instructions: str | None = Field(None, max_length=20_000)
    output_modalities: list[Literal["text", "audio"]] | None = Field(None, min_length=1, max_length=1)


class ContentPart(_Lenient):
    type: Literal["input_text", "input_audio"]
    text: str | None = Field(None, max_length=20_000)
    audio: str | None = None


class UserItem(_Lenient):
    type: Literal["message"]
    role: Literal["user"] = Field(description="voxgate's conversations take the user's messages only.")
    content: list[ContentPart] = Field(min_length=1, max_length=16)


@dataclass
class _Reply:
    """One response in the making, and afterwards what truncation needs of it."""

    id: str
    item_id: str
    voice: bool
    text: list[str] = field(default_factory=list)
    clauses: list[tuple[float, str]] = field(default_factory=list)  # (ms into the reply's audio, clause)
    audio_ms: float = 0.0
    conversation_id: str | None = None
    message_id: str | None = None

    def heard_until(self, ms: float) -> str:
        return " ".join(text for start, text in self.clauses if start < ms)


class OpenAIRealtime:
    def __init__(self, turns: TurnService, user: User, send: SendJson, *, model: str | None):
        self.turns, self.user, self._send = turns, user, send
        self.model = model
        # OpenAI's defaults: server VAD with 500 ms of silence, audio replies, 24 kHz pcm16 both ways.
        options = SessionOptions(
            model=model, voice_format="pcm", sample_rate=24_000, turn_detection="silence", silence_ms=500
        )
        self.session = RealtimeSession(turns, user, options, self._on_session_event)
        self.id = _id("sess")
        self.vad = True
        self._buffer = bytearray()  # audio the client will commit itself (turn_detection null)
        self._audio_ms = 0.0  # all audio appended in this session, for the VAD events' offsets
        self._user_item: str | None = None  # the user message item being heard or answered
        self._speech_started_ms = 0.0
        self._stop_reason = "turn_detected"  # why the session's next `interrupted` happened
        self._pending: list[ContentPart] = []  # user input not yet answered (item.create, commit)
        self._last_item: str | None = None
        self._reply: _Reply | None = None
        self._replies: OrderedDict[str, _Reply] = OrderedDict()

    async def start(self) -> None:
        await self.emit("session.created", session=self._session_object())

    async def close(self) -> None:
        await self.session.close()

    # Server events.

    async def emit(self, kind: str, **fields) -> None:
        await self._send({"type": kind, "event_id": _id("event"), **fields})

    async def error(self, exc: VoxgateError, client_event_id: str | None = None, param: str | None = None) -> None:
        await self.emit(
            "error",
            error={
                "type": exc.type,
                "code": exc.code,
                "message": exc.message,
                "param": param,
                "event_id": client_event_id,
            },
        )

    def _session_object(self) -> dict:
        options = self.session.options
        if not self.vad:
            detection = None
        elif options.turn_detection == "smart":
            detection = {"type": "semantic_vad", "create_response": True, "interrupt_response": True}
        else:
            detection = {
                "type": "server_vad",
                "threshold": options.vad_threshold,
                "prefix_padding_ms": 300,
                "silence_duration_ms": options.silence_ms,
                "create_response": True,
                "interrupt_response": True,
            }
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model or self.turns.pipeline.registry.defaults[Role.LLM],
            "output_modalities": ["audio" if options.reply_as == "voice" else "text"],
            "instructions": options.system or "",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": options.sample_rate},
                    "turn_detection": detection,
                    "transcription": {"language": options.language},
                },
                "output": {"format": {"type": "audio/pcm", "rate": OUTPUT_RATE}, "voice": options.voice},
            },
            "tools": [],
            "tool_choice": "none",
            "max_output_tokens": "inf",
        }

    async def _on_session_event(self, event: dict) -> None:
        """An event of the voxgate session, as the API's events."""
        kind = event["type"]
        if kind == "speech.started":
            self._user_item, self._speech_started_ms = _id("item"), self._audio_ms
            await self.emit(
                "input_audio_buffer.speech_started", item_id=self._user_item, audio_start_ms=round(self._audio_ms)
            )
        elif kind == "speech.stopped":
            await self._end_reply("cancelled", "turn_detected")  # the user talked over it
            item = self._user_item or _id("item")
            await self.emit("input_audio_buffer.speech_stopped", item_id=item, audio_end_ms=round(self._audio_ms))
            await self._commit_user_item(item, [{"type": "input_audio", "transcript": None}])
            await self._begin_reply(self.session.options.reply_as == "voice")
        elif kind == "transcript":
            seconds = round((self._audio_ms - self._speech_started_ms) / 1000, 2)
            await self.emit(
                "conversation.item.input_audio_transcription.completed",
                item_id=self._user_item,
                content_index=0,
                transcript=event["text"],
                usage={"type": "duration", "seconds": seconds},
            )
        elif kind == "text" and self._reply is not None:
            await self._text_delta(self._reply, event["delta"])
        elif kind == "audio" and self._reply is not None:
            await self._audio_delta(self._reply, event)
        elif kind in ("done", "interrupted"):
            reply = self._reply
            if reply is not None:
                reply.conversation_id, reply.message_id = event["conversation_id"], event["message_id"]
            await self._end_reply(
                "completed" if kind == "done" else "cancelled", self._stop_reason, usage=event.get("usage") or {}
            )
        elif kind == "error":
            await self._end_reply("failed", "error")
            error = event["error"]
            await self.emit("error", error={**error, "param": None, "event_id": None})
        # speech paused/resumed hints (`output.paused`, ...) have no counterpart: OpenAI clients play on.

    async def _commit_user_item(self, item_id: str, content: list[dict]) -> None:
        await self.emit("input_audio_buffer.committed", item_id=item_id, previous_item_id=self._last_item)
        await self._item_added(item_id, "user", content, "completed")

    async def _item_added(self, item_id: str, role: str, content: list[dict], status: str) -> None:
        item = {
            "id": item_id,
            "type": "message",
            "object": "realtime.item",
            "role": role,
            "status": status,
            "content": content,
        }
        await self.emit("conversation.item.added", previous_item_id=self._last_item, item=item)
        if status == "completed":
            await self.emit("conversation.item.done", previous_item_id=self._last_item, item=item)
        self._last_item = item_id

    def _response_object(
        self,
        reply: _Reply,
        status: str,
        details: dict | None = None,
        output: list | None = None,
        usage: dict | None = None,
    ) -> dict:
        response = {
            "object": "realtime.response",
            "id": reply.id,
            "status": status,
            "status_details": details,
            "output": output or [],
            "conversation_id": reply.conversation_id,
            "output_modalities": ["audio" if reply.voice else "text"],
            "usage": None,
        }
        if usage is not None:
            prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
            response["usage"] = {
                "total_tokens": prompt + completion,
                "input_tokens": prompt,
                "output_tokens": completion,
            }
        return response

    def _part(self, reply: _Reply, text: str) -> dict:
        return {"type": "audio", "transcript": text} if reply.voice else {"type": "text", "text": text}

    async def _begin_reply(self, voice: bool) -> None:
        reply = self._reply = _Reply(_id("resp"), _id("item"), voice)
        where = {"response_id": reply.id, "item_id": reply.item_id, "output_index": 0}
        await self.emit("response.created", response=self._response_object(reply, "in_progress"))
        item = {
            "id": reply.item_id,
            "type": "message",
            "object": "realtime.item",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        await self.emit("response.output_item.added", response_id=reply.id, output_index=0, item=item)
        await self.emit("conversation.item.added", previous_item_id=self._last_item, item=item)
        self._last_item = reply.item_id
        await self.emit("response.content_part.added", **where, content_index=0, part=self._part(reply, ""))

    async def _text_delta(self, reply: _Reply, delta: str) -> None:
        reply.text.append(delta)
        kind = "response.output_audio_transcript.delta" if reply.voice else "response.output_text.delta"
        await self.emit(kind, response_id=reply.id, item_id=reply.item_id, output_index=0, content_index=0, delta=delta)

    async def _audio_delta(self, reply: _Reply, event: dict) -> None:
        pcm = await asyncio.to_thread(_to_output_rate, base64.b64decode(event["audio"]), event["sample_rate"])
        reply.clauses.append((reply.audio_ms, event["text"]))
        reply.audio_ms += len(pcm) / 2 / OUTPUT_RATE * 1000
        await self.emit(
            "response.output_audio.delta",
            response_id=reply.id,
            item_id=reply.item_id,
            output_index=0,
            content_index=0,
            delta=base64.b64encode(pcm).decode(),
        )

    async def _end_reply(self, status: str, reason: str, usage: dict | None = None) -> None:
        """Close the open response (if any) with its `.done` events, ending in `response.done`."""
        reply, self._reply = self._reply, None
        if reply is None:
            return
        where = {"response_id": reply.id, "item_id": reply.item_id, "output_index": 0}
        text = "".join(reply.text).strip()
        if reply.voice:
            await self.emit("response.output_audio.done", **where, content_index=0)
            await self.emit("response.output_audio_transcript.done", **where, content_index=0, transcript=text)
        else:
            await self.emit("response.output_text.done", **where, content_index=0, text=text)
        part = self._part(reply, text)
        await self.emit("response.content_part.done", **where, content_index=0, part=part)
        item = {
            "id": reply.item_id,
            "type": "message",
            "object": "realtime.item",
            "role": "assistant",
            "status": "completed" if status == "completed" else "incomplete",
            "content": [{**part, "type": "output_audio" if reply.voice else "output_text"}],
        }
        await self.emit("response.output_item.done", response_id=reply.id, output_index=0, item=item)
        await self.emit("conversation.item.done", previous_item_id=None, item=item)
        details = None if status == "completed" else {"type": status, "reason": reason}
        await self.emit("response.done", response=self._response_object(reply, status, details, [item], usage))
        self._replies[reply.item_id] = reply
        while len(self._replies) > KEPT_ITEMS:
            self._replies.popitem(last=False)

    # Client events.

    async def handle(self, text: str) -> None:
        """One client event; a bad one gets an `error` event and the session goes on."""
        try:
            event = json.loads(text)
            kind = event["type"]
        except (json.JSONDecodeError, KeyError, TypeError):
            await self.error(BadRequest("client events are JSON objects with a `type`", code="invalid_event"))
            return
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        try:
            if handler is None:
                raise BadRequest(
                    f"voxgate does not support the client event {kind!r}; the supported ones are "
                    f"{', '.join(sorted(self._handlers))}",
                    code="unsupported_event",
                )
            await handler(self, event)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(part) for part in first["loc"])
            await self.error(
                BadRequest(f"{kind}: {param}: {first['msg']}", code="invalid_value"), event.get("event_id"), param
            )
        except BadRequest as exc:
            await self.error(exc, event.get("event_id"))

    async def _session_update(self, event: dict) -> None:
        config = SessionConfig.model_validate(event.get("session") or {})
        changes: dict = {}
        if "instructions" in config.model_fields_set:
            changes["system"] = config.instructions or None
        if config.output_modalities:
            changes["reply_as"] = "voice" if config.output_modalities == ["audio"] else "text"
        if config.audio and config.audio.output and config.audio.output.voice is not None:
            voice = config.audio.output.voice
            changes["voice"] = None if voice in OPENAI_VOICES else voice
        given = config.audio.input if config.audio and config.audio.input else None
        if given is not None:
            if given.format:
                changes["sample_rate"] = given.format.rate
            if given.transcription:
                changes["language"] = given.transcription.language
            if "turn_detection" in given.model_fields_set:
                self.vad = given.turn_detection is not None
                changes |= _detection(given.turn_detection) if given.turn_detection else {}
        if changes or given is not None:
            await self.session.update(**changes)
        await self.emit("session.updated", session=self._session_object())

    async def _append(self, event: dict) -> None:
        data = _base64(event.get("audio"), "audio")
        rate = self.session.options.sample_rate
        self._audio_ms += len(data) / 2 / rate * 1000
        if self.vad:
            await self.session.on_audio(data)
            return
        if len(self._buffer) + len(data) > MAX_UTTERANCE_SECONDS * rate * 2:
            raise BadRequest(
                f"the input audio buffer holds at most {MAX_UTTERANCE_SECONDS:.0f} s; commit or clear it",
                code="input_audio_buffer_full",
            )
        self._buffer += data

    async def _commit(self, event: dict) -> None:
        if self.vad:
            raise BadRequest(
                "with turn detection on, the server commits the buffer at the end of each turn; "
                "set `audio.input.turn_detection` to null to commit yourself",
                code="vad_commits",
            )
        if len(self._buffer) < self.session.options.sample_rate // 10 * 2:
            raise BadRequest(
                "the input audio buffer holds less than 100 ms of audio", code="input_audio_buffer_commit_empty"
            )
        self._check_room(1)
        data, self._buffer = bytes(self._buffer), bytearray()
        self._pending.append(ContentPart(type="input_audio", audio=base64.b64encode(data).decode()))
        self._user_item, self._speech_started_ms = (
            _id("item"),
            self._audio_ms - len(data) / 2 / (self.session.options.sample_rate / 1000),
        )
        await self._commit_user_item(self._user_item, [{"type": "input_audio", "transcript": None}])

    def _check_room(self, parts: int) -> None:
        if len(self._pending) + parts > MAX_PENDING_PARTS:
            raise BadRequest(
                f"at most {MAX_PENDING_PARTS} user inputs wait for an answer; send response.create",
                code="too_many_pending_items",
            )

    async def _clear(self, event: dict) -> None:
        self._buffer = bytearray()
        if self.vad:
            await self.session.update()  # forgets the speech heard so far
        await self.emit("input_audio_buffer.cleared")

    async def _item_create(self, event: dict) -> None:
        item = UserItem.model_validate(event.get("item") or {})
        for part in item.content:
            if part.type == "input_text" and not (part.text or "").strip():
                raise BadRequest("an input_text part needs `text`", code="invalid_value")
            if part.type == "input_audio":
                _base64(part.audio, "item.content.audio")
        self._check_room(len(item.content))
        self._pending.extend(item.content)
        item_id = (event.get("item") or {}).get("id") or _id("item")
        await self._item_added(
            str(item_id)[:64], "user", [part.model_dump(exclude_none=True) for part in item.content], "completed"
        )

    async def _response_create(self, event: dict) -> None:
        config = ResponseConfig.model_validate(event.get("response") or {})
        turn = await self._take_pending()
        overrides: dict = {}
        if config.instructions:
            overrides["system"] = config.instructions
        if config.output_modalities:
            overrides["reply_as"] = "voice" if config.output_modalities == ["audio"] else "text"
        await self._stop("client_cancelled")  # a new response replaces the one in progress
        await self._begin_reply(overrides.get("reply_as", self.session.options.reply_as) == "voice")
        await self.session.respond(turn, **overrides)

    async def _stop(self, reason: str) -> None:
        """Stop the reply in progress: the session stores what was sent (its `interrupted`
        event closes our response); a reply that sent nothing is closed here."""
        self._stop_reason = reason
        try:
            await self.session.interrupt()
        finally:
            self._stop_reason = "turn_detected"
        await self._end_reply("cancelled", reason)

    async def _take_pending(self) -> TurnInput:
        """The user input not yet answered, as one turn: its texts, or its audio."""
        parts, self._pending = self._pending, []
        texts = [part.text for part in parts if part.type == "input_text" and part.text is not None]
        clips = [base64.b64decode(part.audio) for part in parts if part.type == "input_audio" and part.audio]
        if texts and clips:
            raise BadRequest("voxgate answers either text or audio in one response, not both", code="mixed_input")
        if texts:
            return TurnInput(text="\n".join(texts))
        if clips:
            pcm = np.frombuffer(b"".join(clips), "<i2")
            wav = await asyncio.to_thread(audio.encode, pcm, self.session.options.sample_rate, "wav")
            return TurnInput(audio=wav)
        raise BadRequest(
            "there is nothing to answer: add a user message (conversation.item.create) or commit audio first",
            code="no_user_input",
        )

    async def _response_cancel(self, event: dict) -> None:
        if self._reply is None:
            raise BadRequest("no response is in progress", code="response_cancel_not_active")
        await self._stop("client_cancelled")

    async def _truncate(self, event: dict) -> None:
        item_id, end_ms = event.get("item_id"), event.get("audio_end_ms")
        if not isinstance(end_ms, int) or end_ms < 0:
            raise BadRequest("`audio_end_ms` must be a whole number of milliseconds", code="invalid_value")
        if self._reply is not None and self._reply.item_id == item_id:
            await self._stop("client_cancelled")  # stores what was sent; cut to what was played below
        reply = self._replies.get(item_id) if isinstance(item_id, str) else None
        if reply is None or not reply.voice:
            raise BadRequest(f"no assistant audio item {item_id!r} in this session", code="invalid_item_id")
        if reply.conversation_id is not None and reply.message_id is not None:
            await self.turns.trim_reply(self.user, reply.conversation_id, reply.message_id, reply.heard_until(end_ms))
        await self.emit("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms)

    _handlers = {
        "session.update": _session_update,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.commit": _commit,
        "input_audio_buffer.clear": _clear,
        "conversation.item.create": _item_create,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
        "conversation.item.truncate": _truncate,
    }


def _detection(detection: TurnDetection) -> dict:
    """The API's turn detection as voxgate's: server_vad ends a turn on silence, semantic_vad
    asks the Smart Turn model."""
    if detection.type == "semantic_vad":
        threshold, longest = EAGERNESS[detection.eagerness]
        return {"turn_detection": "smart", "turn_threshold": threshold, "max_silence_ms": longest}
    changes: dict = {"turn_detection": "silence"}
    if detection.threshold is not None:
        changes["vad_threshold"] = detection.threshold
    if detection.silence_duration_ms is not None:
        changes["silence_ms"] = detection.silence_duration_ms
    return changes


def _base64(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise BadRequest(f"`{name}` must be base64-encoded pcm16 audio", code="invalid_value")
    try:
        data = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise BadRequest(f"`{name}` is not valid base64", code="invalid_value") from None
    if len(data) % 2:
        raise BadRequest(f"`{name}` must be whole 16-bit samples", code="invalid_value")
    return data


def _to_output_rate(data: bytes, rate: int) -> bytes:
    """A reply chunk (pcm16 at the voice's rate) as the API's 24 kHz pcm16."""
    if rate == OUTPUT_RATE:
        return data
    samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768
    resampled = audio.resample(samples, rate, OUTPUT_RATE)
    return (np.clip(resampled, -1, 1) * 32767).astype("<i2").tobytes()
