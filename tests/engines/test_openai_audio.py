"""The openai STT and TTS backends against a second, real voxgate (its OpenAI-compatible audio
endpoints, with an API key), and against stub servers for WAV layouts voxgate doesn't send."""

import io
import logging
import threading
import wave
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import Server, free_port, reply, reply_streamed, start_server, stop_server, stub_server, words

from voxgate import audio
from voxgate.engines.openai_stt import OpenAISTT
from voxgate.engines.openai_tts import OpenAITTS
from voxgate.errors import BackendError, BackendUnavailable


@pytest.fixture(scope="module")
def voxgate(tmp_path_factory) -> Iterator[Server]:
    started = start_server(tmp_path_factory.mktemp("remote-audio"))
    yield started
    stop_server(started)


@pytest.fixture(scope="module")
def stt(voxgate) -> OpenAISTT:
    return OpenAISTT("whisper-1", f"{voxgate.url}/v1", voxgate.key, 120, 2)


@pytest.fixture(scope="module")
def tts(voxgate) -> OpenAITTS:
    return OpenAITTS("tts-1", f"{voxgate.url}/v1", voxgate.key, 120, 2, voice="alloy")


def test_transcribes_a_spoken_question(stt, france_wav):
    samples = audio.decode(france_wav, max_seconds=60).samples
    heard = stt.transcribe(samples, language="en")
    assert {"capital", "france"} <= set(words(heard.text))
    assert heard.language == "en" and heard.duration == pytest.approx(len(samples) / 16000, abs=0.1)
    assert heard.segments and heard.segments[-1].end > heard.segments[0].start


def test_silence_is_an_empty_transcript(stt):
    assert stt.transcribe(np.zeros(16000, np.float32)).text == ""  # voxgate answers 400 no_speech


def test_speaks_and_hears_back(tts, stt):
    assert tts.sample_rate == 24000  # learned from the backend: the default voice's (hibari's) rate
    chunks = list(tts.synthesize("Hello world"))
    assert chunks and all(c.pcm.dtype == np.int16 and c.sample_rate == tts.sample_rate for c in chunks)
    pcm = np.concatenate([c.pcm for c in chunks])
    assert 0.5 < len(pcm) / tts.sample_rate < 3 and np.abs(pcm).max() > 1000
    faster = np.concatenate([c.pcm for c in tts.synthesize("Hello world", speed=2.0)])
    assert len(faster) < 0.7 * len(pcm)

    heard = stt.transcribe(audio.resample(pcm.astype(np.float32) / 32768, tts.sample_rate, 16000))
    assert words(heard.text) == ["hello", "world"]


def test_wrong_api_key_is_a_backend_error(voxgate):
    with pytest.raises(BackendError, match=f"^the STT backend openai at {voxgate.url}/v1 answered 401: "):
        OpenAISTT("whisper-1", f"{voxgate.url}/v1", "wrong-key", 30, 2).transcribe(np.zeros(1600, np.float32))


def test_backend_down_is_unavailable(caplog):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(
        BackendUnavailable,
        match=f"^the STT backend openai at {url} is unreachable: connection refused \\(after 2 attempts\\)$",
    ):
        OpenAISTT("whisper-1", url, None, 30, 1).transcribe(np.zeros(1600, np.float32))
    with caplog.at_level(logging.WARNING, logger="voxgate"):
        tts = OpenAITTS("tts-1", url, None, 30, 0, voice="alloy")  # starts all the same, at OpenAI's rate
    assert tts.sample_rate == 24000 and f"the TTS backend openai at {url} is unreachable" in caplog.text
    with pytest.raises(BackendUnavailable, match=f"^the TTS backend openai at {url} is unreachable"):
        list(tts.synthesize("Hello"))


def wav_bytes(pcm: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_wav_layouts_and_another_rate_are_read():
    """Exact sizes with an extra chunk before the data, stereo, and a rate other than the learned one."""
    answers = iter(
        [
            wav_bytes(tone(0.1, 24000), 24000),  # the first word: 24 kHz is learned
            wav_bytes(tone(0.5, 24000), 24000)[:36]
            + b"LIST\x04\x00\x00\x00INFO"
            + wav_bytes(tone(0.5, 24000), 24000)[36:],
            wav_bytes(np.repeat(tone(0.5, 24000), 2), 24000, channels=2),
            wav_bytes(tone(0.5, 16000), 16000),
        ]
    )
    with stub_server(lambda r: reply(r, 200, next(answers), "audio/wav")) as url:
        tts = OpenAITTS("tts-1", url, None, 30, 0, voice="alloy")
        assert tts.sample_rate == 24000
        for _ in range(3):
            pcm = np.concatenate([c.pcm for c in tts.synthesize("Hi")])
            assert len(pcm) == pytest.approx(12000, abs=50) and np.abs(pcm).max() == pytest.approx(8000, abs=100)


def test_a_streamed_wav_is_yielded_as_it_arrives():
    """Sizes unknown (0xFFFFFFFF, as voxgate streams them), PCM in pieces that split samples, and
    the first audio handed on while the backend still holds back the rest."""
    pcm = tone(0.3, 22050).astype("<i2").tobytes()
    header = audio.streaming_wav_header(22050)
    first_handed_on = threading.Event()
    waited = []

    def pieces():
        yield header[:30]
        yield header[30:] + pcm[:1001]
        waited.append(first_handed_on.wait(10))
        yield pcm[1001:5001]
        yield pcm[5001:]

    answers = iter(
        [
            lambda r: reply(r, 200, wav_bytes(tone(0.1, 22050), 22050), "audio/wav"),  # the first word
            lambda r: reply_streamed(r, "audio/wav", pieces()),
        ]
    )
    with stub_server(lambda r: next(answers)(r)) as url:
        tts = OpenAITTS("tts-1", url, None, 30, 0, voice="alloy")
        speech = tts.synthesize("Hi")
        chunks = [next(speech).pcm]
        first_handed_on.set()
        chunks += [c.pcm for c in speech]
    assert waited == [True] and np.array_equal(np.concatenate(chunks), tone(0.3, 22050))


def test_an_answer_that_is_not_wav_is_a_backend_error():
    with stub_server(lambda r: reply(r, 200, b"ID3\x04\x00" + bytes(200), "audio/mpeg")) as url:
        tts = OpenAITTS("tts-1", url, None, 30, 0, voice="alloy")
        with pytest.raises(
            BackendError, match=f"^the TTS backend openai at {url} answered something that is not 16-bit PCM WAV audio$"
        ):
            list(tts.synthesize("Hello"))
