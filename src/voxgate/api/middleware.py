"""The edge of every request: its id, access log line and metrics (`RequestContext`), and
the graceful shutdown (`Shutdown`, `Drain`).

Shutdown, started by `voxgate serve` on SIGTERM or Ctrl-C (`server.py`):
1. Draining: /readyz answers 503 so load balancers stop sending work, and every new
   request but the probes and /metrics is refused with 503 `shutting_down` (a new
   WebSocket too). Turns in flight go on.
2. When nothing is in flight any more (no request, no model call), or the grace period
   (`VOXGATE_SHUTDOWN_GRACE_SECONDS`) is over: the lanes refuse, so each turn still
   running ends with 503 `shutting_down` on its own path (a JSON error, an SSE `error`
   event, a realtime `error` message) and stores nothing; then open WebSockets are closed
   with 1001 "server shutting down" and uvicorn stops.
"""

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxgate import logs, metrics
from voxgate.errors import Unavailable
from voxgate.lanes import Lane

access_log = logging.getLogger("voxgate.access")

# A client's own id is kept if it is short and plain (it ends up in logs and headers).
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")
# Always served, even while shutting down, and not counted as work in flight.
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
_TAIL_SECONDS = 2.0  # after the lanes refuse: time for the errors to reach their clients


def shutting_down() -> Unavailable:
    return Unavailable("the server is shutting down; retry on another instance", code="shutting_down", retry_after=1)


class RequestContext:
    """Gives every request an id (the client's `X-Request-ID` if it is plain, else a new
    one), sends it back on the response, and sets it for every log line written while
    the request runs; then writes the access log line and counts the request.

    It wraps even the framework's outermost error middleware, so a 500 carries the id
    the traceback in the log has.
    """

    def __init__(self, app: ASGIApp, route_of: Callable[[Scope], str]):
        self.app = app
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        status: int | None = None
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start", "websocket.accept"):
                status = message.get("status", 101)
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            elif kind == "websocket.close" and status is None:
                status = 403  # refused before it was accepted
            elif kind in ("http.response.body", "websocket.http.response.body"):
                answered = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not answered:
                raise
            # The error handler has answered (a 500 envelope) and logged the traceback with
            # this id: the exception is done with, and the keep-alive connection stays usable.
        finally:
            self._record(scope, status, time.perf_counter() - started)
            logs.request_id.reset(token)

    def _record(self, scope: Scope, status: int | None, seconds: float) -> None:
        method = scope.get("method", "WEBSOCKET") if scope["type"] == "http" else "WEBSOCKET"
        route = self.route_of(scope)
        shown = status if status is not None else 0  # 0: the client left before any answer
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        path = scope.get("path", "")
        access_log.info(
            '%s "%s %s" %s %.1f ms',
            where,
            method,
            path,
            shown,
            seconds * 1000,
            extra={
                "fields": {
                    "client": where,
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": shown,
                    "duration_ms": round(seconds * 1000, 1),
                }
            },
        )
        if scope["type"] == "http":
            metrics.REQUESTS.labels(method, route, str(shown)).inc()
            metrics.REQUEST_SECONDS.labels(method, route).observe(seconds)


def route_template(routes: Iterable) -> Callable[[Scope], str]:
    """The route template a request matched ("/v1/conversations/{conversation_id}"), so
    metrics have one series per route, not per id; "unmatched" for any other path."""
    routes = tuple(routes)

    def route_of(scope: Scope) -> str:
        route = scope.get("route")  # set by the router when it got that far
        if route is None:  # answered before routing (a refusal): match it here
            route = next((r for r in routes if r.matches(scope)[0] != Match.NONE), None)
        return getattr(route, "path", None) or "unmatched"

    return route_of


class Shutdown:
    """The state of a graceful shutdown, shared by the server that starts it and the app."""

    def __init__(self, grace_seconds: float):
        self.grace_seconds = grace_seconds
        self.draining = False
        self.lanes: list[Lane] = []  # the pipeline's, set once it exists
        self._requests = 0  # HTTP requests in flight, probes aside
        self._sockets: set[asyncio.Event] = set()  # each set closes its WebSocket
        self._hurry = asyncio.Event()

    @property
    def idle(self) -> bool:
        return self._requests == 0 and all(lane.in_flight == 0 for lane in self.lanes)

    @contextmanager
    def request(self) -> Iterator[None]:
        """An HTTP request in flight: the drain waits for it."""
        self._requests += 1
        try:
            yield
        finally:
            self._requests -= 1

    @contextmanager
    def socket(self) -> Iterator[asyncio.Event]:
        """An open WebSocket: the event is set when it is to be closed."""
        closing = asyncio.Event()
        self._sockets.add(closing)
        try:
            yield closing
        finally:
            self._sockets.discard(closing)

    def hurry(self) -> None:
        """End the grace period now (a second signal)."""
        self._hurry.set()

    async def drain(self) -> None:
        """Steps 1 and 2 of the module docstring; returns when uvicorn may stop."""
        self.draining = True
        deadline = time.monotonic() + self.grace_seconds
        await self._until(lambda: self.idle, deadline)
        for lane in self.lanes:
            lane.refuse(shutting_down)
        await self._until(lambda: self._requests == 0, time.monotonic() + _TAIL_SECONDS)
        for close in self._sockets:
            close.set()
        # uvicorn's own shutdown would close what is still open with 1012 and no reason:
        # give each socket its turn to send 1001 first.
        await self._until(lambda: not self._sockets, time.monotonic() + _TAIL_SECONDS)

    async def _until(self, done: Callable[[], bool], deadline: float) -> None:
        # Polled like uvicorn's own shutdown: the lanes' threads give no event to wait on.
        while not done() and not self._hurry.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)


class Drain:
    """Refuses new work while shutting down, counts the HTTP requests in flight, and closes
    WebSockets when `Shutdown` says so."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown, refusal: Callable[[Unavailable], ASGIApp]):
        self.app = app
        self.shutdown = shutdown
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PROBES:
            return await self.app(scope, receive, send)
        if self.shutdown.draining:
            if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
                return await send({"type": "websocket.close"})  # the server cannot answer 503: a 403
            return await self.refusal(shutting_down())(scope, receive, send)
        if scope["type"] == "websocket":
            return await self._socket(scope, receive, send)
        with self.shutdown.request():
            await self.app(scope, receive, send)

    async def _socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a WebSocket whose next receive ends, once the shutdown closes it, with the
        close sent to the client and a disconnect handed to the app."""
        pending: asyncio.Future | None = None  # the client's next message, kept across calls
        accepted = False

        async def track(message: Message) -> None:
            nonlocal accepted
            accepted = accepted or message["type"] == "websocket.accept"
            await send(message)

        async def receive_unless_closing() -> Message:
            nonlocal pending
            if pending is None:
                pending = asyncio.ensure_future(receive())
            closed = asyncio.ensure_future(closing.wait())
            try:
                await asyncio.wait({pending, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if pending.done():
                message, pending = pending.result(), None
                return message
            if accepted:
                await send({"type": "websocket.close", "code": 1001, "reason": "server shutting down"})
            return {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}

        with self.shutdown.socket() as closing:
            try:
                await self.app(scope, receive_unless_closing, track)
            finally:
                if pending is not None:
                    pending.cancel()
