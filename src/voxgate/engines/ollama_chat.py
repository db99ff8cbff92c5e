"""Chat with a remote Ollama through its native API: POST /api/chat, streamed as JSON lines.

`url` is the server's root, e.g. http://jetson:11434 (Ollama's OpenAI layer at /v1 works
with the openai backend instead).
"""

import json
from collections.abc import Iterator

import httpx

from voxgate.engines.base import ChatRequest, ChatResult, OnDelta
from voxgate.engines.remote import WARM_UP_CHAT, Piece, Remote, collect


class OllamaChat:
    def __init__(self, name: str, url: str, api_key: str | None, timeout: float, retries: int):
        self.name = name
        self._remote = Remote("LLM", "ollama", url, api_key, timeout=timeout, retries=retries)

    def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        options: dict[str, object] = {"temperature": request.temperature, "num_predict": request.max_tokens}
        if request.top_p is not None:
            options["top_p"] = request.top_p
        if request.stop:
            options["stop"] = list(request.stop)
        if request.seed is not None:
            options["seed"] = request.seed
        body = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "options": options,
        }
        # Leaving the block early (on_delta said stop) closes the connection, which stops Ollama.
        with self._remote.stream("POST", "api/chat", json=body) as response:
            return collect(self._pieces(response), on_delta)

    def _pieces(self, response: httpx.Response) -> Iterator[Piece]:
        with self._remote.parsing("an Ollama chat stream"):
            for line in response.iter_lines():
                if not line.strip():
                    continue
                chunk = json.loads(line)
                if "error" in chunk:
                    raise self._remote.reported(line)
                if not chunk["done"]:
                    yield Piece(chunk["message"]["content"])
                    continue
                # The last line: "length" when num_predict ran out, else "stop" (also for "load"/"unload").
                finish_reason = "length" if chunk.get("done_reason") == "length" else "stop"
                usage = (int(chunk.get("prompt_eval_count", 0)), int(chunk.get("eval_count", 0)), 0)
                yield Piece((chunk.get("message") or {}).get("content", ""), finish_reason, usage)
                return
        raise self._remote.error("broke off its chat stream before done")

    def warm_up(self) -> None:
        self._remote.warm_up(lambda: self.generate(WARM_UP_CHAT))
