"""Chat LLM in-process with llama.cpp's server core (xllamacpp).

llama.cpp applies the chat template stored in the GGUF, schedules `slots` requests in
parallel, and reuses the longest cached prompt prefix of a slot, so a follow-up turn only
evaluates its new tokens.
"""

from pathlib import Path

import xllamacpp

from voxgate.engines.base import ChatRequest, ChatResult, OnDelta


class LlamaCppLLM:
    def __init__(self, name: str, path: Path, *, threads: int, context: int, slots: int):
        self.name = name
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = context * slots  # llama.cpp splits n_ctx evenly across slots
        params.n_parallel = slots
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.use_jinja = True
        params.warmup = True
        params.verbosity = -1
        self._server = xllamacpp.Server(params)

    def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        body = {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            "cache_prompt": request.reuse_prefix,
        }
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = list(request.stop)

        pieces: list[str] = []
        state = {"finish_reason": "cancelled", "usage": {}}

        def on_chunk(chunk: dict) -> bool:
            if "error" in chunk:
                raise RuntimeError(f"llama.cpp: {chunk['error']}")
            state["usage"] = chunk.get("usage") or state["usage"]
            for choice in chunk.get("choices", ()):
                delta = choice.get("delta", {}).get("content")
                if delta:
                    pieces.append(delta)
                    if on_delta is not None and on_delta(delta):
                        return True  # tells llama.cpp to stop this request
                if choice.get("finish_reason"):
                    state["finish_reason"] = choice["finish_reason"]
            return False

        self._server.handle_chat_completions(body, on_chunk)
        usage = state["usage"]
        return ChatResult(
            text="".join(pieces).strip(),
            finish_reason=state["finish_reason"],
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        )

    def warm_up(self) -> None:
        """Nothing to do: llama.cpp already ran a warm-up decode while loading."""
