"""Text to speech on a remote OpenAI-compatible server (OpenAI, openedai-speech, another voxgate).

The answer is asked for as WAV and read while it streams, so the first sentence can play
while the backend still speaks the rest.
"""

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from voxgate import audio
from voxgate.engines.base import SpeechChunk
from voxgate.engines.remote import Remote

FALLBACK_RATE = 24_000  # OpenAI's; used only when the backend is down when voxgate starts
UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # what streamed WAVs put in place of sizes not known yet
WAV = "16-bit PCM WAV audio"


class OpenAITTS:
    def __init__(self, name: str, url: str, api_key: str | None, timeout: float, retries: int, voice: str):
        self.name = name
        self.voice = voice
        self._remote = Remote("TTS", "openai", url, api_key, timeout=timeout, retries=retries)
        # Voxgate reads `sample_rate` before the first reply, so it is learned from a first word now.
        self.sample_rate = FALLBACK_RATE
        self._remote.warm_up(self._learn_sample_rate)

    def _learn_sample_rate(self) -> None:
        with self._speech("Hello.", 1.0) as wav:
            self.sample_rate = wav.sample_rate

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[SpeechChunk]:
        if not text.strip():
            return
        with self._speech(text, speed) as wav:
            if wav.sample_rate == self.sample_rate:
                for pcm in wav.chunks():
                    yield SpeechChunk(pcm=pcm, sample_rate=self.sample_rate)
                return
            # Resampled in one piece: resampling each network chunk alone would click at the seams.
            pcm = np.concatenate([np.zeros(0, np.int16), *wav.chunks()]).astype(np.float32) / 32768
            resampled = audio.resample(pcm, wav.sample_rate, self.sample_rate)
            yield SpeechChunk(
                pcm=(np.clip(resampled, -1.0, 1.0) * 32767).astype(np.int16), sample_rate=self.sample_rate
            )

    @contextmanager
    def _speech(self, text: str, speed: float) -> Iterator["_StreamedWav"]:
        """The backend's spoken `text`, its WAV header read."""
        body = {"model": self.name, "input": text, "voice": self.voice, "response_format": "wav", "speed": speed}
        with self._remote.stream("POST", "audio/speech", json=body) as response:
            with self._remote.parsing(WAV):
                wav = _StreamedWav(response.iter_bytes())
            yield wav

    def warm_up(self) -> None:
        """Nothing to do: __init__ already had the backend speak a word."""


class _StreamedWav:
    """A WAV read as it arrives: the header at once, then 16-bit samples (downmixed to mono)
    chunk by chunk. Streamed WAVs (voxgate's, OpenAI's) put 0xFFFFFFFF in the sizes, so the
    chunks are walked by hand and an unknown data size means "until the end"."""

    def __init__(self, data: Iterator[bytes]):
        self._data = data
        self._buffer = bytearray()
        if self._take(4) != b"RIFF" or self._take(8)[4:] != b"WAVE":
            raise ValueError("no RIFF/WAVE header")
        fmt = None
        while (chunk_id := self._take(4)) != b"data":
            size = int.from_bytes(self._take(4), "little")
            body = self._take(size + size % 2)  # chunks are padded to even sizes
            if chunk_id == b"fmt ":
                fmt = body
        if fmt is None:
            raise ValueError("no fmt chunk before the data")
        tag = int.from_bytes(fmt[0:2], "little")
        if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the real tag starts the sub-format GUID
            tag = int.from_bytes(fmt[24:26], "little")
        self.channels = int.from_bytes(fmt[2:4], "little")
        self.sample_rate = int.from_bytes(fmt[4:8], "little")
        if tag != 1 or int.from_bytes(fmt[14:16], "little") != 16 or not self.channels or not self.sample_rate:
            raise ValueError("not 16-bit PCM")
        size = int.from_bytes(self._take(4), "little")
        self._left = None if size in UNKNOWN_SIZES else size

    def _take(self, n: int) -> bytes:
        while len(self._buffer) < n:
            data = next(self._data, None)
            if data is None:
                raise ValueError("the header is cut short")
            self._buffer += data
        taken, self._buffer = bytes(self._buffer[:n]), self._buffer[n:]
        return taken

    def chunks(self) -> Iterator[np.ndarray]:
        """The samples as int16 mono arrays, as they arrive (a last partial frame is dropped)."""
        frame = 2 * self.channels
        pending = self._buffer
        for data in itertools.chain([b""], self._data):
            pending += data
            if self._left is not None:
                pending = pending[: self._left]
            usable = len(pending) - len(pending) % frame
            if usable:
                pcm = np.frombuffer(bytes(pending[:usable]), "<i2").reshape(-1, self.channels)
                yield pcm[:, 0].copy() if self.channels == 1 else pcm.mean(axis=1).astype(np.int16)
                pending = pending[usable:]
                if self._left is not None:
                    self._left -= usable
            if self._left == 0:
                return
