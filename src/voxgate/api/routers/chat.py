"""`POST /v1/chat`: the voice chat endpoint (text or speech in, text or speech out)."""

from urllib.parse import quote

from fastapi import APIRouter, Response

from voxgate.api.deps import ChatInputDep, PipelineDep
from voxgate.api.schemas import ChatBody, ChatReply, Timings
from voxgate.audio import MEDIA_TYPES

router = APIRouter(tags=["chat"])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": ChatBody.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "audio": {"type": "string", "format": "binary",
                                  "description": "WAV, MP3, OGG/Opus, WebM/Opus, FLAC or M4A recording"},
                        **ChatBody.model_json_schema()["properties"],
                    },
                }
            },
        },
    }
}


@router.post(
    "/v1/chat",
    response_model=ChatReply,
    openapi_extra=_BODY_DOC,
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()},
                     "description": "JSON for reply_as=text; the audio itself for reply_as=voice."}},
)
async def chat(turn_input: ChatInputDep, pipeline: PipelineDep) -> ChatReply | Response:
    """One turn: transcribe the audio (if any), answer with the LLM, speak the answer if asked."""
    result = await pipeline.turn(turn_input)
    if result.speech is None:
        return ChatReply(transcript=result.transcript, reply=result.reply, language=result.language,
                         timings=Timings(**result.timings))
    headers = {
        "X-Voxgate-Reply": quote(result.reply),
        "X-Voxgate-Language": result.language or "",
        "X-Voxgate-Sample-Rate": str(result.sample_rate),
        "Server-Timing": ", ".join(f"{stage};dur={ms}" for stage, ms in result.timings.items() if ms is not None),
    }
    if result.transcript is not None:
        headers["X-Voxgate-Transcript"] = quote(result.transcript)
    return Response(content=result.speech, media_type=MEDIA_TYPES[turn_input.voice_format], headers=headers)
