"""Bad input gets a 4xx JSON error that says what was wrong, and the server keeps serving."""

import concurrent.futures
import os
import tempfile
from pathlib import Path

import httpx
import pytest
from conftest import silence_wav, start_server, stop_server


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if code:
        assert error["code"] == code
    return error


def post_audio(client, data: bytes, name: str = "question.wav", content_type: str = "audio/wav", **fields):
    return client.post("/v1/chat", files={"audio": (name, data, content_type)}, data=fields)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("zero_bytes", 400, "empty_audio"),
        ("text_named_wav", 415, "unsupported_audio"),
        ("random_bytes", 415, "unsupported_audio"),
        ("header_only_wav", 400, "empty_audio"),
        ("silence", 400, "no_speech"),
        ("png_image", 415, "unsupported_audio"),
    ],
)
def test_broken_audio(client, france_wav, case, status, code):
    data = {
        "zero_bytes": b"",
        "text_named_wav": b"This is a text file, not a recording.\n" * 20,
        "random_bytes": os.urandom(50_000),
        "header_only_wav": france_wav[:44],
        "silence": silence_wav(2.0),
        "png_image": b"\x89PNG\r\n\x1a\n" + os.urandom(2000),
    }[case]
    error = assert_error(post_audio(client, data), status, code)
    if status == 415:
        assert "WAV" in error["message"] and "MP3" in error["message"]


def test_truncated_wav_still_answers_from_what_arrived(client, france_wav):
    r = post_audio(client, france_wav[: len(france_wav) * 3 // 4], max_tokens="16")
    assert r.status_code == 200, r.text
    assert "capital" in r.json()["transcript"].lower()


@pytest.fixture(scope="module")
def short():
    """A server with short limits: 1 s of audio, 512 tokens of LLM context. Also runs the
    single-user mode: with auth off no token is needed."""
    server = start_server(
        Path(tempfile.mkdtemp(prefix="short-")),
        VOXGATE_MAX_AUDIO_SECONDS="1",
        VOXGATE_LLM_CONTEXT="512",
        VOXGATE_AUTH="off",
    )
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
    stop_server(server)


def test_auth_off_is_announced(short):
    assert short.get("/v1/auth/config").json()["auth"] == "off"


def test_audio_over_the_duration_limit(short):
    assert_error(short.post("/v1/chat", files={"audio": ("long.wav", silence_wav(3.0))}), 413, "audio_too_long")


# About 700 tokens: under the character limit, over a 512-token context.
LONG_QUESTION = "Could you tell me what the weather will be like in Paris, Rome and Madrid next week? " * 35


def test_a_question_longer_than_the_context_is_a_400_and_stores_nothing(short):
    before = len(short.get("/v1/conversations").json()["data"])
    for stream in (False, True):
        r = short.post("/v1/chat", json={"text": LONG_QUESTION, "stream": stream})
        assert "512 tokens" in assert_error(r, 400, "question_too_long")["message"]
    assert len(short.get("/v1/conversations").json()["data"]) == before


@pytest.mark.parametrize("stream", [False, True])
def test_completions_longer_than_the_context_are_a_400(short, stream):
    r = short.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": LONG_QUESTION}], "stream": stream}
    )
    assert "512" in assert_error(r, 400, "context_length_exceeded")["message"]


def test_a_conversation_past_the_context_keeps_answering(short):
    question = "Here is a long story about my garden, the roses and the apple trees in it. " * 6 + "Say hi."
    conversation = None
    for _ in range(4):  # together far more than 512 tokens: the oldest turns are left out
        r = short.post(
            "/v1/chat", json={"text": question, "max_tokens": 8, "temperature": 0, "conversation_id": conversation}
        )
        assert r.status_code == 200, r.text
        assert r.json()["reply"].strip()
        conversation = r.json()["conversation_id"]
    assert len(short.get(f"/v1/conversations/{conversation}").json()["messages"]) == 8


def test_upload_over_the_size_limit_is_refused(client):
    r = post_audio(client, b"\0" * (26 * 1024 * 1024))
    assert_error(r, 413)


def test_chunked_upload_over_the_limit_is_refused_while_reading(client):
    def body():
        chunk = b"\0" * (1024 * 1024)
        for _ in range(40):
            yield chunk

    r = client.post("/v1/chat", content=body(), headers={"content-type": "application/json"})
    assert_error(r, 413)


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"text": "hi", "reply_as": "video"}, 400, "bad_reply_as"),
        ({"text": "hi", "reply_as": "voice", "voice_format": "aiff"}, 400, "bad_voice_format"),
        ({}, 400, "text_or_audio"),
        ({"text": "   "}, 400, "empty_text"),
        ({"text": "x " * 5000}, 413, "text_too_long"),
        ({"text": "hi", "max_tokens": -1}, 422, "invalid_schema"),
        ({"text": "hi", "temperature": "hot"}, 422, "invalid_schema"),
        ({"text": "hi", "surprise": 1}, 422, "invalid_schema"),
        (["not", "an", "object"], 400, "invalid_json"),
    ],
)
def test_bad_json_requests(client, payload, status, code):
    assert_error(client.post("/v1/chat", json=payload), status, code)


def test_broken_json(client):
    r = client.post("/v1/chat", content=b'{"text": "hi"', headers={"content-type": "application/json"})
    assert_error(r, 400, "invalid_json")


def test_both_text_and_audio(client, france_wav):
    assert_error(post_audio(client, france_wav, text="hello"), 400, "text_or_audio")


def test_unsupported_content_type(client):
    r = client.post("/v1/chat", content=b"text=hi", headers={"content-type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")


def test_speech_with_nothing_to_say(client):
    for fmt in ("wav", "mp3"):
        r = client.post("/v1/audio/speech", json={"input": "** ``", "response_format": fmt})
        assert_error(r, 400, "empty_text")


def test_unknown_route_is_a_json_404(client):
    assert_error(client.get("/v1/nothing-here"), 404)


def test_server_survives_the_corpus_and_leaks_no_temp_files(client, server_tmpdir, france_wav):
    # Files over python-multipart's in-memory threshold are spooled to disk: send some.
    before = set(server_tmpdir.iterdir())
    for data in (os.urandom(3 * 1024 * 1024), b"not a recording\n" * 200_000):
        assert post_audio(client, data).status_code in (400, 415)
    assert set(server_tmpdir.iterdir()) == before
    assert client.get("/readyz").status_code == 200
    r = client.post("/v1/chat", json={"text": "What is the capital of France?"})
    assert r.status_code == 200 and "paris" in r.json()["reply"].lower()


def test_full_queue_answers_503_with_retry_after(tmp_path_factory):
    server = start_server(
        tmp_path_factory.mktemp("busy"), VOXGATE_LLM_SLOTS="1", VOXGATE_QUEUE_SIZE="0", VOXGATE_AUTH="off"
    )
    try:

        def ask(_):
            return httpx.post(
                f"{server.url}/v1/chat",
                json={"text": "Count from one to forty in words.", "max_tokens": 120},
                timeout=120,
            )

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            responses = list(pool.map(ask, range(3)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses[0] == 200 and statuses[-1] == 503, statuses
        busy = next(r for r in responses if r.status_code == 503)
        assert int(busy.headers["retry-after"]) > 0
        assert_error(busy, 503, "busy")
    finally:
        stop_server(server)
