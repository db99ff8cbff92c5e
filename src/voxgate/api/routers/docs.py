"""API docs that work offline: Swagger UI at /docs and ReDoc at /redoc, their scripts and
styles served by voxgate from the pinned fastapi-offline package instead of a CDN; and
the error responses every operation documents."""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from voxgate.api.schemas import ErrorOut

router = APIRouter(include_in_schema=False)

ASSETS_PATH = "/docs/assets"


def assets() -> StaticFiles:
    """swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png."""
    return StaticFiles(packages=[("fastapi_offline", "static")])


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=root + request.app.openapi_url,
        title="voxgate API",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        # The token entered under Authorize survives a reload; no spec validation on swagger.io.
        swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=root + request.app.openapi_url,
        title="voxgate API",
        redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


# What each error status means across the API, with a real envelope as its example.
_ERRORS = {
    400: (
        "Bad input: both or neither of text and audio, empty audio, no speech heard, a bad `reply_as` or "
        "`voice_format`, broken JSON.",
        "invalid_request_error",
        "text_or_audio",
        "send exactly one of `text` or `audio`",
    ),
    401: (
        "Missing, malformed, expired or unknown credentials (`Authorization: Bearer <API key or access token>`).",
        "authentication_error",
        "missing_token",
        "missing `Authorization: Bearer <access token or API key>`",
    ),
    403: (
        "Not allowed: an admin-only action, or the conversation quota is used up.",
        "permission_error",
        "forbidden",
        "managing models needs an admin account",
    ),
    404: (
        "Unknown id, or one that belongs to another user.",
        "invalid_request_error",
        "not_found",
        "conversation not found",
    ),
    409: (
        "Conflicts with what exists (a name taken, a default model in use).",
        "invalid_request_error",
        "conflict",
        "user 'ada' already exists",
    ),
    413: (
        "Too large: a JSON body over 1 MiB, an upload over 25 MiB, audio over 5 minutes or text over the limit.",
        "invalid_request_error",
        "too_large",
        "the upload is larger than the 26214400 byte limit",
    ),
    415: (
        "The bytes are not audio voxgate can read, or the content type is not JSON or multipart.",
        "invalid_request_error",
        "unsupported_audio",
        "the upload is not audio in a format voxgate reads",
    ),
    422: (
        "A field fails the schema; the message names it.",
        "invalid_request_error",
        "invalid_schema",
        "max_tokens: Input should be less than or equal to 4096",
    ),
    429: (
        "Over a rate limit (requests per API key, failed logins); `Retry-After` says when to retry.",
        "rate_limit_error",
        "rate_limited",
        "too many requests with this API key; retry in 42 s",
    ),
    502: (
        "A remote engine answered with an error or garbage.",
        "server_error",
        "backend_error",
        "the llm backend at http://gpu:8001/v1 answered 500",
    ),
    503: (
        "Not now: models still loading, a model's queue full (`busy`), a remote engine down, or the server "
        "shutting down; `Retry-After` says when to retry.",
        "server_error",
        "busy",
        "the language model is busy (12 requests in progress); retry shortly",
    ),
}


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` for these statuses: voxgate's error envelope with an example."""
    return {
        status: {
            "model": ErrorOut,
            "description": _ERRORS[status][0],
            "content": {
                "application/json": {
                    "example": {"error": dict(zip(("type", "code", "message"), _ERRORS[status][1:], strict=True))}
                }
            },
        }
        for status in statuses
    }
