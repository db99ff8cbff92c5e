"""espeak-ng speaks many languages from the pip-installed library: checked down to Whisper
understanding the French it says."""

import re
import threading

import numpy as np
import pytest

from voxgate.audio import resample
from voxgate.engines.espeak import EspeakTTS, espeak_language, espeak_voices
from voxgate.errors import NotFound

# whisper-base takes espeak's robotic "Bonjour, quelle est la capitale de la France ?" alone
# for Polish; one more sentence makes its French unmistakable (p(fr) ~0.8).
FRENCH = "Bonjour, quelle est la capitale de la France ? Je crois que c'est Paris, une très belle ville."


def speak(tts: EspeakTTS, text: str, speed: float = 1.0) -> np.ndarray:
    chunks = list(tts.synthesize(text, speed=speed))
    assert chunks and all(
        c.sample_rate == tts.sample_rate and c.pcm.dtype == np.int16 and c.pcm.ndim == 1 for c in chunks
    )
    return np.concatenate([c.pcm for c in chunks])


@pytest.fixture(scope="module")
def french() -> EspeakTTS:
    return EspeakTTS("fr")


def test_voices_list_one_per_language_with_names():
    voices = espeak_voices()
    by_language = {v.language: v for v in voices}
    assert len(by_language) == len(voices) > 80
    assert [v.language for v in voices] == sorted(by_language)
    assert by_language["fr-fr"].name.startswith("French")
    assert by_language["es"].name.startswith("Spanish")
    assert by_language["en-us"].name.startswith("English")
    assert all(v.gender in ("male", "female", None) for v in voices)
    assert all(v.id == v.language for v in voices)
    assert EspeakTTS(by_language["en-us"].id).name == "espeak-ng:en-us"


def test_whisper_languages_map_to_espeak_voices():
    assert {c: espeak_language(c) for c in ("fr", "es", "de", "zh", "ja", "en", "EN")} == {
        "fr": "fr-fr",
        "es": "es",
        "de": "de",
        "zh": "cmn",
        "ja": "ja",
        "en": "en-us",
        "EN": "en-us",
    }
    assert espeak_language("jw") is None  # Javanese: Whisper knows it, espeak-ng does not


def test_french_is_spoken_as_plausible_audio(french):
    assert french.name == "espeak-ng:fr" and french.sample_rate == 22050
    pcm = speak(french, FRENCH)
    assert 3 < len(pcm) / french.sample_rate < 9
    assert np.sqrt(np.mean(pcm.astype(np.float32) ** 2)) > 1000  # loud enough to be speech, not silence


def test_speed_shortens_the_audio(french):
    assert len(speak(french, FRENCH, speed=2.0)) < 0.65 * len(speak(french, FRENCH))


def test_unknown_language_is_refused():
    with pytest.raises(NotFound, match="klingon"):
        EspeakTTS("klingon")


def test_threads_sharing_the_library_each_speak_with_their_own_voice(french):
    # espeak-ng varies its output by a few samples from run to run, but a voice's length
    # for a text is its signature: the Spanish voice reads the French text much longer.
    spanish = EspeakTTS("es")
    expected = {french: len(speak(french, FRENCH)), spanish: len(speak(spanish, FRENCH))}
    assert abs(expected[spanish] - expected[french]) > 0.1 * expected[french]
    lengths = []

    def run(tts):
        lengths.extend((tts, len(speak(tts, FRENCH))) for _ in range(5))

    threads = [threading.Thread(target=run, args=(tts,)) for tts in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lengths) == 10 and all(abs(n - expected[tts]) < 0.005 * n for tts, n in lengths)


@pytest.fixture(scope="module")
def whisper():
    from voxgate.catalog import Role
    from voxgate.config import Settings
    from voxgate.engines.whisper import WhisperSTT
    from voxgate.model_files import resolve

    return WhisperSTT(*resolve("whisper-base", Role.STT, Settings().models_dir), workers=1)


def test_whisper_understands_the_french(french, whisper):
    pcm = speak(french, FRENCH)
    samples = resample(pcm.astype(np.float32) / 32768, french.sample_rate, 16_000)
    heard = whisper.transcribe(samples)
    assert heard.language == "fr"
    assert {"bonjour", "capitale", "france", "paris"} & set(re.findall(r"\w+", heard.text.lower())), heard.text
