"""Echo recognition against the reply audio the client may have played: the server's
playback clock says how much of what was sent is still queued at the client."""

import numpy as np

from voxgate.echo import PLAYBACK_LAG_SECONDS, RATE, EchoGuard

rng = np.random.default_rng(7)
REPLY = (rng.standard_normal(20 * RATE) * 0.1).astype(np.float32)  # 20 s sent at once, ahead of playback


def guard() -> EchoGuard:
    echo = EchoGuard()
    echo.sent(REPLY)
    return echo


def heard_from(position: float, *, delay: float = 0.0) -> np.ndarray:
    """The last second the microphone heard when playback was at `position` seconds: the
    reply `delay` seconds late, at -12 dB, with room noise."""
    end = int((position - delay) * RATE)
    noise = rng.standard_normal(RATE).astype(np.float32) * 0.005
    return REPLY[end - RATE : end] * 10 ** (-12 / 20) + noise


def test_played_reply_coming_back_late_is_echo():
    unplayed = 12.0  # 8 s of the 20 played
    for delay in (0.0, 0.3, PLAYBACK_LAG_SECONDS - 0.5):
        assert guard().is_echo(heard_from(8.0, delay=delay), unplayed=unplayed), delay


def test_someone_talking_is_not_echo():
    voice = (rng.standard_normal(RATE) * 0.1).astype(np.float32)
    assert not guard().is_echo(voice, unplayed=12.0)


def test_reply_the_client_has_not_played_yet_is_not_echo():
    assert guard().is_echo(heard_from(15.0), unplayed=5.0)
    assert not guard().is_echo(heard_from(15.0), unplayed=12.0)  # playback is at 8 s
