"""Microphone audio may run a little ahead of real time, never far."""

import pytest

from voxgate.realtime import AudioPacer


def test_audio_within_the_burst_is_taken_at_once_and_beyond_it_waits():
    pacer = AudioPacer(ahead=2.0)
    assert [pacer.wait_for(0.5, now=0.0) for _ in range(4)] == [0.0] * 4  # 2 s at once: a burst
    assert pacer.wait_for(0.5, now=0.0) == pytest.approx(0.5)
    assert pacer.wait_for(0.5, now=1.0) == pytest.approx(0.0)  # a second passed: 1 s more is fine


def test_real_time_audio_never_waits():
    pacer = AudioPacer(ahead=2.0)
    assert all(pacer.wait_for(0.02, now=i * 0.02) == 0.0 for i in range(10_000))


def test_silence_from_the_client_banks_no_credit():
    pacer = AudioPacer(ahead=2.0)
    pacer.wait_for(0.1, now=0.0)
    assert pacer.wait_for(10.0, now=600.0) == pytest.approx(8.0)  # idle for 10 min, then 10 s at once
