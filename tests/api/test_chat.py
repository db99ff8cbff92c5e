"""The four cases of `POST /v1/chat`, end to end with the real models."""

import concurrent.futures
from urllib.parse import unquote

import pytest
from conftest import espeak, words


def overlap(said: str, heard: str) -> float:
    """Share of the words in `said` that were heard back."""
    said_words, heard_words = words(said), set(words(heard))
    return sum(w in heard_words for w in said_words) / max(len(said_words), 1)


def test_text_in_text_out(client):
    r = client.post("/v1/chat", json={"text": "What is the capital of France?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "paris" in body["reply"].lower()
    assert body["transcript"] is None
    assert body["timings"]["llm"] > 0
    assert body["timings"]["stt"] is None


@pytest.mark.parametrize("speaker", ["espeak", "piper"])
def test_voice_in_text_out(client, piper_speak, speaker):
    question = "What is the capital of France?"
    wav = espeak(question) if speaker == "espeak" else piper_speak(question)
    r = client.post("/v1/chat", files={"audio": ("question.wav", wav, "audio/wav")}, data={"reply_as": "text"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "france" in body["transcript"].lower()
    assert "paris" in body["reply"].lower()
    assert body["language"] == "en"
    assert all(body["timings"][stage] > 0 for stage in ("decode", "stt", "llm"))


def test_text_in_voice_out_speaks_the_reply(client):
    r = client.post("/v1/chat", json={"text": "What is the capital of France?", "reply_as": "voice"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert r.content[:4] == b"RIFF"
    reply = unquote(r.headers["x-voxgate-reply"])
    assert "paris" in reply.lower()
    assert "x-voxgate-transcript" not in r.headers
    assert "llm;dur=" in r.headers["server-timing"] and "tts;dur=" in r.headers["server-timing"]
    heard = client.post("/v1/audio/transcriptions", files={"file": ("reply.wav", r.content)}).json()["text"]
    assert overlap(reply, heard) >= 0.6, (reply, heard)


def test_voice_in_voice_out(client, france_wav):
    r = client.post("/v1/chat", files={"audio": ("q.webm", france_wav)}, data={"reply_as": "voice"})
    assert r.status_code == 200, r.text
    assert "france" in unquote(r.headers["x-voxgate-transcript"]).lower()
    reply = unquote(r.headers["x-voxgate-reply"])
    assert "paris" in reply.lower()
    heard = client.post("/v1/audio/transcriptions", files={"file": ("reply.wav", r.content)}).json()["text"]
    assert overlap(reply, heard) >= 0.6, (reply, heard)


@pytest.mark.parametrize(
    ("fmt", "media_type", "magic"),
    [
        ("mp3", "audio/mpeg", (b"ID3", b"\xff\xfb", b"\xff\xf3")),
        ("opus", "audio/ogg; codecs=opus", (b"OggS",)),
        ("flac", "audio/flac", (b"fLaC",)),
    ],
)
def test_voice_reply_formats(client, fmt, media_type, magic):
    r = client.post("/v1/chat", json={"text": "Say hello.", "reply_as": "voice", "voice_format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media_type
    assert r.content.startswith(magic)
    heard = client.post("/v1/audio/transcriptions", files={"file": (f"reply.{fmt}", r.content)}).json()["text"]
    assert overlap(unquote(r.headers["x-voxgate-reply"]), heard) >= 0.5


def test_raw_pcm_reply_has_its_rate_in_a_header(client):
    r = client.post("/v1/chat", json={"text": "Say hello.", "reply_as": "voice", "voice_format": "pcm"})
    assert r.status_code == 200
    rate = int(r.headers["x-voxgate-sample-rate"])
    seconds = len(r.content) / 2 / rate
    assert 0.3 < seconds < 30


def test_system_prompt_and_sampling_options(client):
    r = client.post(
        "/v1/chat",
        json={
            "text": "What is the capital of France?",
            "system": "Reply with exactly one word: the name of the city. No punctuation.",
            "max_tokens": 5,
            "temperature": 0,
        },
    )
    assert r.status_code == 200, r.text
    reply = r.json()["reply"]
    assert "paris" in reply.lower()
    assert len(words(reply)) <= 3


def test_multipart_text_field(client):
    # (None, value) makes httpx send a plain form field inside multipart/form-data.
    r = client.post("/v1/chat", files={"text": (None, "What is the capital of France?")})
    assert r.status_code == 200, r.text
    assert "paris" in r.json()["reply"].lower()


def test_two_concurrent_voice_requests_both_succeed(client, france_wav):
    def ask():
        return client.post("/v1/chat", files={"audio": ("q.wav", france_wav)}, data={"reply_as": "voice"})

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda _: ask(), range(2)))
    for r in responses:
        assert r.status_code == 200, r.text
        assert "paris" in unquote(r.headers["x-voxgate-reply"]).lower()
