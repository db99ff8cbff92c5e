"""`POST /v1/chat`: the voice chat endpoint (text or speech in, text or speech out)."""

from urllib.parse import quote

from fastapi import APIRouter, Response

from voxgate.api.deps import ChatInputDep, DatabaseDep, PipelineDep, SettingsDep, UserDep
from voxgate.api.schemas import ChatBody, ChatReply, Timings
from voxgate.audio import MEDIA_TYPES
from voxgate.pipeline import TurnInput
from voxgate.turns import run_turn

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
async def chat(chat_input: ChatInputDep, user: UserDep, pipeline: PipelineDep, db: DatabaseDep,
               settings: SettingsDep) -> ChatReply | Response:
    """One turn: transcribe the audio (if any), answer with the LLM in the context of the
    conversation, speak the answer if asked, and remember the turn."""
    body = chat_input.body
    turn_input = TurnInput(audio=chat_input.audio,
                           **body.model_dump(exclude={"conversation_id", "persona"}))
    stored = await run_turn(db, pipeline, settings, user, turn_input,
                            conversation_id=body.conversation_id, persona_name=body.persona)
    result = stored.result
    if result.speech is None:
        return ChatReply(transcript=result.transcript, reply=result.reply, language=result.language,
                         timings=Timings(**result.timings), conversation_id=stored.conversation_id,
                         persona=stored.persona, message_id=stored.reply_message_id)
    headers = {
        "X-Voxgate-Conversation": stored.conversation_id,
        "X-Voxgate-Persona": stored.persona,
        "X-Voxgate-Message": stored.reply_message_id,
        "X-Voxgate-Reply": quote(result.reply),
        "X-Voxgate-Language": result.language or "",
        "X-Voxgate-Sample-Rate": str(result.sample_rate),
        "Server-Timing": ", ".join(f"{stage};dur={ms}" for stage, ms in result.timings.items() if ms is not None),
    }
    if result.transcript is not None:
        headers["X-Voxgate-Transcript"] = quote(result.transcript)
    return Response(content=result.speech, media_type=MEDIA_TYPES[body.voice_format], headers=headers)
