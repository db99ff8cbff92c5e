"""FastAPI dependencies: the app's settings and pipeline, uploads, and the chat request."""

import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from voxgate import auth
from voxgate.api.schemas import ChatBody
from voxgate.config import Settings
from voxgate.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized, Unavailable, UnsupportedMediaType
from voxgate.pipeline import Pipeline
from voxgate.registry import Registry
from voxgate.store import repo
from voxgate.store.db import Database
from voxgate.store.tables import User
from voxgate.turns import TurnService


def get_settings(request: HTTPConnection) -> Settings:
    return request.app.state.settings


def get_pipeline(request: HTTPConnection) -> Pipeline:
    """The pipeline once the start-up load of the default models has finished. If that
    failed, requests go on: each loads what it needs and says what is missing."""
    if request.app.state.loading:
        raise Unavailable("models are still loading; retry shortly", code="loading", retry_after=5)
    return request.app.state.pipeline


def get_models(request: HTTPConnection) -> Registry:
    return request.app.state.models


def get_db(request: HTTPConnection) -> Database:
    return request.app.state.db


def get_turns(request: HTTPConnection) -> TurnService:
    return TurnService(get_pipeline(request), request.app.state.db, request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
ModelsDep = Annotated[Registry, Depends(get_models)]
DatabaseDep = Annotated[Database, Depends(get_db)]
TurnsDep = Annotated[TurnService, Depends(get_turns)]


async def authenticate(app, token: str) -> User:
    """The user a bearer token (JWT access token or API key) belongs to. Requests made with
    an API key are rate limited per key (429 + Retry-After)."""
    async with app.state.db.session() as session, session.begin():
        if token.startswith(auth.API_KEY_PREFIX):
            user = await repo.user_by_api_key(session, token)
            if user is None:
                raise Unauthorized("unknown or revoked API key", code="invalid_api_key")
            app.state.limits.api_key_request(auth.hash_api_key(token))
            return user
        user = await session.get(User, auth.user_id_from_token(token, app.state.jwt_secret))
    if user is None:
        raise Unauthorized("the token's user no longer exists", code="invalid_token")
    return user


# Declares the bearer scheme in OpenAPI, so /docs has an Authorize button; the header is
# read below, where a missing and a malformed one get their own 401.
_bearer = HTTPBearer(auto_error=False, description="An API key (`vg_...`) or an access token from POST /v1/auth/login.")


async def current_user(
    request: Request,
    settings: SettingsDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user behind `Authorization: Bearer <JWT or API key>` (the local admin when auth is off)."""
    if settings.auth == "off":
        return request.app.state.local_user
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing `Authorization: Bearer <access token or API key>`", code="missing_token")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "the Authorization header must be `Bearer <access token or API key>`", code="malformed_token"
        )
    return await authenticate(request.app, token)


UserDep = Annotated[User, Depends(current_user)]


async def admin_user(user: UserDep) -> User:
    if not user.is_admin:
        raise Forbidden("managing models needs an admin account")
    return user


async def read_upload(upload: UploadFile, settings: Settings) -> bytes:
    """The upload's bytes, refusing more than the configured limit while reading."""
    limit = settings.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the upload is larger than the {limit} byte limit", code="file_too_large")
    return data


def _validate(model: type[ChatBody], data: dict) -> ChatBody:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


@dataclass(frozen=True)
class ChatInput:
    body: ChatBody
    audio: bytes | None


async def chat_input(request: Request, settings: SettingsDep) -> ChatInput:
    """Parse `POST /v1/chat` from JSON, or from a multipart form with an `audio` file."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    audio = None
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=16) as form:
            fields: dict[str, str] = {}
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key != "audio":
                        raise BadRequest(f"unexpected file field {key!r}; send the recording as `audio`")
                    audio = await read_upload(value, settings)
                elif value != "":  # a field left empty: forms (and /docs) send every field
                    fields[key] = value
        body = _validate(ChatBody, fields)
    elif content_type in ("application/json", ""):
        try:
            data = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
        if not isinstance(data, dict):
            raise BadRequest("the JSON body must be an object", code="invalid_json")
        body = _validate(ChatBody, data)
    else:
        raise UnsupportedMediaType(
            f"unsupported content type {content_type!r}: send application/json, or multipart/form-data with an "
            "`audio` file"
        )
    return ChatInput(body=body, audio=audio)


ChatInputDep = Annotated[ChatInput, Depends(chat_input)]
