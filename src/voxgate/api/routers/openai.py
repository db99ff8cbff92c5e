"""OpenAI-compatible endpoints, so existing clients work with `base_url` pointed at voxgate."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import PlainTextResponse, StreamingResponse

from voxgate.api.deps import PipelineDep, SettingsDep, read_upload
from voxgate.api.schemas import ChatCompletionBody, SpeechBody
from voxgate.api.sse import sse
from voxgate.audio import MEDIA_TYPES, streaming_wav_header
from voxgate.catalog import Role
from voxgate.chunker import speakable
from voxgate.engines.base import ChatMessage, ChatResult
from voxgate.errors import BadRequest, NoSpeech, PayloadTooLarge
from voxgate.subtitles import to_srt, to_vtt
from voxgate.turns import fill_open

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
    heard = await pipeline.transcribe(
        decoded,
        language=language,
        prompt=prompt,
        temperature=temperature,
        model=pipeline.registry.known(Role.STT, model),
    )
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
            json.dumps(
                {
                    "task": "transcribe",
                    "language": heard.language,
                    "duration": heard.duration,
                    "text": heard.text,
                    "segments": segments,
                }
            ),
            media_type="application/json",
        )
    return Response(json.dumps({"text": heard.text}), media_type="application/json")


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}},
)
async def speech(body: SpeechBody, pipeline: PipelineDep, settings: SettingsDep) -> Response:
    """Speak `input` with `voice` if it is a voxgate voice id (GET /v1/voices), else with
    `model` if it is a TTS model, else with the default voice (so "alloy" and "tts-1" work).

    WAV and PCM stream sentence by sentence as they are synthesized, so playback of a long
    text starts after its first sentence; the compressed formats are encoded whole.
    """
    if not speakable(body.input):
        raise BadRequest("`input` is empty or has nothing to speak", code="empty_text")
    if len(body.input) > settings.max_text_chars:
        raise PayloadTooLarge(f"`input` is longer than {settings.max_text_chars} characters", code="text_too_long")
    voice = pipeline.registry.known(Role.TTS, body.voice) or pipeline.registry.known(Role.TTS, body.model)
    headers = {"X-Voxgate-Voice": voice or pipeline.registry.defaults[Role.TTS]}
    if body.response_format in ("wav", "pcm"):
        chunks = pipeline.stream_speech(body.input, speed=body.speed, voice=voice)
        first = await anext(chunks, None)  # errors (unknown voice, busy) are still plain JSON responses
        if first is None:
            raise BadRequest("`input` is empty or has nothing to speak", code="empty_text")

        async def stream() -> AsyncIterator[bytes]:
            if body.response_format == "wav":
                yield streaming_wav_header(first.sample_rate)
            yield first.pcm.astype("<i2").tobytes()
            async for chunk in chunks:
                yield chunk.pcm.astype("<i2").tobytes()

        return StreamingResponse(
            stream(),
            media_type=MEDIA_TYPES[body.response_format],
            headers={**headers, "X-Voxgate-Sample-Rate": str(first.sample_rate)},
        )
    pcm, rate = await pipeline.speak(body.input, speed=body.speed, voice=voice)
    data = await pipeline.encode(pcm, rate, body.response_format)
    return Response(
        data, media_type=MEDIA_TYPES[body.response_format], headers={**headers, "X-Voxgate-Sample-Rate": str(rate)}
    )


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionBody, pipeline: PipelineDep) -> Response:
    """Chat with `model` if it names a voxgate LLM or custom model, else with the default LLM."""
    messages = [
        ChatMessage("system" if m.role == "developer" else m.role, m.text()) for m in body.messages if m.role != "tool"
    ]
    custom = pipeline.registry.custom(body.model)
    given = {
        "system": messages[0].content if messages and messages[0].role == "system" else None,
        "temperature": body.temperature,
        "max_tokens": body.max_completion_tokens or body.max_tokens,
    }
    chosen = fill_open(given, custom.persona if custom else {})
    if chosen["system"] and not given["system"]:
        messages.insert(0, ChatMessage("system", chosen["system"]))
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    request = pipeline.chat_request(
        messages, max_tokens=chosen["max_tokens"], temperature=chosen["temperature"], top_p=body.top_p, stop=stop
    )
    model = custom.base if custom else pipeline.registry.known(Role.LLM, body.model)
    model_name = body.model if custom else model or pipeline.registry.defaults[Role.LLM]
    created = int(time.time())
    completion_id = _completion_id()
    if not body.stream:
        result = await pipeline.chat(request, model=model)
        return Response(
            json.dumps(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model_name,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": result.text},
                            "finish_reason": result.finish_reason,
                        }
                    ],
                    "usage": _usage(result),
                }
            ),
            media_type="application/json",
        )

    stream = pipeline.stream_chat(request, model=model)
    # Waited for before the response starts, so a prompt longer than the context is still a JSON 400.
    first = await anext(stream)

    def event(delta: dict, finish_reason: str | None = None, **extra) -> str:
        return sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
        )

    def chunk(item: str | ChatResult) -> str:
        if isinstance(item, ChatResult):
            return event({}, item.finish_reason, usage=_usage(item))
        return event({"content": item})

    async def events() -> AsyncIterator[str]:
        yield event({"role": "assistant", "content": ""})
        yield chunk(first)
        async for item in stream:
            yield chunk(item)
        yield sse("[DONE]")

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _usage(result: ChatResult) -> dict:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": result.cached_tokens},
    }
