"""Engines in memory: each loaded once however many threads ask at the same moment,
counted while in use, and dropped when idle (never while a request holds one)."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from voxgate.catalog import Role
from voxgate.engines.base import ChatModel, Engine, SpeechToText, TextToSpeech, TurnDetector

# The interface an engine of each role must offer: checked when it is loaded.
INTERFACES: dict[Role, type] = {  # type, not type[Engine]: mypy refuses protocols there
    Role.STT: SpeechToText,
    Role.LLM: ChatModel,
    Role.TTS: TextToSpeech,
    Role.TURN: TurnDetector,
}


@dataclass
class _Entry:
    engine: Engine
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0


class LoadedModels:
    def __init__(self, open_engine: Callable[[Role, str], Engine], *, warm_up: bool):
        self._open = open_engine
        self._warm_up = warm_up
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}  # one per model name, made under _lock

    def _entry(self, role: Role, name: str) -> _Entry:
        if (entry := self._entries.get(name)) is not None:
            return entry
        with self._lock:  # two threads asking at once must get the same lock
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:  # one load per model; other callers wait for it
            if (entry := self._entries.get(name)) is None:
                engine = self._open(role, name)
                if not isinstance(engine, INTERFACES[role]):
                    raise TypeError(f"{type(engine).__name__} does not implement {INTERFACES[role].__name__}")
                if self._warm_up:
                    engine.warm_up()
                entry = _Entry(engine)
                with self._lock:
                    self._entries[name] = entry
        return entry

    def load(self, role: Role, name: str) -> None:
        """Load if needed; either way the model's idle clock restarts."""
        self._entry(role, name).last_used = time.monotonic()

    @contextmanager
    def use(self, role: Role, name: str) -> Iterator[Any]:
        """The engine, loaded if needed and counted as in use until the block ends. Any: it
        implements INTERFACES[role], checked at load."""
        entry = self._entry(role, name)
        with self._lock:
            entry.users += 1
        try:
            yield entry.engine
        finally:
            with self._lock:
                entry.users -= 1
                entry.last_used = time.monotonic()

    def names(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def drop(self, name: str) -> bool:
        """Forget the engine; requests that hold it finish first, then its memory is freed."""
        with self._lock:
            return self._entries.pop(name, None) is not None

    def drop_idle(self, timeout: float, keep: set[str]) -> list[str]:
        """Drop the models not in `keep`, not in use, and unused for `timeout` seconds."""
        now = time.monotonic()
        with self._lock:
            idle = [
                name
                for name, entry in self._entries.items()
                if name not in keep and entry.users == 0 and now - entry.last_used > timeout
            ]
            for name in idle:
                del self._entries[name]
        return idle

    def touch(self, name: str) -> None:
        """Restart a loaded model's idle clock."""
        with self._lock:
            if (entry := self._entries.get(name)) is not None:
                entry.last_used = time.monotonic()
