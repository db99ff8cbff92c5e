"""Which setting wins for a turn: the request, then a custom model, then the persona."""

import numpy as np

from voxgate.turn_events import ClauseAudio, Heard, TextDelta
from voxgate.turns import fill_open, wire_event


def test_the_request_wins_then_the_first_layer_that_sets_a_value():
    request = {"system": None, "voice": "", "language": "fr", "temperature": 0.0, "max_tokens": None}
    custom = {"system": "Be brief.", "voice": None, "language": "de", "temperature": 0.9}
    persona = {"system": "Be formal.", "voice": "en_US-joe", "language": "es", "max_tokens": 20}
    assert fill_open(request, custom, persona) == {
        "system": "Be brief.",  # the custom model over the persona
        "voice": "en_US-joe",  # empty counts as open; the custom model sets none
        "language": "fr",  # the request's own choice
        "temperature": 0.0,  # zero is a choice, not an open field
        "max_tokens": 20,
    }


def test_a_field_nobody_sets_stays_open():
    assert fill_open({"voice": None}, {}, {"voice": ""}) == {"voice": None}


def test_events_have_one_wire_form_for_sse_and_the_socket():
    chunk = ClauseAudio(b"RIFF", 22050, "Hello.", 0, np.zeros(4, np.int16))
    assert wire_event(Heard("hi", "en"), "wav") == ("transcript", {"text": "hi", "language": "en"})
    assert wire_event(TextDelta("Hel"), "wav") == ("text", {"delta": "Hel"})
    name, data = wire_event(chunk, "wav")
    assert name == "audio" and data == {
        "audio": "UklGRg==",
        "format": "wav",
        "sample_rate": 22050,
        "index": 0,
        "text": "Hello.",
    }
