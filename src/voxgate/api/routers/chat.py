"""`POST /v1/chat`: the voice chat endpoint (text or speech in, text or speech out)."""

import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from voxgate.api.deps import ChatInputDep, TurnsDep, UserDep
from voxgate.api.schemas import ChatBody, ChatReply, Timings
from voxgate.api.sse import sse
from voxgate.audio import MEDIA_TYPES
from voxgate.errors import VoxgateError, internal_error
from voxgate.turn_events import TurnInput
from voxgate.turns import PreparedTurn, wire_event

log = logging.getLogger("voxgate")

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
                        "audio": {
                            "type": "string",
                            "format": "binary",
                            "description": "WAV, MP3, OGG/Opus, WebM/Opus, FLAC or M4A recording",
                        },
                        # Swagger UI fills optional fields with junk unless their example is empty.
                        **{
                            name: field
                            if "default" in field and field["default"] is not None
                            else {**field, "examples": [""]}
                            for name, field in ChatBody.model_json_schema()["properties"].items()
                        },
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
    responses={
        200: {
            "content": {media: {} for media in MEDIA_TYPES.values()},
            "description": "JSON for reply_as=text; the audio itself for reply_as=voice.",
        }
    },
)
async def chat(chat_input: ChatInputDep, user: UserDep, turns: TurnsDep) -> ChatReply | Response:
    """One turn: transcribe the audio (if any), answer with the LLM in the context of the
    conversation, speak the answer if asked, and remember the turn."""
    body = chat_input.body
    turn = await turns.prepare(
        user,
        TurnInput(audio=chat_input.audio, **body.model_dump(exclude={"conversation_id", "persona", "stream"})),
        conversation_id=body.conversation_id,
        persona=body.persona,
    )
    if body.stream:
        return await _stream(turn, body.voice_format)
    stored = await turn.answer()
    result = stored.result
    if result.speech is None:
        return ChatReply(
            transcript=result.transcript,
            reply=result.reply,
            language=result.language,
            voice=result.voice,
            models=result.models,
            timings=Timings(**result.timings),
            usage=result.usage,
            conversation_id=stored.conversation_id,
            persona=stored.persona,
            message_id=stored.reply_message_id,
        )
    headers = {
        "X-Voxgate-Conversation": stored.conversation_id,
        "X-Voxgate-Persona": stored.persona,
        "X-Voxgate-Message": stored.reply_message_id,
        "X-Voxgate-Reply": quote(result.reply),
        "X-Voxgate-Language": result.language or "",
        "X-Voxgate-Voice": result.voice or "",
        "X-Voxgate-Sample-Rate": str(result.sample_rate),
        "Server-Timing": ", ".join(f"{stage};dur={ms}" for stage, ms in result.timings.items() if ms is not None),
    }
    if result.transcript is not None:
        headers["X-Voxgate-Transcript"] = quote(result.transcript)
    return Response(content=result.speech, media_type=MEDIA_TYPES[body.voice_format], headers=headers)


async def _stream(turn: PreparedTurn, voice_format: str) -> StreamingResponse:
    """The turn as server-sent events: transcript, text deltas, audio per clause, done."""
    events = turn.stream()
    # The first event comes before the response starts, so a bad upload, silence or a
    # busy model is still a plain JSON error with its own status code.
    first = await anext(events)

    def message(event) -> str:
        name, data = wire_event(event, voice_format)
        return sse(data, name)

    async def wire() -> AsyncIterator[str]:
        try:
            yield message(first)
            async for event in events:
                yield message(event)
        except VoxgateError as exc:
            yield sse(exc.envelope(), "error")
        except Exception:
            log.exception("streamed turn failed")
            yield sse(internal_error().envelope(), "error")
        finally:
            await events.aclose()  # a client that left stops the LLM and TTS at once

    return StreamingResponse(
        wire(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
