"""OpenAI-compatible endpoints, so existing clients work with `base_url` pointed at voxgate."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse

from voxgate import models
from voxgate.api.deps import PipelineDep, SettingsDep, read_upload
from voxgate.api.schemas import ChatCompletionBody, SpeechBody
from voxgate.api.sse import sse
from voxgate.audio import MEDIA_TYPES, streaming_wav_header
from voxgate.catalog import CATALOG
from voxgate.engines.base import ChatMessage, ChatResult
from voxgate.errors import BadRequest, NoSpeech, PayloadTooLarge
from voxgate.subtitles import to_srt, to_vtt

router = APIRouter(tags=["openai"])


@router.post("/v1/audio/transcriptions")
async def transcriptions(
    pipeline: PipelineDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="Audio in any accepted format")],
    model: Annotated[str, Form()] = "whisper-1",
    language: Annotated[str | None, Form(pattern=r"^[a-z]{2,3}$")] = None,
    prompt: Annotated[str | None, Form(max_length=2000)] = None,
    response_format: Annotated[Literal["json", "text", "verbose_json", "srt", "vtt"], Form()] = "json",
    temperature: Annotated[float, Form(ge=0.0, le=1.0)] = 0.0,
) -> Response:
    decoded = await pipeline.decode(await read_upload(file, settings))
    heard = await pipeline.transcribe(decoded, language=language, prompt=prompt, temperature=temperature)
    if not heard.text:
        raise NoSpeech("no speech was detected in the audio")
    if response_format == "text":
        return PlainTextResponse(heard.text)
    if response_format == "srt":
        return PlainTextResponse(to_srt(heard.segments))
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(heard.segments), media_type="text/vtt")
    if response_format == "verbose_json":
        segments = [{"id": i, "start": s.start, "end": s.end, "text": s.text} for i, s in enumerate(heard.segments)]
        return Response(
            json.dumps({"task": "transcribe", "language": heard.language, "duration": heard.duration,
                        "text": heard.text, "segments": segments}),
            media_type="application/json",
        )
    return Response(json.dumps({"text": heard.text}), media_type="application/json")


@router.post("/v1/audio/speech", response_class=Response,
             responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}})
async def speech(body: SpeechBody, pipeline: PipelineDep, settings: SettingsDep) -> Response:
    """Speak `input` with the loaded voice (the `voice` name is accepted and ignored).

    WAV and PCM stream sentence by sentence as they are synthesized, so playback of a long
    text starts after its first sentence; the compressed formats are encoded whole.
    """
    if not body.input.strip():
        raise BadRequest("`input` is empty", code="empty_text")
    if len(body.input) > settings.max_text_chars:
        raise PayloadTooLarge(f"`input` is longer than {settings.max_text_chars} characters", code="text_too_long")
    if body.response_format in ("wav", "pcm"):
        rate = pipeline.engines.tts.sample_rate
        chunks = pipeline.stream_speech(body.input, speed=body.speed)

        async def stream() -> AsyncIterator[bytes]:
            if body.response_format == "wav":
                yield streaming_wav_header(rate)
            async for chunk in chunks:
                yield chunk.pcm.astype("<i2").tobytes()

        return StreamingResponse(stream(), media_type=MEDIA_TYPES[body.response_format],
                                 headers={"X-Voxgate-Sample-Rate": str(rate)})
    pcm, rate = await pipeline.speak(body.input, speed=body.speed)
    data = await pipeline.encode(pcm, rate, body.response_format)
    return Response(data, media_type=MEDIA_TYPES[body.response_format], headers={"X-Voxgate-Sample-Rate": str(rate)})


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionBody, pipeline: PipelineDep) -> Response:
    messages = [
        ChatMessage("system" if m.role == "developer" else m.role, m.text())
        for m in body.messages
        if m.role != "tool"
    ]
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    request = pipeline.chat_request(messages, max_tokens=body.max_completion_tokens or body.max_tokens,
                                    temperature=body.temperature, top_p=body.top_p, stop=stop)
    model_name = pipeline.engines.llm.name
    created = int(time.time())
    completion_id = _completion_id()
    if not body.stream:
        result = await pipeline.chat(request)
        return Response(json.dumps({
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                         "finish_reason": result.finish_reason}],
            "usage": _usage(result),
        }), media_type="application/json")

    stream = pipeline.stream_chat(request)

    def event(delta: dict, finish_reason: str | None = None, **extra) -> str:
        return sse({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra})

    async def events() -> AsyncIterator[str]:
        yield event({"role": "assistant", "content": ""})
        async for item in stream:
            if isinstance(item, ChatResult):
                yield event({}, item.finish_reason, usage=_usage(item))
            else:
                yield event({"content": item})
        yield sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _usage(result: ChatResult) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": result.cached_tokens}}


@router.get("/v1/models")
async def list_models(settings: SettingsDep) -> dict:
    """Every catalog model with its role, size, license and whether it is prepared and in use."""
    in_use = {settings.stt_model, settings.llm_model, settings.tts_model}
    return {
        "object": "list",
        "data": [
            {
                "id": m.name,
                "object": "model",
                "created": 0,
                "owned_by": "voxgate",
                "role": m.role.value,
                "description": m.description,
                "license": m.license,
                "size_bytes": m.size_bytes,
                "ready": models.is_prepared(settings.models_dir, m.name),
                "in_use": m.name in in_use,
            }
            for m in CATALOG.values()
        ],
    }
