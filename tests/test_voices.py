"""Which voice speaks a reply, from a list of voices (no models needed)."""

import pytest

from voxgate.errors import BadRequest
from voxgate.voices import Voice, choose_voice

VOICES = [
    Voice("hibari-en_US-heart", "en-us", "heart", "hibari", "female"),
    Voice("piper-fr_FR-siwis", "fr-fr", "siwis", "piper", "female"),
    Voice("espeak-ng:fr", "fr", "French", "espeak-ng"),
    Voice("espeak-ng:de", "de", "German", "espeak-ng"),
]
DEFAULT = "hibari-en_US-heart"


def test_a_requested_voice_wins_and_an_unknown_one_is_a_400():
    assert choose_voice(VOICES, DEFAULT, "fr", "espeak-ng:de") == "espeak-ng:de"
    with pytest.raises(BadRequest, match="unknown voice 'nobody'"):
        choose_voice(VOICES, DEFAULT, None, "nobody")


def test_the_default_speaks_its_own_language_and_any_unknown_one():
    assert choose_voice(VOICES, DEFAULT, "en") == DEFAULT
    assert choose_voice(VOICES, DEFAULT, None) == DEFAULT


def test_another_language_gets_a_neural_voice_before_espeak():
    assert choose_voice(VOICES, DEFAULT, "fr-ca") == "piper-fr_FR-siwis"
    # espeak-ng names its own voice for the language (fr-fr), whatever the list holds.
    assert choose_voice([v for v in VOICES if v.engine != "piper"], DEFAULT, "fr") == "espeak-ng:fr-fr"
