"""Text to speech with Piper voices (ONNX)."""

import json
from collections.abc import Iterator
from pathlib import Path

from piper import PiperConfig, PiperVoice, SynthesisConfig

from voxgate.engines.base import SpeechChunk
from voxgate.engines.onnx import single_thread_session


class PiperTTS:
    def __init__(self, name: str, path: Path):
        self.name = name
        config = json.loads(path.with_name(path.name + ".json").read_text())
        self._voice = PiperVoice(session=single_thread_session(path), config=PiperConfig.from_dict(config))
        self.sample_rate: int = self._voice.config.sample_rate

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[SpeechChunk]:
        config = SynthesisConfig(length_scale=1.0 / speed)
        for chunk in self._voice.synthesize(text, syn_config=config):
            yield SpeechChunk(pcm=chunk.audio_int16_array, sample_rate=chunk.sample_rate)

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello."):
            pass
