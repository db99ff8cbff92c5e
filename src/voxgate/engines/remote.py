"""What the remote engines share: one HTTP client per backend, retries, errors that name it,
and the folding of a streamed chat answer.

Engines are blocking and run in lane threads, hence the sync httpx client. A request is
retried with exponential backoff only while no byte of its answer has arrived (no
connection, a timeout before the headers, or 429/502/503/504 from a busy or restarting
backend): the backend has told nobody anything yet, so asking again is safe, even for a
chat. Once a response streams, a failure is final: text already handed on can't be unsaid.
"""

import json
import logging
import re
import time
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from voxgate.engines.base import ChatMessage, ChatRequest, ChatResult, OnDelta
from voxgate.errors import BackendError, BackendUnavailable, ContextExceeded, VoxgateError

log = logging.getLogger("voxgate")

CONNECT_TIMEOUT = 5.0
FIRST_BACKOFF = 0.25  # seconds before the first retry; doubled before each next one
RETRY_STATUSES = frozenset({429, 502, 503, 504})
BUSY_STATUSES = frozenset({429, 503})  # the backend works but is overloaded: "retry later", like voxgate's own 503
EXCERPT_CHARS = 200
# A chat backend's warm-up: one token, which also loads a model the backend keeps unloaded (Ollama).
WARM_UP_CHAT = ChatRequest(messages=(ChatMessage("user", "Hi"),), max_tokens=1, temperature=0.0)


class Remote:
    """One remote engine: its HTTP client, and how its failures read ("the LLM backend openai at URL ...")."""

    def __init__(self, role: str, kind: str, url: str, api_key: str | None, *, timeout: float, retries: int):
        self.label = f"the {role} backend {kind} at {url}"
        self.timeout = timeout
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # The read timeout bounds the wait for the headers and then for each streamed piece.
        self.client = httpx.Client(
            base_url=url, headers=headers, timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        )

    @contextmanager
    def stream(self, method: str, path: str, *, accept: Container[int] = (), **kwargs) -> Iterator[httpx.Response]:
        """Send a request (retried while nothing was answered) and lend its response to read as it arrives.

        `path` is relative to the base URL. An error status raises BackendError (BackendUnavailable
        for 429/503) unless it is in `accept`; a connection lost while reading raises BackendUnavailable.
        """
        response = self._send(method, path, kwargs)
        try:
            if response.is_error and response.status_code not in accept:
                raise self.answered(response)
            yield response
        except httpx.RequestError as exc:
            raise self._failed(exc, streaming=True) from exc
        finally:
            response.close()

    def call(self, method: str, path: str, *, accept: Container[int] = (), **kwargs) -> httpx.Response:
        """`stream`, with the whole body read."""
        with self.stream(method, path, accept=accept, **kwargs) as response:
            response.read()
        return response

    def _send(self, method: str, path: str, kwargs: dict) -> httpx.Response:
        attempts = self.retries + 1
        failure: VoxgateError  # the last attempt's
        cause: Exception | None
        for attempt in range(attempts):
            if attempt:
                time.sleep(FIRST_BACKOFF * 2 ** (attempt - 1))
            try:
                response = self.client.send(self.client.build_request(method, path, **kwargs), stream=True)
            except httpx.RequestError as exc:
                failure, cause = self._failed(exc, streaming=False), exc
                if not isinstance(failure, BackendUnavailable):  # asking again would fail the same way
                    raise failure from exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                failure, cause = self.answered(response), None
        if attempts > 1:
            failure = type(failure)(f"{failure.message} (after {attempts} attempts)")
        raise failure from cause

    def _failed(self, exc: httpx.RequestError, *, streaming: bool) -> BackendError | BackendUnavailable:
        reason = _reason(exc)
        if isinstance(exc, httpx.ConnectTimeout):
            return BackendUnavailable(f"{self.label} is unreachable: no connection within {CONNECT_TIMEOUT:g} s")
        if isinstance(exc, httpx.ConnectError):
            return BackendUnavailable(f"{self.label} is unreachable: {reason}")
        if isinstance(exc, httpx.TimeoutException):
            what = "stopped answering for" if streaming else "did not answer within"
            return BackendUnavailable(f"{self.label} {what} {self.timeout:g} s")
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            return BackendUnavailable(f"{self.label} broke off the connection: {reason}")
        return BackendError(f"{self.label} could not be called: {reason}")  # e.g. a URL without http://

    def answered(self, response: httpx.Response) -> BackendError | BackendUnavailable | ContextExceeded:
        """The error for an error status, quoting the start of the body (closes the response).

        A 400 about the context (vLLM: "maximum context length", llama-server: "exceeds the
        available context size") is the client's prompt, not a broken backend."""
        try:
            body = b""
            for data in response.iter_bytes():
                body += data
                if len(body) > 16 * EXCERPT_CHARS:
                    break
        except httpx.RequestError:
            pass  # the status alone still says what happened
        finally:
            response.close()
        excerpt = _excerpt(body.decode("utf-8", "replace")) or response.reason_phrase
        if response.status_code == 400 and "context" in excerpt.lower():
            return ContextExceeded(f"{self.label} answered 400: {excerpt}")
        error = BackendUnavailable if response.status_code in BUSY_STATUSES else BackendError
        return error(f"{self.label} answered {response.status_code}: {excerpt}")

    def error(self, what: str) -> BackendError:
        return BackendError(f"{self.label} {what}")

    def reported(self, body: str) -> BackendError:
        """The error for an error object sent inside a streamed answer (llama.cpp, vLLM and Ollama do so)."""
        return self.error(f"reported an error: {_excerpt(body)}")

    @contextmanager
    def parsing(self, protocol: str) -> Iterator[None]:
        """Turn a body that breaks `protocol` (bad JSON, missing or mistyped fields) into BackendError.

        Keep callbacks out of the block, or their errors would read as the backend's.
        """
        try:
            yield
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self.error(f"answered something that is not {protocol}") from exc

    def warm_up(self, call: Callable[[], object]) -> None:
        """Make a first call; a backend that fails it gets a warning, not a crash, since it may
        start after voxgate (requests needing it fail with its error until then)."""
        try:
            call()
        except (BackendError, BackendUnavailable) as exc:
            log.warning("%s; requests that need it will fail until it answers", exc.message)


def _reason(exc: Exception) -> str:
    """ "[Errno 111] Connection refused" -> "connection refused"."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip() or type(exc).__name__
    return text[0].lower() + text[1:]


def _excerpt(body: str) -> str:
    """The message of a JSON error body ({"error": "..."} as Ollama sends it, {"error": {"message": ...}}
    as OpenAI and voxgate do, {"detail": ...}), else the body's first words."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error:
            body = error if isinstance(error, str) else json.dumps(error)
    text = " ".join(body.split())
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


@dataclass(frozen=True)
class Piece:
    """One parsed message of a streamed chat answer: some text, and near the end its finish
    reason and usage (prompt, completion, cached tokens)."""

    text: str = ""
    finish_reason: str | None = None
    usage: tuple[int, int, int] | None = None

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise TypeError(f"text is {type(self.text).__name__}, not str")


def collect(pieces: Iterable[Piece], on_delta: OnDelta | None) -> ChatResult:
    """Join a streamed answer, handing each text to `on_delta`; stop reading once it returns True."""
    texts: list[str] = []
    finish_reason, usage = "stop", (0, 0, 0)
    for piece in pieces:
        finish_reason = piece.finish_reason or finish_reason
        usage = piece.usage or usage
        if piece.text:
            texts.append(piece.text)
            if on_delta is not None and on_delta(piece.text):
                finish_reason = "cancelled"
                break
    return ChatResult("".join(texts).strip(), finish_reason, *usage)
