"""`voxgate serve`: uvicorn with the connection guards and the graceful shutdown it lacks.

Guards (`GuardedHttp`). uvicorn closes a keep-alive connection idle after a response
(`timeout_keep_alive`), but gives a connection that never completes a request no deadline
at all: idle sockets and slowloris clients (a header byte every few seconds) stay open
until the process runs out of files. So a connection gets `header_timeout` to send a
request's head (from connecting, or from the first byte after its previous response:
until then the keep-alive timeout holds) and `body_timeout` for the body after it; past
either it is answered 408 (when part of the request came) and closed.
Past `max_connections` open connections a new one is answered 503 and closed at once,
which frees its file. (uvicorn's `limit_concurrency` answers plain text and keeps the
connection, so it is not used.) The answers are voxgate's JSON error envelope.

Shutdown (`DrainingServer`). The first SIGTERM or Ctrl-C drains (`api/middleware.py`:
/readyz turns 503, new work is refused, turns in flight finish within the grace period,
the rest end with an error), then uvicorn stops; a second signal ends the grace period at
once; a third is uvicorn's own (a second Ctrl-C there exits without waiting).
"""

import asyncio
import json
import logging
import signal
from http import HTTPStatus

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from voxgate import metrics
from voxgate.api.middleware import Shutdown
from voxgate.config import Settings
from voxgate.errors import Unavailable, VoxgateError

log = logging.getLogger("voxgate")

# After the drain: how long uvicorn lets responses still going out finish before it cuts them.
SHUTDOWN_TAIL_SECONDS = 5


class RequestTimeout(VoxgateError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with deadlines for receiving a request and a
    cap on open connections. `guarded_http` sets the limits."""

    header_timeout = 10.0
    body_timeout = 60.0
    max_connections = 500

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._receiving = False  # part of a request's head has come
        if len(self.connections) > self.max_connections:
            self._cut(
                "too_many_connections",
                Unavailable(
                    f"the server has {self.max_connections} connections open; retry shortly",
                    code="too_many_connections",
                    retry_after=1,
                ),
            )
        else:
            self._arm(self.header_timeout, "header_timeout")

    def data_received(self, data: bytes) -> None:
        # Between two requests only uvicorn's keep-alive timer runs, and any byte stops it:
        # from that byte on the next head has its deadline.
        if self._deadline is None and self.cycle is not None and self.cycle.response_complete:
            self._arm(self.header_timeout, "header_timeout")
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = True

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._receiving = False
        if self.parser.should_upgrade() and self._should_upgrade():
            self._disarm()  # a WebSocket: its own protocol takes over (with pings)
        else:
            self._arm(self.body_timeout, "body_timeout")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, reason: str) -> None:
        self._deadline = None
        cycle = self.cycle
        if reason == "body_timeout":
            error = RequestTimeout(f"the request body did not arrive within {self.body_timeout:g} s")
            answer = cycle is not None and not cycle.response_started
            if cycle is not None:  # the app's request ends: its receive says the client left
                cycle.disconnected = True
                cycle.message_event.set()
        else:
            error = RequestTimeout(f"the request headers did not arrive within {self.header_timeout:g} s")
            answer = self._receiving  # nothing came at all: just close, like an idle keep-alive
        self._cut(reason, error if answer else None)

    def _cut(self, reason: str, error: VoxgateError | None) -> None:
        metrics.CONNECTIONS_CUT.labels(reason).inc()
        if error is not None:
            body = json.dumps(error.envelope()).encode()
            headers = [
                *self.server_state.default_headers,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *((name.lower().encode(), value.encode()) for name, value in error.headers().items()),
            ]
            self.transport.write(
                b"".join(
                    [
                        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n".encode(),
                        *(b"%s: %s\r\n" % header for header in headers),
                        b"\r\n",
                        body,
                    ]
                )
            )
        self.transport.close()


def guarded_http(settings: Settings) -> type[GuardedHttp]:
    return type(
        "GuardedHttp",
        (GuardedHttp,),
        {
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout,
            "max_connections": settings.max_connections,
        },
    )


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal drains before it stops (see the module)."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown):
        super().__init__(config)
        self._shutdown = shutdown
        self._signals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame) -> None:
        # A signal handler runs between two bytecodes of whatever the loop was doing:
        # hand the work to the loop instead of doing it here.
        self._signals += 1
        if self._loop is None:  # a signal before serving began: nothing to drain
            super().handle_exit(sig, frame)
        elif self._signals == 1:
            self._loop.call_soon_threadsafe(self._start_draining, sig)
        elif self._signals == 2:
            self._loop.call_soon_threadsafe(self._shutdown.hurry)
        else:
            super().handle_exit(sig, frame)

    def _start_draining(self, sig: int) -> None:
        log.info(
            "%s: shutting down; turns in flight have %g s to finish (signal again to stop them now)",
            signal.Signals(sig).name,
            self._shutdown.grace_seconds,
        )
        self._draining = asyncio.create_task(self._drain_then_stop(sig))

    async def _drain_then_stop(self, sig: int) -> None:
        await self._shutdown.drain()
        super().handle_exit(sig, None)  # uvicorn's own shutdown from here


def serve(app, settings: Settings, host: str, port: int) -> None:
    """Serve `app` (from `create_app(settings)`) until a signal has drained it."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_http(settings),
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=SHUTDOWN_TAIL_SECONDS,
        log_config=None,
        access_log=False,  # logs.configure set up logging; the app writes the access log
    )
    DrainingServer(config, app.state.shutdown).run()
