"""The streaming speech detector, with the real Silero VAD on Piper's voice."""

import numpy as np
from piper import PiperVoice, SynthesisConfig

from voxgate import model_files
from voxgate.audio import resample
from voxgate.catalog import CATALOG
from voxgate.config import Settings
from voxgate.vad import FRAME_MS, RATE, SpeechDetector


def _question() -> np.ndarray:
    name = "piper-en_US-joe-medium"
    voice = PiperVoice.load(model_files.resolve(name, CATALOG[name].role, Settings().models_dir)[1])
    chunks = list(voice.synthesize("What do bees make?", syn_config=SynthesisConfig(noise_scale=0, noise_w_scale=0)))
    pcm = np.concatenate([c.audio_int16_array for c in chunks]).astype(np.float32) / 32768
    return resample(pcm, chunks[0].sample_rate, RATE)


def test_an_utterance_keeps_what_came_before_its_start_and_can_be_had_with_less():
    """The VAD may start late in a first word: the utterance keeps 800 ms from before its start."""
    detector = SpeechDetector()
    silence = np.zeros(2 * RATE, np.float32)
    events = detector.feed(np.concatenate([silence, _question()[: RATE // 2]]))
    assert events == ["start"]
    whole, short = detector.utterance(), detector.utterance(preroll_ms=300)
    assert 0.5 <= (len(whole) - len(short)) / RATE <= 0.5 + 2 * FRAME_MS / 1000  # ~800 ms kept, 300 asked
    assert not whole[: RATE // 2].any() and np.array_equal(whole[-len(short) :], short)
