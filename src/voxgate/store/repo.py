"""Data access: every query voxgate runs. Objects owned by a user are always looked up
together with the owner, so another user's id behaves exactly like a missing one (404).
"""

from dataclasses import asdict
from typing import cast

from sqlalchemy import CursorResult, Delete, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from voxgate import auth
from voxgate.errors import Conflict, Forbidden, NotFound
from voxgate.personas import BUILTIN, PersonaSpec
from voxgate.store.tables import ApiKey, Conversation, Message, Persona, User, utcnow

# Users and keys


async def create_user(session: AsyncSession, username: str, password: str, *, is_admin: bool = False) -> User:
    user = User(username=username, password_hash=await auth.hash_password(password), is_admin=is_admin)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"the username {username!r} is taken", code="username_taken") from None
    return user


async def _delete(session: AsyncSession, statement: Delete) -> int:
    """Run a DELETE; how many rows it removed (a DELETE's result is a CursorResult)."""
    return cast(CursorResult, await session.execute(statement)).rowcount


async def user_by_name(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


async def count_users(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(User)) or 0


async def create_api_key(session: AsyncSession, user: User, name: str) -> tuple[ApiKey, str]:
    """A new key for `user`; the plain key is returned once and only its hash is stored."""
    key = auth.new_api_key()
    row = ApiKey(user_id=user.id, name=name, prefix=key[:10], key_hash=auth.hash_api_key(key))
    session.add(row)
    await session.flush()
    return row, key


async def user_by_api_key(session: AsyncSession, key: str) -> User | None:
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == auth.hash_api_key(key)))
    if row is None:
        return None
    row.last_used_at = utcnow()
    return await session.get(User, row.user_id)


async def list_api_keys(session: AsyncSession, user: User) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at)))


async def delete_api_key(session: AsyncSession, user: User, key_id: str) -> None:
    if not await _delete(session, delete(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user.id)):
        raise NotFound(f"no API key {key_id!r}")


# Personas


def _spec(row: Persona) -> PersonaSpec:
    return PersonaSpec(row.name, row.system_prompt, row.voice, row.language, row.temperature, row.max_tokens)


async def list_personas(session: AsyncSession, user: User) -> list[PersonaSpec]:
    rows = await session.scalars(select(Persona).where(Persona.user_id == user.id).order_by(Persona.name))
    return [*BUILTIN.values(), *(_spec(row) for row in rows)]


async def _own_persona(session: AsyncSession, user: User, name: str) -> Persona | None:
    return await session.scalar(select(Persona).where(Persona.user_id == user.id, Persona.name == name))


async def get_persona(session: AsyncSession, user: User, name: str) -> PersonaSpec:
    if name in BUILTIN:
        return BUILTIN[name]
    row = await _own_persona(session, user, name)
    if row is None:
        raise NotFound(f"no persona {name!r}")
    return _spec(row)


async def create_persona(session: AsyncSession, user: User, spec: PersonaSpec) -> PersonaSpec:
    if spec.name in BUILTIN or await _own_persona(session, user, spec.name):
        raise Conflict(f"a persona named {spec.name!r} exists already", code="persona_exists")
    fields = asdict(spec)
    del fields["builtin"]
    session.add(Persona(user_id=user.id, **fields))
    await session.flush()
    return spec


async def update_persona(session: AsyncSession, user: User, name: str, changes: dict) -> PersonaSpec:
    if name in BUILTIN:
        raise Conflict(f"{name!r} is built in and cannot be changed; create your own persona", code="builtin_persona")
    row = await _own_persona(session, user, name)
    if row is None:
        raise NotFound(f"no persona {name!r}")
    for field, value in changes.items():
        setattr(row, field, value)
    await session.flush()
    return _spec(row)


async def delete_persona(session: AsyncSession, user: User, name: str) -> None:
    if name in BUILTIN:
        raise Conflict(f"{name!r} is built in and cannot be deleted", code="builtin_persona")
    if not await _delete(session, delete(Persona).where(Persona.user_id == user.id, Persona.name == name)):
        raise NotFound(f"no persona {name!r}")


# Conversations


async def get_conversation(
    session: AsyncSession, user: User, conversation_id: str, *, messages: bool = False
) -> Conversation:
    query = select(Conversation).where(Conversation.id == conversation_id, Conversation.user_id == user.id)
    if messages:
        query = query.options(selectinload(Conversation.messages))
    conversation = await session.scalar(query)
    if conversation is None:
        raise NotFound(f"no conversation {conversation_id!r}")
    return conversation


async def check_conversation_quota(session: AsyncSession, user: User, limit: int) -> None:
    """Refuse to start a conversation when `user` already has `limit` (0: no quota). Creations
    running at the same moment may each pass, so the quota can be passed by those few."""
    if (
        limit
        and (
            await session.scalar(select(func.count()).select_from(Conversation).where(Conversation.user_id == user.id))
            or 0
        )
        >= limit
    ):
        raise Forbidden(
            f"you have reached the limit of {limit} conversations per user; delete some to start new ones",
            code="conversation_quota",
        )


async def list_conversations(
    session: AsyncSession, user: User, *, limit: int, offset: int, search: str | None = None
) -> list[Conversation]:
    query = select(Conversation).where(Conversation.user_id == user.id)
    if search:  # in the title, any case; autoescape: a % or _ in the search is meant literally
        query = query.where(Conversation.title.icontains(search, autoescape=True))
    query = query.order_by(Conversation.updated_at.desc(), Conversation.id).limit(limit).offset(offset)
    return list(await session.scalars(query))


async def delete_conversation(session: AsyncSession, user: User, conversation_id: str) -> Conversation:
    conversation = await get_conversation(session, user, conversation_id, messages=True)
    await session.delete(conversation)
    return conversation


async def get_message(session: AsyncSession, user: User, conversation_id: str, message_id: str) -> Message:
    await get_conversation(session, user, conversation_id)
    message = await session.scalar(
        select(Message).where(Message.id == message_id, Message.conversation_id == conversation_id)
    )
    if message is None:
        raise NotFound(f"no message {message_id!r}")
    return message


async def next_seq(session: AsyncSession, conversation_id: str) -> int:
    last = await session.scalar(select(func.max(Message.seq)).where(Message.conversation_id == conversation_id))
    return (last or 0) + 1
