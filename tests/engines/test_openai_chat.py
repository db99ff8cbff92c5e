"""The openai LLM backend against llama.cpp's real OpenAI-compatible server, and against
stub servers for what a real one rarely does (garbage, 503, stalls)."""

import json
import logging
import time
from dataclasses import replace

import llama_server
import pytest
from conftest import free_port, reply, reply_streamed, stub_server

from voxgate.engines.base import ChatMessage, ChatRequest
from voxgate.engines.openai_chat import OpenAIChat
from voxgate.errors import BackendError, BackendUnavailable, ContextExceeded


def ask(question: str, max_tokens: int = 64) -> ChatRequest:
    return ChatRequest(
        messages=(ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", question)),
        max_tokens=max_tokens,
        temperature=0.0,
    )


def chat(url: str, *, timeout: float = 60, retries: int = 2) -> OpenAIChat:
    return OpenAIChat("qwen", url, None, timeout, retries)


def test_streams_deltas_that_join_to_the_answer(llama_url):
    deltas = []
    result = chat(llama_url).generate(ask("What is the capital of France? One word."), on_delta=deltas.append)
    assert len(deltas) >= 1 and "".join(deltas).strip() == result.text
    assert "paris" in result.text.lower()
    assert result.finish_reason == "stop"
    assert result.prompt_tokens > 10 and result.completion_tokens >= 1


def test_max_tokens_ends_with_length(llama_url):
    result = chat(llama_url).generate(ask("Tell me a long story about a dragon.", max_tokens=5))
    assert result.finish_reason == "length" and result.completion_tokens == 5


def test_stop_sequences_and_top_p_are_passed(llama_url):
    result = chat(llama_url).generate(replace(ask("Count from 1 to 10, separated by commas."), stop=("5",), top_p=0.9))
    assert "4" in result.text and "5" not in result.text and "6" not in result.text
    assert result.finish_reason == "stop"


def test_on_delta_true_stops_the_stream(llama_url):
    deltas = []
    result = chat(llama_url).generate(
        ask("Count from 1 to 1000, separated by commas.", max_tokens=1900),
        on_delta=lambda d: deltas.append(d) or len(deltas) == 3,
    )
    assert len(deltas) == 3
    assert result.finish_reason == "cancelled" and result.text == "".join(deltas).strip()
    # Closing the connection stopped the generation within a few tokens (1900 would take minutes).
    llama_server.wait_idle(llama_url, 30)


def test_a_prompt_longer_than_the_context_is_the_clients_error_not_the_backends(llama_url):
    with pytest.raises(ContextExceeded) as refused:
        chat(llama_url).generate(ask("word " * 5000))
    assert refused.value.status == 400 and "context" in refused.value.message


def test_warm_up_succeeds_quietly(llama_url, caplog):
    with caplog.at_level(logging.WARNING, logger="voxgate"):
        chat(llama_url).warm_up()
    assert not caplog.records


def test_backend_down_is_unavailable_after_retries_with_backoff(caplog):
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        chat(url, retries=2).generate(ask("Hello?"))
    assert time.monotonic() - started >= 0.25 + 0.5  # the two backoffs before the retries
    assert caught.value.message == (
        f"the LLM backend openai at {url} is unreachable: connection refused (after 3 attempts)"
    )
    assert caught.value.status == 503 and caught.value.headers()["Retry-After"]

    with caplog.at_level(logging.WARNING, logger="voxgate"):
        chat(url, retries=0).warm_up()  # a warning, not a crash: the backend may start later
    assert f"the LLM backend openai at {url} is unreachable" in caplog.text


def test_server_killed_mid_stream_is_an_error_naming_the_backend(tmp_path):
    proc, url = llama_server.start(tmp_path)
    deltas = []

    def kill_after_first(delta: str) -> None:
        deltas.append(delta)
        if len(deltas) == 1:
            proc.kill()
            proc.wait()

    try:
        with pytest.raises((BackendError, BackendUnavailable)) as caught:
            chat(url).generate(
                ask("Write a very long story about a dragon.", max_tokens=1000), on_delta=kill_after_first
            )
    finally:
        proc.kill()
    assert caught.value.message.startswith(f"the LLM backend openai at {url} ")
    assert 1 <= len(deltas) < 1000


def test_an_html_page_is_not_a_chat_stream():
    with stub_server(lambda r: reply(r, 200, "<html><body>It works!</body></html>", "text/html")) as url:
        with pytest.raises(
            BackendError,
            match=f"^the LLM backend openai at {url} answered something that is not an OpenAI chat stream$",
        ):
            chat(url).generate(ask("Hello?"))


def test_a_stream_without_done_is_broken():
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    with stub_server(lambda r: reply_streamed(r, "text/event-stream", [f"data: {json.dumps(chunk)}\n\n"])) as url:
        with pytest.raises(BackendError, match="broke off its chat stream before \\[DONE\\]"):
            chat(url).generate(ask("Hello?"))


def test_an_error_event_mid_stream_is_reported():
    events = [
        'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n',
        'data: {"error":{"code":500,"message":"the slot was lost","type":"server_error"}}\n\n',
    ]
    with stub_server(lambda r: reply_streamed(r, "text/event-stream", events)) as url:
        with pytest.raises(BackendError, match="reported an error: the slot was lost$"):
            chat(url).generate(ask("Hello?"))


def test_busy_backend_is_retried_then_unavailable_but_a_4xx_is_not_retried():
    hits = []

    def handle(request):
        hits.append(request.path)
        if "busy" in request.path:
            reply(request, 503, '{"error": {"message": "all slots are busy"}}', "application/json")
        else:
            reply(request, 400, '{"error": {"message": "model \\"qwen\\" does not exist"}}', "application/json")

    with stub_server(handle) as url:
        with pytest.raises(
            BackendUnavailable,
            match=f"^the LLM backend openai at {url}/busy answered 503: all slots are busy \\(after 3 attempts\\)$",
        ):
            chat(f"{url}/busy", retries=2).generate(ask("Hello?"))
        assert hits == ["/busy/chat/completions"] * 3
        hits.clear()
        with pytest.raises(BackendError, match='answered 400: model "qwen" does not exist$'):
            chat(url, retries=2).generate(ask("Hello?"))
        assert hits == ["/chat/completions"]


def test_stall_before_headers_is_retried_but_not_after_text_was_delivered():
    hits = []

    def handle(request):
        hits.append(request.path)
        if "mute" in request.path:
            time.sleep(1.5)  # no answer at all
        else:
            reply_streamed(request, "text/event-stream", hello_then_silence())

    def hello_then_silence():
        yield 'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
        time.sleep(1.5)

    with stub_server(handle) as url:
        with pytest.raises(BackendUnavailable, match="did not answer within 0.5 s \\(after 2 attempts\\)$"):
            chat(f"{url}/mute", timeout=0.5, retries=1).generate(ask("Hello?"))
        assert len(hits) == 2
        hits.clear()
        deltas = []
        with pytest.raises(BackendUnavailable, match="stopped answering for 0.5 s$"):
            chat(url, timeout=0.5, retries=1).generate(ask("Hello?"), on_delta=deltas.append)
        assert deltas == ["Hello"] and len(hits) == 1
