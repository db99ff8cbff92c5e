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
"""

import contextvars
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

# When the work submitted from the current task is due (time.monotonic()); None: now.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("voxgate_deadline", default=None)


@contextmanager
def due_at(deadline: float | None):
    """Work submitted inside this block is due at `deadline` (None: now, most urgent)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def current_deadline() -> float:
    deadline = _deadline.get()
    return time.monotonic() if deadline is None else deadline


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
