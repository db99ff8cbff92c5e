"""End-of-turn detection with Smart Turn v3 (ONNX): has the speaker finished, judged from
how the utterance sounds (intonation, pace, a trailing "um"), not from silence alone."""

from pathlib import Path

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

from voxgate.engines.onnx import single_thread_session

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 8  # the model hears the last 8 s: 800 frames of 10 ms
_WINDOW = WINDOW_SECONDS * SAMPLE_RATE


class SmartTurn:
    def __init__(self, name: str, path: Path):
        self.name = name
        self._session = single_thread_session(path)
        features = self._session.get_inputs()[0]
        self._input = features.name
        mel_bins = features.shape[1] if isinstance(features.shape[1], int) else 80
        self._features = FeatureExtractor(feature_size=mel_bins, sampling_rate=SAMPLE_RATE, chunk_length=WINDOW_SECONDS)

    def completion(self, samples: np.ndarray) -> float:
        """The probability (0..1) that the utterance in `samples` (16 kHz mono float32, the
        whole turn so far) is a finished turn."""
        audio = np.asarray(samples, dtype=np.float32).reshape(-1)[-_WINDOW:]
        audio = np.pad(audio, (_WINDOW - audio.size, 0))  # silence before, as in training
        # The model was trained on features of the normalised window (padding included),
        # so loudness does not matter.
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        # padding=0: 128000 samples give exactly 800 frames (Whisper drops the last one).
        features = self._features(audio, padding=0)[np.newaxis].astype(np.float32, copy=False)
        probabilities = self._session.run(None, {self._input: features})[0]  # (1, 1), a sigmoid's output
        return float(probabilities[0, 0])

    def warm_up(self) -> None:
        t = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE
        self.completion(0.1 * np.sin(2 * np.pi * 220 * t))
