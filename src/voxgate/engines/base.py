"""One typed interface per model role. Backends implement these; nothing else about them leaks.

All methods are blocking and CPU-bound: callers run them through a `voxgate.lanes.Lane`
so the event loop never waits on a model.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...] = ()


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    reuse_prefix: bool = True  # let the backend reuse a cached prompt prefix (False: benchmarks only)
    seed: int | None = None  # sampling seed; None: the backend's random one


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the backend's prefix cache


# Receives each text delta as it is generated; returning True asks the model to stop.
OnDelta = Callable[[str], bool | None]


@dataclass(frozen=True)
class SpeechChunk:
    pcm: np.ndarray  # int16 mono
    sample_rate: int


@runtime_checkable
class Engine(Protocol):
    """What every loaded model offers, whatever its role."""

    name: str

    def warm_up(self) -> None:
        """Run once on a tiny input, so the first real request does not pay for lazy setup."""
        ...


@runtime_checkable
class SpeechToText(Engine, Protocol):
    def transcribe(
        self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None, temperature: float = 0.0
    ) -> Transcription:
        """Transcribe 16 kHz mono float32 samples; an empty text means no speech was found."""
        ...


@runtime_checkable
class ChatModel(Engine, Protocol):
    def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        """Answer the conversation, calling `on_delta` with each piece of text as it is produced."""
        ...


@dataclass(frozen=True)
class Readings:
    """What short speech may have said, best first (none: no speech), with any close rivals.
    `sure`: the model would stake a reply on its best. `language`: the one they were heard
    in, for another model to hear the speech in it too."""

    texts: tuple[str, ...] = ()
    sure: bool = True
    language: str | None = None


@runtime_checkable
class HearsAlternatives(Protocol):
    """A speech-to-text model that can say what else short speech may have been."""

    def alternatives(self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None) -> Readings:
        """The readings it finds nearly as likely as its best."""
        ...


@runtime_checkable
class Drafts(Protocol):
    """A speech-to-text model with a quick, rough reading of speech still being said (cut
    off mid-word): words for a head start, never worth its slow, careful path."""

    def draft(self, samples: np.ndarray, *, language: str | None = None) -> Transcription:
        """What it heard at first hearing, maybe inexact or unfinished."""
        ...


@runtime_checkable
class Prefills(Protocol):
    """A chat model that can evaluate, while idle, what is known of a request before it is
    made: after a reply, the opening of the user's next message; while the user speaks,
    the words they have said so far."""

    def prefill(self, messages: tuple[ChatMessage, ...]) -> None:
        """`messages` end with a user message, whole or begun."""
        ...


@runtime_checkable
class TextToSpeech(Engine, Protocol):
    sample_rate: int

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[SpeechChunk]:
        """Speak `text`, yielding audio sentence by sentence."""
        ...


@runtime_checkable
class TurnDetector(Engine, Protocol):
    def completion(self, samples: np.ndarray) -> float:
        """The probability (0..1) that the speaker has finished their turn, judged from the
        utterance so far as 16 kHz mono float32 samples."""
        ...
