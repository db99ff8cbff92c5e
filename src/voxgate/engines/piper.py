"""Text to speech with Piper voices (ONNX)."""

import json
from collections.abc import Iterator
from pathlib import Path

import onnxruntime
from piper import PiperConfig, PiperVoice, SynthesisConfig

from voxgate.engines.base import SpeechChunk


def single_thread_session(path: Path) -> onnxruntime.InferenceSession:
    """An ONNX session on one thread: the CPU budget decides how many run at once
    (onnxruntime's default would take every core for each call)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


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
