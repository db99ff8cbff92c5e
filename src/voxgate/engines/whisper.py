"""Speech to text with faster-whisper (CTranslate2, int8 on CPU)."""

from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel

from voxgate.engines.base import Segment, Transcription


class WhisperSTT:
    def __init__(self, name: str, path: Path, *, workers: int):
        """One thread per transcription (the CPU budget runs `workers` of them at once)."""
        self.name = name
        self._model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=1, num_workers=workers)
        self.multilingual = self._model.model.is_multilingual

    def transcribe(
        self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None, temperature: float = 0.0
    ) -> Transcription:
        if not self.multilingual:
            language = "en"
        # VAD drops silence before decoding: Whisper otherwise "hears" text in noise.
        segments, info = self._model.transcribe(
            samples,
            language=language,
            initial_prompt=prompt,
            temperature=temperature,
            beam_size=1,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        found = tuple(Segment(s.start, s.end, s.text.strip()) for s in segments)
        text = " ".join(s.text for s in found if s.text)
        return Transcription(text=text, language=info.language, duration=info.duration, segments=found)

    def warm_up(self) -> None:
        # A short chirp, transcribed without VAD so the decoder really runs once.
        t = np.linspace(0, 1, 16_000, dtype=np.float32)
        self._model.transcribe(0.1 * np.sin(2 * np.pi * (200 + 400 * t) * t), language="en", beam_size=1)
