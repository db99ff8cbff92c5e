"""The ollama LLM backend against a shim that speaks Ollama's /api/chat protocol.

Ollama itself can't be installed here (it is on neither PyPI nor Debian), so the shim
translates each request to llama.cpp's real server and its SSE answer back to Ollama's
JSON lines, as documented in Ollama's API reference: the model and its streaming are real.
"""

import json
from collections.abc import Iterator
from dataclasses import replace

import httpx
import llama_server
import pytest
from conftest import reply, reply_streamed, stub_server

from voxgate.engines.base import ChatMessage, ChatRequest
from voxgate.engines.ollama_chat import OllamaChat
from voxgate.errors import BackendError

MODEL = "qwen2.5-coder:0.5b"


@pytest.fixture(scope="module")
def ollama_url(llama_url) -> Iterator[str]:
    def handle(request):
        body = json.loads(request.body or b"{}")
        if request.path != "/api/chat":
            reply(request, 404, "404 page not found", "text/plain")
        elif body.get("model") != MODEL:
            reply(
                request,
                404,
                json.dumps({"error": f'model "{body.get("model")}" not found, try pulling it first'}),
                "application/json; charset=utf-8",
            )
        else:
            reply_streamed(request, "application/x-ndjson", ollama_lines(body))

    def ollama_lines(body: dict) -> Iterator[str]:
        options = body.get("options", {})
        openai = {
            "messages": body["messages"],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": options.get("num_predict", -1),
            "temperature": options.get("temperature", 0.8),
            **{key: options[key] for key in ("top_p", "stop") if key in options},
        }
        finish_reason, usage = "stop", {}
        with httpx.stream("POST", f"{llama_url}/chat/completions", json=openai, timeout=60) as response:
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or usage
                for choice in chunk["choices"]:
                    finish_reason = choice.get("finish_reason") or finish_reason
                    if choice["delta"].get("content"):
                        message = {"role": "assistant", "content": choice["delta"]["content"]}
                        yield json.dumps({"model": MODEL, "message": message, "done": False}) + "\n"
        yield (
            json.dumps(
                {
                    "model": MODEL,
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": finish_reason,
                    "prompt_eval_count": usage.get("prompt_tokens", 0),
                    "eval_count": usage.get("completion_tokens", 0),
                }
            )
            + "\n"
        )

    with stub_server(handle) as url:
        yield url


def ask(question: str, max_tokens: int = 64) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage("user", question),), max_tokens=max_tokens, temperature=0.0)


def test_streams_the_answer(ollama_url):
    deltas = []
    result = OllamaChat(MODEL, ollama_url, None, 60, 2).generate(
        ask("What is the capital of France? One word."), on_delta=deltas.append
    )
    assert "paris" in result.text.lower() and "".join(deltas).strip() == result.text
    assert result.finish_reason == "stop" and result.prompt_tokens > 10 and result.completion_tokens >= 1


def test_num_predict_ends_with_length_and_cancel_stops(ollama_url, llama_url):
    ollama = OllamaChat(MODEL, ollama_url, None, 60, 2)
    result = ollama.generate(ask("Tell me a long story about a dragon.", max_tokens=5))
    assert result.finish_reason == "length" and result.completion_tokens == 5
    deltas = []
    result = ollama.generate(
        ask("Count from 1 to 1000, separated by commas.", max_tokens=1900),
        on_delta=lambda d: deltas.append(d) or len(deltas) == 2,
    )
    assert len(deltas) == 2 and result.finish_reason == "cancelled"
    llama_server.wait_idle(llama_url, 30)  # the closed connection reached the model through the shim


def test_stop_and_top_p_options_are_passed(ollama_url):
    request = replace(ask("Count from 1 to 10, separated by commas."), stop=("5",), top_p=0.9)
    result = OllamaChat(MODEL, ollama_url, None, 60, 2).generate(request)
    assert "4" in result.text and "5" not in result.text and result.finish_reason == "stop"


def test_an_error_body_is_a_backend_error_with_its_message(ollama_url):
    with pytest.raises(BackendError) as caught:
        OllamaChat("llama3:70b", ollama_url, None, 60, 2).generate(ask("Hello?"))
    assert caught.value.message == (
        f'the LLM backend ollama at {ollama_url} answered 404: model "llama3:70b" not found, try pulling it first'
    )


def test_an_error_line_mid_stream_is_reported():
    lines = [
        json.dumps({"model": MODEL, "message": {"role": "assistant", "content": "Hi"}, "done": False}) + "\n",
        json.dumps({"error": "an error was encountered while running the model: out of memory"}) + "\n",
    ]
    with stub_server(lambda r: reply_streamed(r, "application/x-ndjson", lines)) as url:
        with pytest.raises(
            BackendError,
            match=f"^the LLM backend ollama at {url} reported an error: "
            "an error was encountered while running the model: out of memory$",
        ):
            OllamaChat(MODEL, url, None, 60, 0).generate(ask("Hello?"))


def test_an_openai_server_is_not_ollama(llama_url):
    with pytest.raises(BackendError, match="answered 404: File Not Found$"):  # llama.cpp has no /api/chat
        OllamaChat(MODEL, llama_url.removesuffix("/v1"), None, 60, 0).generate(ask("Hello?"))
    sse = ['data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n', "data: [DONE]\n\n"]
    with stub_server(lambda r: reply_streamed(r, "text/event-stream", sse)) as url:
        with pytest.raises(BackendError, match="answered something that is not an Ollama chat stream$"):
            OllamaChat(MODEL, url, None, 60, 0).generate(ask("Hello?"))
