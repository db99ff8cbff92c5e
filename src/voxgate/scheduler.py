"""The CPU budget: worker threads that run the most urgent model work first.

On a small CPU, engines that together ask for more threads than there are cores collapse
(llama.cpp's threads spin waiting for each other). So the process owns a fixed budget of
`VOXGATE_THREADS`: the local LLM gets its share as llama.cpp threads, and every other
piece of CPU work (decoding, STT, end-of-turn decisions, TTS, encoding) runs one call per
budget thread, each engine single-threaded, on a `DeadlinePool`.

The pool runs the work with the earliest deadline first. Work that decides when a person
hears the first audio (their STT, the turn decision, the first spoken clause) is due when
they stopped talking (a realtime turn sets that with `due_at`; otherwise: when submitted),
so the longest-waiting person goes first; a later clause of another reply is due when the
client will have played what it already has, so it waits behind first-audio work without
leaving a gap in playback.

The local LLM's share follows the same order through a `Floor`: one reply decodes at a
time, and a reply past its first clause, due at the pace it is heard, steps aside for
another's first clause.
"""

import contextvars
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field


class Deadline:
    """When work is due (time.monotonic()). Its owner may move it while the work runs: a
    reply is urgent until its first clause is written, then due at the pace it is heard."""

    def __init__(self, at: float):
        self.at = at
        self.abandoned = False

    def abandon(self) -> None:
        """Nobody waits for the work any more: it goes behind everything, and need not run."""
        self.at, self.abandoned = math.inf, True


# When the work submitted from the current task is due; None: now.
_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("voxgate_deadline", default=None)


@contextmanager
def due_at(deadline: float | Deadline | None):
    """Work submitted inside this block is due at `deadline` (None: now, most urgent)."""
    token = _deadline.set(Deadline(deadline) if isinstance(deadline, float | int) else deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def caller_deadline() -> Deadline:
    """The current task's deadline, live (a fixed one at now when none was set)."""
    return _deadline.get() or Deadline(time.monotonic())


def current_deadline() -> float:
    return caller_deadline().at


@dataclass(order=True)
class _Job:
    deadline: float
    seq: int
    future: Future = field(compare=False)
    fn: Callable[[], object] = field(compare=False)


class DeadlinePool:
    """A fixed set of threads taking jobs earliest-deadline-first (FIFO among equals)."""

    def __init__(self, name: str, workers: int):
        self._jobs: list[_Job] = []
        self._ready = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"voxgate-{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], object], deadline: float | None = None) -> Future:
        future: Future = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the pool is closed")
            heapq.heappush(
                self._jobs, _Job(current_deadline() if deadline is None else deadline, next(self._seq), future, fn)
            )
            self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self._closed:
                    self._ready.wait()
                if self._closed and not self._jobs:
                    return
                job = heapq.heappop(self._jobs)
            if not job.future.set_running_or_notify_cancel():
                continue  # cancelled while it waited: never started
            try:
                job.future.set_result(job.fn())
            except BaseException as exc:  # handed to the caller, who re-raises it
                job.future.set_exception(exc)

    def close(self, timeout: float = 10.0) -> None:
        """Drop waiting jobs (their callers see a cancellation) and wait for running ones
        to end: native engines must not be torn down under a thread still inside them."""
        with self._ready:
            self._closed = True
            jobs, self._jobs = self._jobs, []
            self._ready.notify_all()
        for job in jobs:
            job.future.cancel()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)


class Floor:
    """One user at a time of something that work shares badly, the most urgent first; the
    user is told when to step aside for more urgent work.

    Why for llama.cpp on a small CPU: decoding n replies together takes about n times as
    long per token, so every first clause comes at the pace of all of them. One at a time,
    earliest deadline first, the same work ends as soon for the last and much sooner for the
    others (`bench/llm_threads.py` with and without `--together`).
    """

    _RECHECK_SECONDS = 0.05  # deadlines move without notice (their owners set them)

    def __init__(self) -> None:
        self._claims: dict[int, Deadline] = {}  # by arrival, which breaks ties
        self._arrivals = itertools.count()
        self._changed = threading.Condition()

    @contextmanager
    def claim(self, deadline: Deadline) -> Iterator["Claim"]:
        with self._changed:
            key = next(self._arrivals)
            self._claims[key] = deadline
            self._changed.notify_all()
        try:
            yield Claim(self, key)
        finally:
            with self._changed:
                del self._claims[key]
                self._changed.notify_all()

    def _first(self) -> int:
        return min(self._claims, key=lambda key: (self._claims[key].at, key))

    def _wait_turn(self, key: int) -> bool:
        with self._changed:
            self._changed.notify_all()  # a claim stepping aside may make it another's turn
            while self._first() != key:
                if self._claims[key].abandoned:
                    return False
                self._changed.wait(self._RECHECK_SECONDS)
            return not self._claims[key].abandoned

    def _outranked(self, key: int) -> bool:
        with self._changed:
            return self._first() != key


@dataclass(frozen=True)
class Claim:
    floor: Floor
    key: int

    def wait_turn(self) -> bool:
        """Block until no claim is more urgent than this one; False (at once) if its
        deadline was abandoned."""
        return self.floor._wait_turn(self.key)

    def urged(self) -> bool:
        """Whether a more urgent claim waits: the holder should step aside now."""
        return self.floor._outranked(self.key)
