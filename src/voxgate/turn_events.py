"""A turn's input, its result, and the events a streamed turn is made of (what was heard,
text as it is written, each clause's audio, the end). Transports map them to the wire in
`turns.wire_event`."""

import base64
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from voxgate.audio import VoiceFormat
from voxgate.engines.base import ChatMessage


@dataclass(frozen=True)
class TurnInput:
    text: str | None = None
    audio: bytes | None = None
    reply_as: Literal["text", "voice"] = "text"
    voice_format: VoiceFormat = "wav"
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    language: str | None = None  # fixes the language heard and answered; None: Whisper detects it
    model: str | None = None  # the LLM; None: the default
    voice: str | None = None  # None: the default voice if it speaks the reply's language, else one that does
    history: tuple[ChatMessage, ...] = ()  # earlier turns of the conversation, oldest first
    samples: np.ndarray | None = None  # `audio` already decoded (16 kHz float32): realtime speech


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
    voice: str | None = None  # the voice that spoke the reply
    models: dict[str, str | None] = field(default_factory=dict)  # role -> model that did the work
    usage: dict[str, int] = field(default_factory=dict)  # the LLM's prompt, completion and cached tokens


@dataclass(frozen=True)
class Heard:
    """What the user said."""

    text: str
    language: str


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ClauseAudio:
    """One clause of the reply, encoded in the requested voice format (and as int16 `pcm`)."""

    audio: bytes
    sample_rate: int
    text: str
    index: int
    pcm: np.ndarray

    def to_json(self, voice_format: str) -> dict:
        """The chunk as JSON for text-only transports (SSE, WebSocket messages)."""
        return {
            "audio": base64.b64encode(self.audio).decode(),
            "format": voice_format,
            "sample_rate": self.sample_rate,
            "index": self.index,
            "text": self.text,
        }


@dataclass(frozen=True)
class TurnDone:
    result: TurnResult


TurnEvent = Heard | TextDelta | ClauseAudio | TurnDone
