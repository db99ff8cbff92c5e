"""Bounded lanes that run blocking model calls off the event loop.

Each model role gets a lane: a fixed number of places (what the model runs at once plus
what may wait) on a `DeadlinePool` of threads. Lanes may share a pool: that is how the
speech engines share the CPU budget. When every place is taken the lane refuses at once
with 503 + Retry-After instead of letting latency grow without bound.

At shutdown a lane is told to `refuse`: its callers stop waiting at once with the error
given, so a turn still in flight ends with that error instead of a dropped connection.
"""

import asyncio
import contextvars
import functools
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Future
from typing import TypeVar

from voxgate.errors import Unavailable, VoxgateError
from voxgate.scheduler import DeadlinePool

T = TypeVar("T")
Emit = Callable[[object], bool]
_END = object()


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable, *args) -> bool:
    """Hand `fn` to the loop from a worker thread; False once the loop is closed (the
    process is exiting and nobody waits for the result any more)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        return False
    return True


class Lane:
    def __init__(self, name: str, *, pool: DeadlinePool, capacity: int):
        self.name = name
        self.capacity = capacity
        self._pool = pool
        self._in_flight = 0  # only touched on the event loop thread, so no lock
        self._running = 0  # changed on worker threads
        self._lock = threading.Lock()
        self._waiting: dict[asyncio.Future, Future] = {}  # caller's future -> the pool's job
        self._refusal: Callable[[], VoxgateError] | None = None

    @property
    def in_flight(self) -> int:
        """Places taken: calls running on a thread plus calls waiting for one."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Calls waiting for a thread."""
        return max(0, self._in_flight - self._running)

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        return await self.submit(fn, *args, **kwargs)

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> "asyncio.Future[T]":
        """Start `fn` on the lane, or raise Unavailable at once when the lane is full. The
        work is due at the caller's `scheduler.due_at` deadline (default: now)."""
        if self._refusal is not None:
            raise self._refusal()
        if self._in_flight >= self.capacity:
            raise Unavailable(f"{self.name} is busy ({self.capacity} requests in progress); retry shortly", code="busy")
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        # The caller's context goes along, so what the call logs carries the request's id.
        work = self._pool.submit(functools.partial(self._call, contextvars.copy_context(), fn, args, kwargs))
        waiter = loop.create_future()
        self._waiting[waiter] = work

        def settle(done: Future) -> None:
            # Release the place when the thread finishes, not when the caller stops waiting:
            # a cancelled request whose model call already started still occupies the model.
            self._in_flight -= 1
            if waiter.done():
                return
            if done.cancelled():
                waiter.cancel()
            elif (error := done.exception()) is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(done.result())

        def forget(_: asyncio.Future) -> None:
            self._waiting.pop(waiter, None)
            if waiter.cancelled():
                work.cancel()  # a call still waiting for a thread never starts

        work.add_done_callback(lambda done: _call_soon(loop, settle, done))
        waiter.add_done_callback(forget)
        return waiter

    def _call(self, context: contextvars.Context, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        with self._lock:
            self._running += 1
        try:
            return context.run(fn, *args, **kwargs)
        finally:
            with self._lock:
                self._running -= 1

    def stream(self, fn: Callable[[Emit], object]) -> AsyncGenerator:
        """Run `fn(emit)` on the lane and iterate, as they come, the items it passes to `emit`.

        The lane's place is taken now (a full lane raises here, before anything is sent);
        `emit` returns True once the consumer has stopped iterating, so `fn` can stop early.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def emit(item) -> bool:
            return not _call_soon(loop, queue.put_nowait, item) or stop.is_set()

        future = self.submit(fn, emit)

        def finished(_: asyncio.Future) -> None:
            if not future.cancelled():
                future.exception()  # marks it retrieved: a consumer that left early never reads it
            queue.put_nowait(_END)

        future.add_done_callback(finished)

        async def items() -> AsyncGenerator:
            try:
                while (item := await queue.get()) is not _END:
                    yield item
                future.result()  # re-raise what went wrong in the thread (or the lane's refusal)
            finally:
                stop.set()

        return items()

    def refuse(self, error: Callable[[], VoxgateError]) -> None:
        """From now on fail every caller waiting on this lane, and every new one, with
        `error()`. Calls still waiting for a thread never start; a call already on a thread
        runs on to its end (a stream's producer is told to stop at its next item)."""
        self._refusal = error
        for waiter, work in list(self._waiting.items()):
            work.cancel()
            if not waiter.done():
                waiter.set_exception(error())


def lanes_of(owner: object) -> dict[str, Lane]:
    """The lanes an object (the pipeline) holds, by attribute name without `_lane`."""
    return {name.removesuffix("_lane"): value for name, value in vars(owner).items() if isinstance(value, Lane)}
