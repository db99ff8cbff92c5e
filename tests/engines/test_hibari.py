"""hibari's "heart" voice: prepared from its pinned wheel, opened by the registry from the
cache, spoken sentence by sentence, and understood by Whisper word for word."""

import importlib.metadata
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import words

from voxgate.audio import resample
from voxgate.config import Settings
from voxgate.engines.hibari import HibariTTS
from voxgate.engines.whisper import RATE, WhisperSTT
from voxgate.registry import Registry

NAME = "hibari-en_US-heart"
SENTENCES = ("The capital of France is Paris.", "A spider has eight legs.", "Please turn off the kitchen lights.")


@pytest.fixture(scope="module")
def registry() -> Registry:
    registry = Registry(Settings(warmup=False))
    registry.pull(NAME, lambda _: None)  # already there after `make`: checks, copies nothing
    return registry


@pytest.fixture(scope="module")
def tts(registry) -> Iterator[HibariTTS]:
    with registry.use_tts(NAME) as engine:
        yield engine


def speak(tts: HibariTTS, text: str, speed: float = 1.0) -> list[np.ndarray]:
    chunks = list(tts.synthesize(text, speed=speed))
    assert all(c.sample_rate == tts.sample_rate == 24000 and c.pcm.dtype == np.int16 for c in chunks)
    return [c.pcm for c in chunks]


def test_the_registry_opens_hibari_from_the_cache(registry, tts):
    assert isinstance(tts, HibariTTS) and tts.name == NAME
    voice = next(v for v in registry.voices() if v.id == NAME)
    assert (voice.engine, voice.language, voice.gender, voice.name) == ("hibari", "en-us", "female", "heart")


def test_each_sentence_is_one_chunk_of_speech_whisper_understands(registry, tts):
    pieces = speak(tts, " ".join(SENTENCES))
    assert len(pieces) == len(SENTENCES)
    stt = WhisperSTT("whisper-tiny.en", registry.models_dir / "whisper-tiny.en", workers=1)
    for sentence, pcm in zip(SENTENCES, pieces, strict=True):
        assert 0.8 < len(pcm) / tts.sample_rate < 4 and np.abs(pcm).max() > 3000  # speech, not silence
        heard = stt.transcribe(resample(pcm.astype(np.float32) / 32768, tts.sample_rate, RATE))
        assert words(heard.text) == words(sentence)


def test_speed_changes_the_pace_within_hibaris_range(tts):
    length = {speed: sum(map(len, speak(tts, SENTENCES[0], speed))) for speed in (0.5, 1.0, 2.0, 4.0)}
    assert length[0.5] > 1.5 * length[1.0] and length[2.0] < 0.7 * length[1.0]
    assert length[4.0] == length[2.0]  # beyond what the model was trained for: its fastest


def test_nothing_to_say_is_no_audio(tts):
    assert speak(tts, "") == [] and speak(tts, "   ") == []


def test_the_voice_is_only_loaded_from_the_given_file(tmp_path):
    with pytest.raises(Exception, match="voice.onnx"):  # no fallback to the copy in site-packages
        HibariTTS(NAME, tmp_path / "voice.onnx")


def test_deleting_the_voice_keeps_the_package_voxgate_runs_on(tmp_path):
    registry = Registry(Settings(cache_dir=tmp_path, tts={"model": "piper-en_US-joe-medium"}, warmup=False))
    registry.pull(NAME, lambda _: None)
    registry.delete(NAME)
    assert registry.info(NAME).state == "available" and not (registry.models_dir / NAME).exists()
    assert importlib.metadata.version("hibari-tts") == "0.2.1"  # hibari's text front-end is voxgate's dependency
