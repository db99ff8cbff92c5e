"""Chat LLM in-process with llama.cpp's server core (xllamacpp).

llama.cpp applies the chat template stored in the GGUF, decodes `slots` requests in
parallel, and reuses the longest cached prompt prefix of the slot a request runs in, so a
follow-up turn only evaluates its new tokens. Which slot that is, voxgate decides
(`SlotTable`): left to llama.cpp, a new conversation takes the slot whose cache shares the
longest prefix, and with a common system prompt that is any slot, often one whose
conversation is still going, which then evaluates its whole history again.
"""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from itertools import takewhile
from pathlib import Path

import xllamacpp

from voxgate.engines.base import ChatMessage, ChatRequest, ChatResult, OnDelta
from voxgate.engines.openai_chat import chunk_pieces, request_body
from voxgate.errors import ContextExceeded
from voxgate.scheduler import Claim, Floor, caller_deadline

_STEPPED_ASIDE = "stepped aside"  # a request stopped so a more urgent one can go first


class SlotTable:
    """Which llama.cpp slot runs a request: the idle slot whose last conversation this
    request continues (it repeats more than that conversation's first message, the system
    prompt), else the idle slot used least recently."""

    def __init__(self, slots: int):
        self._held: list[tuple[ChatMessage, ...]] = [() for _ in range(slots)]  # what each slot's cache holds
        self._used = [0.0] * slots
        self._running = [0] * slots  # requests in each slot now (more than 1: queued by llama.cpp)
        self._lock = threading.Lock()

    def take(self, messages: tuple[ChatMessage, ...]) -> int:
        with self._lock:
            idle = [slot for slot, running in enumerate(self._running) if not running]
            if idle:
                shared = {slot: _shared_prefix(self._held[slot], messages) for slot in idle}
                best = max(idle, key=lambda slot: (shared[slot], -self._used[slot]))
                slot = best if shared[best] > 1 else min(idle, key=self._used.__getitem__)
            else:  # more callers than slots: llama.cpp queues the request for the least loaded one
                slot = min(range(len(self._running)), key=lambda slot: (self._running[slot], self._used[slot]))
            self._running[slot] += 1
            return slot

    def give_back(self, slot: int, held: tuple[ChatMessage, ...]) -> None:
        with self._lock:
            self._held[slot], self._used[slot] = held, time.monotonic()
            self._running[slot] -= 1

    def __len__(self) -> int:
        return len(self._held)

    def resting(self, conversation: tuple[ChatMessage, ...]) -> int | None:
        """The slot holding `conversation`, if no request runs in any slot (work done for
        it then delays nobody); else None."""
        with self._lock:
            if any(self._running):
                return None
            shared = [_shared_prefix(held, conversation) for held in self._held]
            slot = max(range(len(shared)), key=shared.__getitem__)
            return slot if shared[slot] > 1 else None


def _shared_prefix(a: tuple[ChatMessage, ...], b: tuple[ChatMessage, ...]) -> int:
    """How many leading messages `a` and `b` have in common."""
    return sum(1 for _ in takewhile(lambda pair: pair[0] == pair[1], zip(a, b, strict=False)))


class LlamaCppLLM:
    def __init__(
        self,
        name: str,
        path: Path,
        *,
        threads: int,
        context: int,
        slots: int,
        draft: Path | None = None,
        prefix: tuple[ChatMessage, ...] = (),
    ):
        """`draft`: a small model of the same family that proposes tokens for this one to
        check in one batch (speculative decoding); it runs on the same threads. `prefix`:
        what conversations usually start with (the system prompt); warming up evaluates it
        into every slot, so a new conversation's first turn evaluates only its own words."""
        self.name = name
        self._prefix = prefix
        self._slots = SlotTable(slots)
        self._floor = Floor()
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
        """Decoded one request at a time, the most urgent first (`Floor`): a reply steps
        aside when a more urgent one waits, and goes on later from its cached
        words (the text so far as the assistant's message, which llama.cpp continues)."""
        slot = self._slots.take(request.messages)
        texts: list[str] = []
        try:
            with self._floor.claim(caller_deadline()) as claim:
                return self._generate(request, slot, texts, on_delta, claim)
        finally:
            self._slots.give_back(slot, (*request.messages, ChatMessage("assistant", "".join(texts).strip())))

    def _generate(
        self, request: ChatRequest, slot: int, texts: list[str], on_delta: OnDelta | None, claim: Claim
    ) -> ChatResult:
        before = 0  # tokens written before this part (one per streamed piece)
        while True:
            if not claim.wait_turn():
                return ChatResult("".join(texts).strip(), "cancelled")
            part = request
            if texts:
                written = ChatMessage("assistant", "".join(texts))
                part = replace(request, messages=(*request.messages, written), max_tokens=request.max_tokens - before)
            pieces_before = len(texts)
            finish_reason, (prompt, completion, cached) = self._decode(part, slot, texts, on_delta, claim.urged)
            if finish_reason != _STEPPED_ASIDE:
                # Counted as if written in one go: the tokens continued from were the reply's, not its
                # prompt's; cached, those the last part found cached, less the reply's own.
                return ChatResult(
                    "".join(texts).strip(), finish_reason, prompt - before, completion + before, max(0, cached - before)
                )
            before += len(texts) - pieces_before

    def _decode(
        self,
        request: ChatRequest,
        slot: int,
        texts: list[str],
        on_delta: OnDelta | None,
        step_aside: Callable[[], bool],
    ) -> tuple[str, tuple[int, int, int]]:
        """One llama.cpp request; its finish reason and usage (prompt, completion, cached)."""
        body = {**request_body(request), "cache_prompt": request.reuse_prefix, "id_slot": slot}
        finish_reason, usage = "cancelled", (0, 0, 0)
        error: Exception | None = None
        ending = len(texts) + request.max_tokens  # at this many pieces llama.cpp ends the request anyway

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
                    # Not after a space: continued text ending in one is tokenized differently.
                    if len(texts) < ending and not piece.text[-1].isspace() and step_aside():
                        finish_reason = _STEPPED_ASIDE
                        return True
            return False

        self._server.handle_chat_completions(body, on_chunk)
        if error is not None:
            raise error
        return finish_reason, usage

    def ready_follow_up(self, conversation: tuple[ChatMessage, ...]) -> None:
        """While the model is idle, evaluate the opening of the user's next message into the
        slot holding `conversation` (~5 tokens: ~70 ms its next turn does not wait for)."""
        if (slot := self._slots.resting(conversation)) is not None:
            self._open_user_message(conversation, slot)

    def warm_up(self) -> None:
        """llama.cpp already ran a warm-up decode while loading; this puts `prefix` into
        every slot's cache (all at once: one batch)."""
        if not self._prefix:
            return
        with ThreadPoolExecutor(len(self._slots)) as pool:
            list(pool.map(lambda slot: self._open_user_message(self._prefix, slot), range(len(self._slots))))

    def _open_user_message(self, conversation: tuple[ChatMessage, ...], slot: int) -> None:
        """Cache `conversation` and the template's opening of a user message after it in
        `slot` (an empty message without the generation prompt: what comes next is unknown)."""
        opening = ChatRequest((*conversation, ChatMessage("user", "")), max_tokens=1, temperature=0.0)
        body = {**request_body(opening), "add_generation_prompt": False, "cache_prompt": True, "id_slot": slot}
        self._server.handle_chat_completions(body, lambda _: False)


def _error(error: dict | str) -> Exception:
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        prompt, context = error.get("n_prompt_tokens"), error.get("n_ctx")
        return ContextExceeded(
            f"the prompt is {prompt} tokens; the model's context holds {context}", prompt_tokens=prompt, context=context
        )
    return RuntimeError(f"llama.cpp: {error}")
