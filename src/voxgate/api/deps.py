"""FastAPI dependencies: the app's settings and pipeline, uploads, and the chat request."""

import json
from typing import Annotated

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from voxgate.api.schemas import ChatBody
from voxgate.config import Settings
from voxgate.errors import BadRequest, PayloadTooLarge, Unavailable, UnsupportedMediaType
from voxgate.pipeline import Pipeline, TurnInput


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_pipeline(request: Request) -> Pipeline:
    pipeline = request.app.state.pipeline
    if pipeline is None:
        error = request.app.state.load_error
        if error is not None:
            raise Unavailable(f"models failed to load: {error}", code="models_failed", retry_after=60)
        raise Unavailable("models are still loading; retry shortly", code="loading", retry_after=5)
    return pipeline


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


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


async def chat_input(request: Request, settings: SettingsDep) -> TurnInput:
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
                else:
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
    return TurnInput(audio=audio, **body.model_dump())


ChatInputDep = Annotated[TurnInput, Depends(chat_input)]
