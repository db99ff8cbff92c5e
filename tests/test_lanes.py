"""Lanes run blocking work off the event loop and refuse work beyond their capacity; the
CPU budget's pool runs the most urgent work first."""

import asyncio
import threading
import time

import pytest

from voxgate.errors import Unavailable
from voxgate.lanes import Lane
from voxgate.scheduler import DeadlinePool, due_at


def test_full_lane_refuses_at_once_and_frees_places():
    async def scenario():
        pool = DeadlinePool("test", 1)
        lane = Lane("the test model", pool=pool, capacity=2)
        release = threading.Event()
        first = asyncio.ensure_future(lane.run(release.wait, 10))
        second = asyncio.ensure_future(lane.run(release.wait, 10))
        await asyncio.sleep(0.05)
        with pytest.raises(Unavailable) as info:
            await lane.run(release.wait, 10)
        assert info.value.retry_after > 0 and "busy" in info.value.message
        release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert lane.in_flight == 0
        assert await asyncio.wait_for(lane.run(lambda: 42), 5) == 42
        pool.close()

    asyncio.run(scenario())


def test_event_loop_keeps_running_while_a_model_call_blocks():
    async def scenario():
        pool = DeadlinePool("test", 1)
        lane = Lane("the test model", pool=pool, capacity=1)
        work = asyncio.ensure_future(lane.run(time.sleep, 0.5))
        await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.sleep(0.05)
        waited = time.monotonic() - started
        assert not work.done()  # the call still blocks its thread...
        await asyncio.wait_for(work, 5)
        pool.close()
        return waited

    assert asyncio.run(scenario()) < 0.3  # ...while the loop went on serving


def test_place_is_held_until_a_cancelled_call_really_ends():
    async def scenario():
        pool = DeadlinePool("test", 1)
        lane = Lane("the test model", pool=pool, capacity=1)
        release = threading.Event()
        work = asyncio.ensure_future(lane.run(release.wait, 10))
        await asyncio.sleep(0.05)
        work.cancel()
        await asyncio.sleep(0.05)
        assert lane.in_flight == 1  # the thread is still inside the model
        release.set()
        await asyncio.sleep(0.05)
        assert lane.in_flight == 0
        pool.close()

    asyncio.run(scenario())


def test_pool_runs_the_earliest_deadline_first():
    pool = DeadlinePool("test", 1)
    order: list[str] = []
    blocker = threading.Event()
    pool.submit(lambda: blocker.wait(10))  # occupies the only thread while the rest queue up
    now = time.monotonic()
    later_clause = pool.submit(lambda: order.append("later clause"), deadline=now + 5)
    first_audio = pool.submit(lambda: order.append("first audio"), deadline=now)
    with due_at(now + 1):
        middle = pool.submit(lambda: order.append("due in 1 s"))
    blocker.set()
    for future in (later_clause, first_audio, middle):
        future.result(timeout=5)
    assert order == ["first audio", "due in 1 s", "later clause"]
    pool.close()


def test_work_cancelled_while_waiting_never_runs():
    pool = DeadlinePool("test", 1)
    ran = threading.Event()
    blocker = threading.Event()
    pool.submit(lambda: blocker.wait(10))
    waiting = pool.submit(ran.set)
    assert waiting.cancel()
    blocker.set()
    pool.submit(lambda: None).result(timeout=5)
    assert not ran.is_set()
    pool.close()


def test_a_refusing_lane_fails_its_callers_at_once_and_starts_nothing_more():
    async def scenario():
        pool = DeadlinePool("test", 1)
        lane = Lane("the test model", pool=pool, capacity=3)
        release, ran = threading.Event(), []
        running = asyncio.ensure_future(lane.run(release.wait, 10))
        waiting = asyncio.ensure_future(lane.run(ran.append, "never"))
        while lane.queued != 1:  # one on the thread, one waiting for it
            await asyncio.sleep(0.01)
        lane.refuse(lambda: Unavailable("shutting down", code="shutting_down"))
        for caller in (running, waiting):
            with pytest.raises(Unavailable, match="shutting down"):
                await asyncio.wait_for(caller, 1)  # at once, though the thread still runs
        with pytest.raises(Unavailable, match="shutting down"):
            lane.submit(ran.append, "new")
        release.set()
        while lane.in_flight:  # the place is freed when the thread's call returns
            await asyncio.sleep(0.01)
        pool.close()
        assert ran == [] and lane.queued == 0

    asyncio.run(scenario())


def test_a_refused_stream_tells_its_producer_to_stop():
    async def scenario():
        pool = DeadlinePool("test", 1)
        lane = Lane("the test model", pool=pool, capacity=1)
        told_to_stop = threading.Event()

        def produce(emit) -> None:
            while not emit("token"):
                time.sleep(0.01)
            told_to_stop.set()

        items = lane.stream(produce)
        assert await anext(items) == "token"
        lane.refuse(lambda: Unavailable("shutting down", code="shutting_down"))
        with pytest.raises(Unavailable):
            async for _ in items:
                pass
        assert await asyncio.to_thread(told_to_stop.wait, 5)
        pool.close()

    asyncio.run(scenario())


def test_a_call_that_outlives_the_event_loop_ends_quietly(caplog):
    pool = DeadlinePool("test", 1)
    release = threading.Event()

    async def scenario():
        lane = Lane("the test model", pool=pool, capacity=1)
        lane.submit(release.wait, 10)  # still running when the loop closes, as at a forced exit

    asyncio.run(scenario())
    release.set()
    pool.close()
    assert not [r for r in caplog.records if r.levelno >= 40], "e.g. 'Event loop is closed' from the thread"
