from voxgate.engines.base import Segment
from voxgate.subtitles import to_srt, to_vtt

SEGMENTS = (Segment(0.0, 1.5, "Hello."), Segment(3661.25, 3662.0, "An hour later."))


def test_srt():
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n01:01:01,250 --> 01:01:02,000\nAn hour later.\n\n"
    )


def test_vtt():
    assert to_vtt(SEGMENTS).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello.\n\n01:01:01.250")
