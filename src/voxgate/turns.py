"""A remembered turn: the persona and history come from the store, the pipeline answers,
and the user's message and the reply are committed together in one transaction.

Nothing is written before the reply exists, so a client that disconnects or a process
that dies mid-turn leaves no half turn; a turn whose response was sent is committed.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from voxgate.audio import CONTAINER_EXTENSIONS
from voxgate.config import Settings
from voxgate.engines.base import ChatMessage
from voxgate.personas import PersonaSpec
from voxgate.pipeline import Pipeline, TurnInput, TurnResult
from voxgate.store import repo
from voxgate.store.db import Database
from voxgate.store.tables import Conversation, Message, User, new_id, utcnow

@dataclass(frozen=True)
class StoredTurn:
    result: TurnResult
    conversation_id: str
    persona: str
    user_message_id: str
    reply_message_id: str

    def summary(self) -> dict:
        """The turn's closing event for streaming clients."""
        result = self.result
        return {"reply": result.reply, "transcript": result.transcript, "language": result.language,
                "voice": result.voice, "models": result.models,
                "conversation_id": self.conversation_id, "message_id": self.reply_message_id,
                "persona": self.persona, "timings": result.timings}


def audio_dir(settings: Settings) -> Path:
    return settings.data_dir / "audio"


@dataclass(frozen=True)
class TurnContext:
    """What a turn needs from the store before the models run."""

    user: User
    conversation: Conversation | None  # None: the turn starts a new conversation
    persona: PersonaSpec
    persona_requested: str | None

    def apply(self, turn: TurnInput) -> TurnInput:
        """The turn with the conversation's history and the persona's prompt and settings."""
        persona = self.persona
        history = tuple(ChatMessage(m.role, m.text) for m in self.conversation.messages) if self.conversation else ()
        return replace(
            turn,
            history=history,
            system=turn.system or persona.system_prompt or None,
            voice=turn.voice or persona.voice,
            language=turn.language or persona.language,
            temperature=turn.temperature if turn.temperature is not None else persona.temperature,
            max_tokens=turn.max_tokens or persona.max_tokens,
        )


async def load_context(db: Database, user: User, *, conversation_id: str | None, persona_name: str | None
                       ) -> TurnContext:
    async with db.session() as session:
        conversation = (await repo.get_conversation(session, user, conversation_id, messages=True)
                        if conversation_id else None)
        name = persona_name or (conversation and conversation.persona) or user.default_persona
        persona = await repo.get_persona(session, user, name)
    return TurnContext(user, conversation, persona, persona_name)


async def commit_turn(db: Database, settings: Settings, context: TurnContext, turn: TurnInput, result: TurnResult
                      ) -> StoredTurn:
    """Store the user's message and the reply together, in one transaction."""
    async with db.session() as session, session.begin():
        conversation = context.conversation
        if conversation is None:
            conversation = Conversation(id=new_id(), user_id=context.user.id, persona=context.persona_requested,
                                        title=(result.transcript or turn.text or "")[:80].strip())
            session.add(conversation)
            seq = 1
        else:
            conversation = await session.merge(conversation, load=False)
            seq = await repo.next_seq(session, conversation.id)
        conversation.updated_at = utcnow()
        persona = context.persona.name
        question = Message(id=new_id(), conversation_id=conversation.id, seq=seq, role="user",
                           text=result.transcript or turn.text, transcript=result.transcript,
                           language=result.language, persona=persona)
        answer = Message(id=new_id(), conversation_id=conversation.id, seq=seq + 1, role="assistant",
                         text=result.reply, language=result.language, persona=persona, models=result.models,
                         timings=result.timings)
        if settings.store_audio:
            question.audio_path = _save_audio(settings, conversation.id, question.id, turn.audio,
                                              CONTAINER_EXTENSIONS.get(result.input_container or "", "bin"))
            answer.audio_path = _save_audio(settings, conversation.id, answer.id, result.speech,
                                            result.speech_format or "bin")
        session.add_all([question, answer])
    return StoredTurn(result, conversation.id, persona, question.id, answer.id)


async def run_turn(db: Database, pipeline: Pipeline, settings: Settings, user: User, turn: TurnInput, *,
                   conversation_id: str | None, persona_name: str | None) -> StoredTurn:
    """A buffered turn, remembered."""
    context = await load_context(db, user, conversation_id=conversation_id, persona_name=persona_name)
    result = await pipeline.turn(context.apply(turn))
    return await commit_turn(db, settings, context, turn, result)


def _save_audio(settings: Settings, conversation_id: str, message_id: str, data: bytes | None, ext: str
                ) -> str | None:
    """Write before the commit: a crash in between leaves an unreferenced file, never a
    stored message pointing at audio that does not exist."""
    if not data:
        return None
    folder = audio_dir(settings) / conversation_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{message_id}.{ext}"
    path.write_bytes(data)
    return str(path.relative_to(audio_dir(settings)))
