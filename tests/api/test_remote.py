"""voxgate as a thin gateway: every role on a remote engine, through the same API.

The LLM is llama.cpp's own OpenAI-compatible HTTP server (a real process serving the
packaged model); speech-to-text and text-to-speech are a second voxgate instance. The
backends die and misbehave here, and the gateway must say which one and keep serving.
"""

import json
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import httpx
import llama_server
import pytest
from conftest import Server, reply, start_server, stop_server, stub_server, words


@pytest.fixture(scope="module")
def speech_server(tmp_path_factory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("speech"))
    yield server
    stop_server(server)


def remote_env(speech: Server, llm_url: str) -> dict[str, str]:
    return {
        "VOXGATE_STT_BACKEND": "openai",
        "VOXGATE_STT_URL": f"{speech.url}/v1",
        "VOXGATE_STT_MODEL": "whisper-tiny.en",
        "VOXGATE_STT_API_KEY": speech.key,
        "VOXGATE_TTS_BACKEND": "openai",
        "VOXGATE_TTS_URL": f"{speech.url}/v1",
        "VOXGATE_TTS_MODEL": "tts-1",
        "VOXGATE_TTS_API_KEY": speech.key,
        "VOXGATE_LLM_BACKEND": "openai",
        "VOXGATE_LLM_URL": llm_url,
        "VOXGATE_LLM_MODEL": "qwen-remote",
        "VOXGATE_BACKEND_RETRIES": "1",
    }


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Iterator[dict]:
    """This module's own llama.cpp server (the tests kill and restart it)."""
    log_dir = tmp_path_factory.mktemp("llama")
    proc, url = llama_server.start(log_dir)
    state = {"proc": proc, "url": url, "log_dir": log_dir}
    yield state
    state["proc"].kill()
    state["proc"].wait()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, speech_server, llama) -> Iterator[httpx.Client]:
    server = start_server(tmp_path_factory.mktemp("gateway"), **remote_env(speech_server, llama["url"]))
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=300) as client:
        yield client
    stop_server(server)


def test_voice_to_voice_through_remote_engines(gateway, france_wav, llama, speech_server):
    response = gateway.post("/v1/chat", files={"audio": ("q.wav", france_wav)}, data={"reply_as": "voice"})
    assert response.status_code == 200, response.text
    assert "france" in words(unquote(response.headers["x-voxgate-transcript"]))
    assert "paris" in unquote(response.headers["x-voxgate-reply"]).lower()
    assert response.content[:4] == b"RIFF" and len(response.content) > 20_000
    assert response.headers["x-voxgate-voice"] == "tts-1"

    listed = {m["id"]: m for m in gateway.get("/v1/models").json()["data"]}
    assert listed["qwen-remote"]["source"] == "remote" and listed["qwen-remote"]["default"]
    assert llama["url"] in listed["qwen-remote"]["description"]
    assert listed["whisper-tiny.en"]["source"] == "remote" and listed["tts-1"]["source"] == "remote"


def test_openai_clients_stream_through_the_remote_llm(gateway):
    with gateway.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "qwen-remote",
            "stream": True,
            "max_tokens": 30,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
        },
    ) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "paris" in text.lower() and chunks[0]["model"] == "qwen-remote"


def test_llm_dying_mid_stream_is_an_error_naming_it_and_the_gateway_recovers(gateway, llama):
    port = urlsplit(llama["url"]).port
    events: list[tuple[str, dict]] = []
    with gateway.stream(
        "POST",
        "/v1/chat",
        json={
            "text": "Count from one to two hundred in words, separated by commas.",
            "stream": True,
            "max_tokens": 600,
        },
    ) as response:
        assert response.status_code == 200
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
                if kind == "text" and len(events) == 3:
                    llama["proc"].kill()  # the LLM server dies while it is answering
    kinds = [k for k, _ in events]
    assert "text" in kinds and kinds[-1] == "error" and "done" not in kinds
    error = events[-1][1]["error"]
    assert error["code"] in ("backend_unavailable", "backend_error")
    assert f"the LLM backend openai at http://127.0.0.1:{port}/v1" in error["message"]

    down = gateway.post("/v1/chat", json={"text": "Hello?"})
    assert down.status_code == 503 and down.headers["retry-after"]
    assert down.json()["error"]["code"] == "backend_unavailable"
    assert f"127.0.0.1:{port}" in down.json()["error"]["message"]
    assert gateway.get("/healthz").status_code == 200

    llama["proc"], _ = llama_server.start(llama["log_dir"], port=port)  # back on the same port
    again = gateway.post("/v1/chat", json={"text": "What is the capital of France?"})
    assert again.status_code == 200 and "paris" in again.json()["reply"].lower()


def test_a_backend_answering_garbage_is_a_502_naming_it(tmp_path, speech_server):
    def html(request):
        reply(request, 200, "<html><body>It works!</body></html>", "text/html")

    with stub_server(html) as url:
        server = start_server(tmp_path, **remote_env(speech_server, f"{url}/v1"))
        try:
            response = httpx.post(f"{server.url}/v1/chat", json={"text": "Hello?"}, headers=server.headers, timeout=60)
            assert response.status_code == 502, response.text
            assert response.json()["error"]["code"] == "backend_error"
            assert f"the LLM backend openai at {url}/v1" in response.json()["error"]["message"]
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        finally:
            stop_server(server)
