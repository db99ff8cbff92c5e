"""Text to speech with hibari: a 7.9 MB US-English voice ("heart") distilled from Kokoro-82M.

The voice model is loaded from voxgate's cache; hibari's text front-end (normalizer,
lexicon, tagger, a small net for unknown words) runs from its package. hibari downloads
its other voices at run time, so voxgate offers only this one, which ships in the wheel.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from hibari import SAMPLE_RATE, Hibari

from voxgate.engines.base import SpeechChunk

# hibari's documented speed range; its model is not trained beyond it.
_SLOWEST, _FASTEST = 0.5, 2.0


class HibariTTS:
    def __init__(self, name: str, path: Path):
        self.name = name
        # One onnxruntime thread (hibari's session options equal engines/onnx.py's): the CPU
        # budget decides how many synthesize at once.
        self._tts = Hibari(model=str(path), threads=1)
        self.sample_rate: int = SAMPLE_RATE

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[SpeechChunk]:
        for audio in self._tts.stream(text, speed=min(max(speed, _SLOWEST), _FASTEST)):  # one array per sentence
            if audio.size:
                yield SpeechChunk(pcm=(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16), sample_rate=SAMPLE_RATE)

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello."):
            pass
