"""The FastAPI application: lifespan (model loading), error envelope, size limit, request
context and shutdown drain (`middleware.py`), routers and their docs."""

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import REGISTRY
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxgate import __version__, accounts, metrics
from voxgate.api.deps import current_user
from voxgate.api.middleware import Drain, RequestContext, Shutdown, route_template
from voxgate.api.routers import accounts as accounts_routes
from voxgate.api.routers import chat, conversations, docs, health, models, openai, personas, realtime, web
from voxgate.api.routers.docs import error_responses
from voxgate.config import Settings
from voxgate.errors import PayloadTooLarge, Unavailable, VoxgateError, internal_error
from voxgate.lanes import lanes_of
from voxgate.limits import Limits
from voxgate.pipeline import Pipeline
from voxgate.registry import Registry

log = logging.getLogger("voxgate")


def _error_response(
    status: int, type_: str, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "code": code, "message": message}}, status, headers=headers)


def _voxgate_error(_: Request | None, exc: VoxgateError) -> JSONResponse:
    return JSONResponse(exc.envelope(), exc.status, headers=exc.headers())


def _counted_error(request: Request | None, exc: VoxgateError) -> JSONResponse:
    metrics.ERRORS.labels(str(exc.status), exc.code).inc()
    return _voxgate_error(request, exc)


def _shutting_down(exc: Unavailable) -> JSONResponse:
    response = _counted_error(None, exc)
    response.headers["Connection"] = "close"  # the client's next try opens a connection, to another instance
    return response


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}" for err in exc.errors()
    )
    return _error_response(422, "invalid_request_error", "invalid_schema", problems)


def _nested_too_deep(_: Request, exc: RecursionError) -> JSONResponse:
    """The JSON parser recurses once per nesting level: a body nested a thousand deep runs
    out of stack while FastAPI reads it. (Nothing else in voxgate recurses that deep.)"""
    log.warning("refused a request: %s", exc)
    return _error_response(400, "invalid_request_error", "invalid_json", "the JSON body is nested too deeply")


def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return _error_response(
        exc.status_code, "invalid_request_error", f"http_{exc.status_code}", str(exc.detail), exc.headers
    )


def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return _voxgate_error(None, internal_error())


class BodySizeLimit:
    """Refuse request bodies over their limit while they arrive, before they are buffered.

    A multipart form (an upload) may reach `upload_bytes`, any other body (JSON) only
    `json_bytes`. A declared Content-Length over the limit is refused without reading; a
    chunked body is counted as it streams in, and at the first byte over the limit the
    client gets the 413 while the app sees the client leave. A client that hangs up
    mid-request is no error: nobody is left to answer.
    """

    def __init__(self, app: ASGIApp, upload_bytes: int, json_bytes: int):
        self.app = app
        self.upload_bytes = upload_bytes
        self.json_bytes = json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if headers.get("content-type", "").partition(";")[0].strip().lower() == "multipart/form-data":
            limit, what = self.upload_bytes, "upload"
        else:
            limit, what = self.json_bytes, "request body (uploads go as multipart/form-data)"
        too_large = _voxgate_error(None, PayloadTooLarge(f"the {what} is larger than the {limit} byte limit"))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await too_large(scope, receive, send)
        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def send_unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counting_receive, send_unless_refused)
        except ClientDisconnect:
            pass


class _App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside even the framework's error middleware: a 500 has its request id too.
        return RequestContext(super().build_middleware_stack(), route_template(self.routes))


# The errors each group of routes documents (401, 422, 429 and 503 can happen anywhere behind auth).
_ROUTER_ERRORS = (
    (chat.router, (400, 404, 413, 415, 502)),
    (conversations.router, (403, 404)),
    (personas.router, (404, 409)),
    (openai.router, (400, 413, 415, 502)),
    (models.router, (403, 404, 409)),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.db = await accounts.open_database(settings)
        app.state.jwt_secret = accounts.token_secret(settings)
        if settings.auth == "off":
            app.state.local_user = await accounts.local_user(app.state.db)

        registry: Registry = app.state.models
        app.state.pipeline = Pipeline(registry, settings)
        app.state.shutdown.lanes = list(lanes_of(app.state.pipeline).values())
        collector = metrics.PipelineCollector(app.state.pipeline)
        REGISTRY.register(collector)

        # Load in the background so /healthz answers at once and /readyz reports progress.
        async def load() -> None:
            try:
                await asyncio.to_thread(registry.load_defaults)
                log.info("models ready")
            except Exception as exc:  # reported by /readyz; requests then load what they need
                log.error("loading models failed: %s", exc)
                app.state.load_error = exc
            finally:
                app.state.loading = False

        async def unload_idle() -> None:
            while True:
                await asyncio.sleep(max(1.0, min(30.0, settings.idle_unload_seconds / 4)))
                for name in await asyncio.to_thread(registry.unload_idle):
                    log.info("unloaded %s after %.0f s idle", name, settings.idle_unload_seconds)

        loading = asyncio.create_task(load())
        unloader = asyncio.create_task(unload_idle()) if settings.idle_unload_seconds else None
        yield
        REGISTRY.unregister(collector)
        if unloader:
            unloader.cancel()
        await loading
        await asyncio.to_thread(app.state.pipeline.close)  # waits for model calls still running
        await app.state.db.close()

    app = _App(
        title="voxgate",
        version=__version__,
        description="Self-hosted voice chat: speech or text in, speech or text out. Every `/v1` route "
        "needs `Authorization: Bearer <API key or access token>`: use Authorize. Errors are "
        'always `{"error": {"type", "code", "message"}}`.',
        lifespan=lifespan,
        docs_url=None,  # served offline by the docs router
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.shutdown = Shutdown(settings.shutdown_grace_seconds)
    app.state.models = Registry(settings)
    app.state.limits = Limits(settings)
    app.state.loading = True
    app.state.load_error = None
    # Starlette types a handler as taking any Exception; each of these only gets its own class.
    handlers: dict[type[Exception], Callable[[Request, Any], Response]] = {
        VoxgateError: _counted_error,
        RequestValidationError: _validation_error,
        HTTPException: _http_error,
        RecursionError: _nested_too_deep,
        Exception: _unexpected_error,
    }
    for exception, handler in handlers.items():
        app.add_exception_handler(exception, handler)
    # Room for the multipart envelope and form fields around a maximal upload.
    app.add_middleware(
        BodySizeLimit, upload_bytes=settings.max_upload_bytes + 64 * 1024, json_bytes=settings.max_json_bytes
    )
    app.add_middleware(Drain, shutdown=app.state.shutdown, refusal=_shutting_down)
    app.include_router(health.router, responses=error_responses(503))
    app.include_router(docs.router)
    app.mount(docs.ASSETS_PATH, docs.assets())
    app.include_router(web.router)  # the page is public; it signs in through the API
    # Each route says who may call it.
    app.include_router(accounts_routes.router, responses=error_responses(401, 403, 404, 409, 422, 429))
    app.include_router(realtime.router)  # authenticates inside the socket
    for router, statuses in _ROUTER_ERRORS:
        app.include_router(
            router,
            dependencies=[Depends(current_user)],
            responses=error_responses(*sorted((401, 422, 429, 503, *statuses))),
        )
    return app
