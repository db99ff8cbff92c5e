"""Chat with a remote OpenAI-compatible server (vLLM, llama.cpp's llama-server, LM Studio, OpenAI),
streamed as server-sent events so replies are spoken while they are generated.

`reuse_prefix` is not sent: such servers reuse cached prefixes on their own, and OpenAI
rejects unknown fields such as llama.cpp's `cache_prompt`.
"""

import json
from collections.abc import Iterator

import httpx

from voxgate.engines.base import ChatRequest, ChatResult, OnDelta
from voxgate.engines.remote import WARM_UP_CHAT, Piece, Remote, collect


def request_body(request: ChatRequest, model: str | None = None) -> dict:
    """`request` as a streamed OpenAI chat-completions body (llama.cpp's in-process server takes it too)."""
    body = {
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},  # token counts; a server ignoring it leaves them 0
    }
    if model is not None:
        body["model"] = model
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    return body


def chunk_pieces(chunk: dict) -> Iterator[Piece]:
    """The text, finish reason and usage in one chat.completion.chunk."""
    usage = chunk.get("usage")
    if usage:
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        yield Piece(usage=(int(usage["prompt_tokens"]), int(usage["completion_tokens"]), int(cached)))
    for choice in chunk["choices"]:
        yield Piece(choice["delta"].get("content") or "", choice.get("finish_reason"))


class OpenAIChat:
    def __init__(self, name: str, url: str, api_key: str | None, timeout: float, retries: int):
        self.name = name
        self._remote = Remote("LLM", "openai", url, api_key, timeout=timeout, retries=retries)

    def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        body = request_body(request, self.name)
        # Leaving the block early (on_delta said stop) closes the connection, which stops the server.
        with self._remote.stream("POST", "chat/completions", json=body) as response:
            return collect(self._pieces(response), on_delta)

    def _pieces(self, response: httpx.Response) -> Iterator[Piece]:
        with self._remote.parsing("an OpenAI chat stream"):
            for line in response.iter_lines():
                field, _, value = line.partition(":")
                if not line or field in ("", "event", "id", "retry"):  # blank, ": keep-alive", or metadata
                    continue
                if field != "data":
                    raise ValueError(f"not a server-sent event: {line[:80]!r}")
                value = value.strip()
                if value == "[DONE]":
                    return
                chunk = json.loads(value)
                if "error" in chunk:
                    raise self._remote.reported(value)
                yield from chunk_pieces(chunk)
        raise self._remote.error("broke off its chat stream before [DONE]")

    def warm_up(self) -> None:
        self._remote.warm_up(lambda: self.generate(WARM_UP_CHAT))
