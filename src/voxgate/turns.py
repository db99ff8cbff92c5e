"""A remembered turn: the persona and history come from the store, the pipeline answers,
and the user's message and the reply are committed together in one transaction.

Nothing is written before the reply exists, so a client that disconnects or a process
that dies mid-turn leaves no half turn; a turn whose response was sent is committed.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from voxgate.config import Settings
from voxgate.engines.base import ChatMessage
from voxgate.personas import PersonaSpec
from voxgate.pipeline import Pipeline, TurnInput, TurnResult
from voxgate.store import repo
from voxgate.store.db import Database
from voxgate.store.tables import Conversation, Message, User, new_id, utcnow

_AUDIO_EXTENSIONS = {"wav": "wav", "mp3": "mp3", "ogg": "ogg", "flac": "flac", "matroska,webm": "webm",
                     "mov,mp4,m4a,3gp,3g2,mj2": "m4a"}


@dataclass(frozen=True)
class StoredTurn:
    result: TurnResult
    conversation_id: str
    persona: str
    user_message_id: str
    reply_message_id: str


def audio_dir(settings: Settings) -> Path:
    return settings.data_dir / "audio"


async def run_turn(db: Database, pipeline: Pipeline, settings: Settings, user: User, turn: TurnInput, *,
                   conversation_id: str | None, persona_name: str | None) -> StoredTurn:
    async with db.session() as session:
        conversation = (await repo.get_conversation(session, user, conversation_id, messages=True)
                        if conversation_id else None)
        name = persona_name or (conversation and conversation.persona) or user.default_persona
        persona: PersonaSpec = await repo.get_persona(session, user, name)
        history = tuple(ChatMessage(m.role, m.text) for m in conversation.messages) if conversation else ()

    result = await pipeline.turn(replace(
        turn,
        history=history,
        system=turn.system or persona.system_prompt or None,
        language=turn.language or persona.language,
        temperature=turn.temperature if turn.temperature is not None else persona.temperature,
        max_tokens=turn.max_tokens or persona.max_tokens,
    ))

    async with db.session() as session, session.begin():
        if conversation is None:
            conversation = Conversation(id=new_id(), user_id=user.id, persona=persona_name,
                                        title=(result.transcript or turn.text or "")[:80].strip())
            session.add(conversation)
            seq = 1
        else:
            conversation = await session.merge(conversation, load=False)
            seq = await repo.next_seq(session, conversation.id)
        conversation.updated_at = utcnow()
        models = {"stt": pipeline.engines.stt.name if turn.audio else None, "llm": pipeline.engines.llm.name,
                  "tts": pipeline.engines.tts.name if result.speech else None}
        question = Message(id=new_id(), conversation_id=conversation.id, seq=seq, role="user",
                           text=result.transcript or turn.text, transcript=result.transcript,
                           language=result.language, persona=persona.name)
        answer = Message(id=new_id(), conversation_id=conversation.id, seq=seq + 1, role="assistant",
                         text=result.reply, language=result.language, persona=persona.name, models=models,
                         timings=result.timings)
        if settings.store_audio:
            question.audio_path = _save_audio(settings, conversation.id, question.id, turn.audio,
                                              _AUDIO_EXTENSIONS.get(result.input_container or "", "bin"))
            answer.audio_path = _save_audio(settings, conversation.id, answer.id, result.speech,
                                            turn.voice_format)
        session.add_all([question, answer])
    return StoredTurn(result, conversation.id, persona.name, question.id, answer.id)


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
