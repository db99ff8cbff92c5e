"""Text to speech with Piper voices (ONNX)."""

from collections.abc import Iterator
from pathlib import Path

from piper import PiperVoice, SynthesisConfig

from voxgate.engines.base import SpeechChunk


class PiperTTS:
    def __init__(self, name: str, path: Path):
        self.name = name
        self._voice = PiperVoice.load(str(path))
        self.sample_rate: int = self._voice.config.sample_rate

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[SpeechChunk]:
        config = SynthesisConfig(length_scale=1.0 / speed)
        for chunk in self._voice.synthesize(text, syn_config=config):
            yield SpeechChunk(pcm=chunk.audio_int16_array, sample_rate=chunk.sample_rate)

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello."):
            pass
