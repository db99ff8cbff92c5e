"""The FastAPI application: lifespan (model loading), error envelope, size limit, routers."""

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxgate import __version__, accounts
from voxgate.api.deps import current_user
from voxgate.api.routers import accounts as accounts_routes
from voxgate.api.routers import chat, conversations, health, models, openai, personas, realtime, web
from voxgate.config import Settings
from voxgate.errors import PayloadTooLarge, VoxgateError, internal_error
from voxgate.limits import Limits
from voxgate.pipeline import Pipeline
from voxgate.registry import Registry

log = logging.getLogger("voxgate")


def _error_response(status: int, type_: str, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "code": code, "message": message}}, status, headers=headers)


def _voxgate_error(_: Request, exc: VoxgateError) -> JSONResponse:
    return JSONResponse(exc.envelope(), exc.status, headers=exc.headers())


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}" for err in exc.errors()
    )
    return _error_response(422, "invalid_request_error", "invalid_schema", problems)


def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return _error_response(exc.status_code, "invalid_request_error", f"http_{exc.status_code}", str(exc.detail),
                           exc.headers)


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
        if unloader:
            unloader.cancel()
        await loading
        await asyncio.to_thread(app.state.pipeline.close)  # waits for model calls still running
        await app.state.db.close()

    app = FastAPI(
        title="voxgate",
        version=__version__,
        description="Self-hosted voice chat: speech or text in, speech or text out.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.models = Registry(settings)
    app.state.limits = Limits(settings)
    app.state.loading = True
    app.state.load_error = None
    app.add_exception_handler(VoxgateError, _voxgate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    # Room for the multipart envelope and form fields around a maximal upload.
    app.add_middleware(BodySizeLimit, upload_bytes=settings.max_upload_bytes + 64 * 1024,
                       json_bytes=settings.max_json_bytes)
    app.include_router(health.router)
    app.include_router(web.router)  # the page is public; it signs in through the API
    app.include_router(accounts_routes.router)  # each route says who may call it
    app.include_router(realtime.router)  # authenticates inside the socket
    for router in (chat.router, conversations.router, personas.router, openai.router, models.router):
        app.include_router(router, dependencies=[Depends(current_user)])
    return app
