"""Bounded lanes that run blocking model calls off the event loop.

Each model role gets a lane: a fixed number of places (what the model runs at once plus
what may wait) on a `DeadlinePool` of threads. Lanes may share a pool: that is how the
speech engines share the CPU budget. When every place is taken the lane refuses at once
with 503 + Retry-After instead of letting latency grow without bound.
"""

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from voxgate.errors import Unavailable
from voxgate.scheduler import DeadlinePool

T = TypeVar("T")
Emit = Callable[[object], bool]
_END = object()


class Lane:
    def __init__(self, name: str, *, pool: DeadlinePool, capacity: int):
        self.name = name
        self.capacity = capacity
        self._pool = pool
        self._in_flight = 0  # only touched on the event loop thread, so no lock

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        return await self.submit(fn, *args, **kwargs)

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> "asyncio.Future[T]":
        """Start `fn` on the lane, or raise Unavailable at once when the lane is full. The
        work is due at the caller's `scheduler.due_at` deadline (default: now)."""
        if self._in_flight >= self.capacity:
            raise Unavailable(f"{self.name} is busy ({self.capacity} requests in progress); retry shortly",
                              code="busy")
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        work = self._pool.submit(functools.partial(fn, *args, **kwargs))
        # Release the place when the thread finishes, not when the caller stops waiting:
        # a cancelled request whose model call already started still occupies the model.
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return asyncio.wrap_future(work, loop=loop)

    def stream(self, fn: Callable[[Emit], object]) -> AsyncIterator:
        """Run `fn(emit)` on the lane and iterate, as they come, the items it passes to `emit`.

        The lane's place is taken now (a full lane raises here, before anything is sent);
        `emit` returns True once the consumer has stopped iterating, so `fn` can stop early.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def emit(item) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, item)
            return stop.is_set()

        future = self.submit(fn, emit)
        future.add_done_callback(lambda _: queue.put_nowait(_END))

        async def items() -> AsyncIterator:
            try:
                while (item := await queue.get()) is not _END:
                    yield item
                future.result()  # re-raise what went wrong in the thread
            finally:
                stop.set()

        return items()

    def _release(self) -> None:
        self._in_flight -= 1
