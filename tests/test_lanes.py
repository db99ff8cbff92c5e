"""Lanes run blocking work off the event loop and refuse work beyond their capacity."""

import asyncio
import threading

import pytest

from voxgate.errors import Unavailable
from voxgate.lanes import Lane


def test_full_lane_refuses_at_once_and_frees_places():
    async def scenario():
        lane = Lane("the test model", workers=1, queue_size=1)
        release = threading.Event()
        first = asyncio.ensure_future(lane.run(release.wait))
        second = asyncio.ensure_future(lane.run(release.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(Unavailable) as info:
            await lane.run(release.wait)
        assert info.value.retry_after > 0 and "busy" in info.value.message
        release.set()
        await asyncio.gather(first, second)
        assert lane.in_flight == 0
        assert await lane.run(lambda: 42) == 42
        lane.close()

    asyncio.run(scenario())


def test_event_loop_keeps_running_while_a_model_call_blocks():
    async def scenario():
        lane = Lane("the test model", workers=1, queue_size=0)
        release = threading.Event()
        work = asyncio.ensure_future(lane.run(release.wait))
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1
        release.set()
        await work
        lane.close()
        return ticks

    assert asyncio.run(scenario()) == 5


def test_place_is_held_until_a_cancelled_call_really_ends():
    async def scenario():
        lane = Lane("the test model", workers=1, queue_size=0)
        release = threading.Event()
        work = asyncio.ensure_future(lane.run(release.wait))
        await asyncio.sleep(0.05)
        work.cancel()
        await asyncio.sleep(0.05)
        assert lane.in_flight == 1  # the thread is still inside the model
        release.set()
        await asyncio.sleep(0.05)
        assert lane.in_flight == 0
        lane.close()

    asyncio.run(scenario())
