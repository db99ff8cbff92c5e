"""Chat LLM in-process with llama.cpp's server core (xllamacpp).

llama.cpp applies the chat template stored in the GGUF, decodes `slots` requests in
parallel, and reuses the longest cached prompt prefix of the slot a request runs in, so a
follow-up turn only evaluates its new tokens. Which slot that is, voxgate decides
(`SlotTable`): left to llama.cpp, a new conversation takes the slot whose cache shares the
longest prefix, and with a common system prompt that is any slot, often one whose
conversation is still going, which then evaluates its whole history again.
"""

import os
import threading
import time
from collections.abc import Callable, Iterable
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
                slot = self._fitting(messages, idle)
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

    def resting(self, messages: tuple[ChatMessage, ...]) -> int | None:
        """The slot a request for `messages` would take, if no request runs in any slot
        (work done for it then delays nobody); else None."""
        with self._lock:
            return None if any(self._running) else self._fitting(messages, range(len(self._held)))

    def hold(self, slot: int, held: tuple[ChatMessage, ...]) -> None:
        """`slot`'s cache now holds `held` (evaluated without a request of its own)."""
        with self._lock:
            self._held[slot], self._used[slot] = held, time.monotonic()

    def _fitting(self, messages: tuple[ChatMessage, ...], idle: Iterable[int]) -> int:
        shared = {slot: _shared(self._held[slot], messages) for slot in idle}
        best = max(shared, key=lambda slot: (shared[slot], -self._used[slot]))
        return best if shared[best] > (1, 0) else min(shared, key=self._used.__getitem__)


def _shared(held: tuple[ChatMessage, ...], messages: tuple[ChatMessage, ...]) -> tuple[int, int]:
    """How much of `messages` a slot holding `held` has cached: the leading messages they
    have in common, then, when `held` ends in the opening of the next one (a question
    evaluated while it was being spoken), the characters they share."""
    same = sum(1 for _ in takewhile(lambda pair: pair[0] == pair[1], zip(held, messages, strict=False)))
    if same == len(held) - 1 and same < len(messages) and held[same].role == messages[same].role:
        return same, len(os.path.commonprefix([held[same].content, messages[same].content]))
    return same, 0


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

    def prefill(self, messages: tuple[ChatMessage, ...]) -> None:
        """If no request runs, evaluate `messages` into the slot a request continuing them
        would take: that request then evaluates only what follows."""
        if (slot := self._slots.resting(messages)) is not None:
            self._evaluate(messages, slot)
            self._slots.hold(slot, messages)

    def warm_up(self) -> None:
        """llama.cpp already ran a warm-up decode while loading; this puts `prefix` and the
        opening of a user message into every slot's cache (all at once: one batch)."""
        if not self._prefix:
            return
        opening = (*self._prefix, ChatMessage("user", ""))
        with ThreadPoolExecutor(len(self._slots)) as pool:
            list(pool.map(lambda slot: self._evaluate(opening, slot), range(len(self._slots))))

    def _evaluate(self, messages: tuple[ChatMessage, ...], slot: int) -> None:
        """Cache `messages` in `slot`, the last (a user message) left open: without the
        generation prompt, since what comes next is not known yet."""
        request = ChatRequest(messages, max_tokens=1, temperature=0.0)
        body = {**request_body(request), "add_generation_prompt": False, "cache_prompt": True, "id_slot": slot}
        self._server.handle_chat_completions(body, lambda _: False)


def _error(error: dict | str) -> Exception:
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        prompt, context = error.get("n_prompt_tokens"), error.get("n_ctx")
        return ContextExceeded(
            f"the prompt is {prompt} tokens; the model's context holds {context}", prompt_tokens=prompt, context=context
        )
    return RuntimeError(f"llama.cpp: {error}")
