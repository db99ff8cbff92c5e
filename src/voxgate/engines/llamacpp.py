"""Chat LLM in-process with llama.cpp's server core (xllamacpp).

llama.cpp applies the chat template stored in the GGUF, schedules `slots` requests in
parallel, and reuses the longest cached prompt prefix of a slot, so a follow-up turn only
evaluates its new tokens.
"""

from pathlib import Path

import xllamacpp

from voxgate.engines.base import ChatRequest, ChatResult, OnDelta
from voxgate.engines.openai_chat import chunk_pieces, request_body
from voxgate.errors import ContextExceeded


class LlamaCppLLM:
    def __init__(self, name: str, path: Path, *, threads: int, context: int, slots: int, draft: Path | None = None):
        """`draft`: a small model of the same family that proposes tokens for this one to
        check in one batch (speculative decoding); it runs on the same threads."""
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
        if draft is not None:
            params.speculative.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
            params.speculative.draft.mparams.path = str(draft)
            params.speculative.draft.cpuparams.n_threads = threads
            params.speculative.draft.cpuparams_batch.n_threads = threads
        self._server = xllamacpp.Server(params)

    def generate(self, request: ChatRequest, on_delta: OnDelta | None = None) -> ChatResult:
        body = {**request_body(request), "cache_prompt": request.reuse_prefix}
        texts: list[str] = []
        finish_reason, usage = "cancelled", (0, 0, 0)
        error: Exception | None = None

        def on_chunk(chunk: dict) -> bool:
            nonlocal finish_reason, usage, error
            if "error" in chunk:  # kept, not raised: xllamacpp swallows what its callback raises
                error = _error(chunk["error"])
                return True
            for piece in chunk_pieces(chunk):
                usage = piece.usage or usage
                finish_reason = piece.finish_reason or finish_reason
                if piece.text:
                    texts.append(piece.text)
                    if on_delta is not None and on_delta(piece.text):
                        finish_reason = "cancelled"
                        return True  # tells llama.cpp to stop this request
            return False

        self._server.handle_chat_completions(body, on_chunk)
        if error is not None:
            raise error
        return ChatResult("".join(texts).strip(), finish_reason, *usage)

    def warm_up(self) -> None:
        """Nothing to do: llama.cpp already ran a warm-up decode while loading."""


def _error(error: dict | str) -> Exception:
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        prompt, context = error.get("n_prompt_tokens"), error.get("n_ctx")
        return ContextExceeded(
            f"the prompt is {prompt} tokens; the model's context holds {context}", prompt_tokens=prompt, context=context
        )
    return RuntimeError(f"llama.cpp: {error}")
