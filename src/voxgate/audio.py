"""Audio in and out: decode any accepted upload to 16 kHz mono float32, encode replies.

Decoding uses FFmpeg through PyAV and detects the format from the bytes, never from a
file name or content type. Only audio demuxers are allowed, so a crafted upload cannot
make FFmpeg follow a playlist or open other files.
"""

import io
import wave
from dataclasses import dataclass
from typing import Literal, get_args

import av
import numpy as np
from av.audio.stream import AudioStream

from voxgate.errors import EmptyAudio, PayloadTooLarge, UnsupportedAudio

STT_SAMPLE_RATE = 16_000
ACCEPTED_FORMATS = "WAV, MP3, OGG/Opus, WebM/Opus, FLAC, M4A/AAC"
_DEMUXERS = "wav,w64,mp3,ogg,matroska,webm,flac,mov,mp4,m4a,3gp,3g2,mj2,aac,aiff,caf"

VoiceFormat = Literal["wav", "mp3", "opus", "flac", "pcm"]
VOICE_FORMATS: tuple[str, ...] = get_args(VoiceFormat)
MEDIA_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "flac": "audio/flac",
    "pcm": "audio/L16",
}
# Stored uploads are named by what FFmpeg found in them; every name maps to a media type.
CONTAINER_EXTENSIONS: dict[str, str] = {
    "wav": "wav",
    "mp3": "mp3",
    "ogg": "ogg",
    "flac": "flac",
    "matroska,webm": "webm",
    "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
}
EXTENSION_MEDIA_TYPES: dict[str, str] = {**MEDIA_TYPES, "ogg": "audio/ogg", "webm": "audio/webm", "m4a": "audio/mp4"}


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, STT_SAMPLE_RATE
    container: str

    @property
    def duration(self) -> float:
        return len(self.samples) / STT_SAMPLE_RATE


def decode(data: bytes, *, max_seconds: float) -> DecodedAudio:
    """Decode `data` (any accepted format) to 16 kHz mono float32.

    Raises EmptyAudio for no bytes or no samples, UnsupportedAudio for bytes FFmpeg
    cannot read as audio, PayloadTooLarge once more than `max_seconds` were decoded
    (checked while decoding, so a long file is never fully expanded in memory).
    """
    if not data:
        raise EmptyAudio("the audio file is empty (0 bytes)")
    try:
        container = av.open(io.BytesIO(data), mode="r", options={"format_whitelist": _DEMUXERS})
    except (av.FFmpegError, ValueError) as exc:
        raise UnsupportedAudio(f"could not read the upload as audio; accepted formats: {ACCEPTED_FORMATS}") from exc
    with container:
        if not container.streams.audio:
            raise UnsupportedAudio(f"the upload has no audio stream; accepted formats: {ACCEPTED_FORMATS}")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=STT_SAMPLE_RATE)
        max_samples = int(max_seconds * STT_SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
                if total > max_samples:
                    raise PayloadTooLarge(f"audio is longer than the {max_seconds:g} s limit", code="audio_too_long")
        except av.FFmpegError as exc:
            # A truncated or partly corrupt file still yields the audio before the damage.
            if not chunks:
                raise UnsupportedAudio(f"the audio could not be decoded; accepted formats: {ACCEPTED_FORMATS}") from exc
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
        name = container.format.name
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if len(samples) == 0:
        raise EmptyAudio("the audio contains no samples")
    return DecodedAudio(samples=samples.astype(np.float32, copy=False), container=name)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 `samples` at `rate`, resampled to `target_rate`."""
    frame = av.AudioFrame.from_ndarray(samples.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
    out = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def streaming_wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length (sizes set to the maximum,
    which players and FFmpeg read as "until the end")."""
    unknown = 0xFFFFFFFF
    return (
        b"RIFF"
        + unknown.to_bytes(4, "little")
        + b"WAVEfmt "
        + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + sample_rate.to_bytes(4, "little")
        + (sample_rate * 2).to_bytes(4, "little")
        + (2).to_bytes(2, "little")
        + (16).to_bytes(2, "little")
        + b"data"
        + unknown.to_bytes(4, "little")
    )


def encode(pcm: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode mono int16 `pcm` as `fmt` (one of VOICE_FORMATS)."""
    if not len(pcm):  # encoders and decoders fail on no samples: nothing to say is 20 ms of silence
        pcm = np.zeros(sample_rate // 50, np.int16)
    if fmt == "pcm":
        return pcm.astype("<i2").tobytes()
    if fmt == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm.astype("<i2").tobytes())
        return buf.getvalue()
    container_format, codec, rate = {
        "mp3": ("mp3", "libmp3lame", sample_rate),
        "opus": ("ogg", "libopus", 48_000),  # Opus only runs at 8/12/16/24/48 kHz
        "flac": ("flac", "flac", sample_rate),
    }[fmt]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, AudioStream)  # an audio codec makes an audio stream
        frame = av.AudioFrame.from_ndarray(pcm.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=rate)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
