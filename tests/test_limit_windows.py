"""Rate limit windows: a full key waits until its window closes, and memory stays bounded.
(The limits as clients meet them are tested over HTTP in tests/api/test_limits.py.)"""

import pytest

from voxgate import limits
from voxgate.limits import FixedWindow


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    return now


def test_a_full_key_waits_until_its_window_closes(clock):
    window = FixedWindow(limit=2, seconds=10)
    window.hit("a")
    assert window.wait("a") == 0
    window.hit("a")
    assert window.wait("a") == 10 and window.wait("b") == 0
    clock[0] += 9.5
    assert window.wait("a") == 1  # whole seconds, never 0 while still closed
    clock[0] += 0.5
    assert window.wait("a") == 0
    window.hit("a")
    assert window.wait("a") == 0  # a new window, with its own count


def test_forgiven_events_do_not_count(clock):
    window = FixedWindow(limit=1, seconds=10)
    window.hit("a")
    window.forgive("a")
    assert window.wait("a") == 0
    window.hit("a")
    assert window.wait("a") == 10


def test_closed_windows_are_dropped_and_open_ones_are_capped(clock):
    window = FixedWindow(limit=1, seconds=10, max_keys=3)
    for key in "abc":
        window.hit(key)
    clock[0] += 10
    window.hit("d")
    assert len(window._windows) == 1  # a, b and c closed and were dropped
    for key in "efg":
        clock[0] += 1
        window.hit(key)
    assert len(window._windows) == 3
    assert window.wait("d") == 0  # the oldest open window made room
    assert [window.wait(key) for key in "efg"] == [8, 9, 10]
