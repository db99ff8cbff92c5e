"""Conversations and their stored turns; a user only ever sees their own."""

import shutil
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import FileResponse

from voxgate.api.deps import DatabaseDep, SettingsDep, UserDep
from voxgate.api.schemas import ConversationDetail, ConversationIn, ConversationOut, ConversationPage, PlainText
from voxgate.audio import EXTENSION_MEDIA_TYPES
from voxgate.errors import NotFound
from voxgate.store import repo
from voxgate.store.tables import Conversation
from voxgate.turns import audio_dir

router = APIRouter(tags=["conversations"])


@router.get("/v1/conversations")
async def list_conversations(
    user: UserDep,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    q: Annotated[PlainText | None, Query(max_length=200, description="Only titles containing this (any case).")] = None,
) -> ConversationPage:
    """The user's conversations, most recently active first."""
    async with db.session() as session:
        rows = await repo.list_conversations(session, user, limit=limit, offset=offset, search=q)
    return ConversationPage(data=[ConversationOut.model_validate(r) for r in rows], limit=limit, offset=offset)


@router.post("/v1/conversations", status_code=status.HTTP_201_CREATED)
async def create_conversation(
    body: ConversationIn, user: UserDep, db: DatabaseDep, settings: SettingsDep
) -> ConversationOut:
    async with db.session() as session, session.begin():
        await repo.check_conversation_quota(session, user, settings.max_conversations)
        if body.persona:
            await repo.get_persona(session, user, body.persona)
        conversation = Conversation(user_id=user.id, title=body.title, persona=body.persona)
        session.add(conversation)
    return ConversationOut.model_validate(conversation)


@router.get("/v1/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, user: UserDep, db: DatabaseDep) -> ConversationDetail:
    async with db.session() as session:
        return ConversationDetail.model_validate(
            await repo.get_conversation(session, user, conversation_id, messages=True)
        )


@router.patch("/v1/conversations/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: ConversationIn, user: UserDep, db: DatabaseDep
) -> ConversationOut:
    changes = body.model_dump(exclude_unset=True)
    async with db.session() as session, session.begin():
        conversation = await repo.get_conversation(session, user, conversation_id)
        if changes.get("persona"):
            await repo.get_persona(session, user, changes["persona"])
        for field, value in changes.items():
            setattr(conversation, field, value)
    return ConversationOut.model_validate(conversation)


@router.delete("/v1/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(conversation_id: str, user: UserDep, db: DatabaseDep, settings: SettingsDep) -> None:
    async with db.session() as session, session.begin():
        await repo.delete_conversation(session, user, conversation_id)
    shutil.rmtree(audio_dir(settings) / conversation_id, ignore_errors=True)


@router.get("/v1/conversations/{conversation_id}/messages/{message_id}/audio", response_class=FileResponse)
async def message_audio(
    conversation_id: str, message_id: str, user: UserDep, db: DatabaseDep, settings: SettingsDep
) -> FileResponse:
    """The user's recording or the spoken reply of a message, when audio storage is on."""
    async with db.session() as session:
        message = await repo.get_message(session, user, conversation_id, message_id)
    path = audio_dir(settings) / message.audio_path if message.audio_path else None
    if path is None or not path.is_file():
        raise NotFound("this message has no stored audio")
    return FileResponse(path, media_type=EXTENSION_MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream"))
