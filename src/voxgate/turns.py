"""Where a remembered turn happens: `POST /v1/chat` (buffered and SSE) and the realtime
socket all go through `TurnService`.

A turn is prepared (what answers it, with the conversation's history), answered by the
pipeline, and committed: the user's message and the reply in one transaction. Nothing is
written before the reply exists, so a client that disconnects or a process that dies
mid-turn leaves no half turn; a turn whose response was sent is committed.

Who decides what: a field the request sets wins; then a custom model's persona; then the
conversation's (or the user's default) persona; then the settings.
"""

from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from pathlib import Path

from voxgate import metrics
from voxgate.audio import CONTAINER_EXTENSIONS
from voxgate.config import Settings
from voxgate.engines.base import ChatMessage
from voxgate.pipeline import Pipeline
from voxgate.store import repo
from voxgate.store.db import Database
from voxgate.store.tables import Conversation, Message, User, new_id, utcnow
from voxgate.turn_events import ClauseAudio, Heard, TextDelta, TurnDone, TurnEvent, TurnInput, TurnResult

# What a persona (or a custom model made from one) may set for a turn; names as in TurnInput.
PERSONA_FIELDS = ("system", "voice", "language", "temperature", "max_tokens")


def fill_open(values: dict, *layers: dict) -> dict:
    """Each value left open (None or empty) takes it from the first layer that has one."""
    filled = dict(values)
    for key, value in filled.items():
        if value is None or value == "":
            filled[key] = next((layer[key] for layer in layers if layer.get(key) not in (None, "")), value)
    return filled


@dataclass(frozen=True)
class StoredTurn:
    """A committed turn: the last event of a streamed turn."""

    result: TurnResult
    conversation_id: str
    persona: str
    user_message_id: str
    reply_message_id: str

    def summary(self) -> dict:
        result = self.result
        return {
            "reply": result.reply,
            "transcript": result.transcript,
            "language": result.language,
            "voice": result.voice,
            "models": result.models,
            "conversation_id": self.conversation_id,
            "message_id": self.reply_message_id,
            "persona": self.persona,
            "timings": result.timings,
            "usage": result.usage,
        }


def wire_event(event: TurnEvent | StoredTurn, voice_format: str) -> tuple[str, dict]:
    """An event's name and JSON body, the same for SSE and the realtime socket."""
    match event:
        case Heard(text, language):
            return "transcript", {"text": text, "language": language}
        case TextDelta(text):
            return "text", {"delta": text}
        case ClauseAudio():
            return "audio", event.to_json(voice_format)
        case StoredTurn():
            return "done", event.summary()
    raise TypeError(f"no wire form for {type(event).__name__}")


def audio_dir(settings: Settings) -> Path:
    return settings.data_dir / "audio"


@dataclass(frozen=True)
class PreparedTurn:
    """A turn ready to answer: the request with every open field filled, and the
    conversation it continues (None: it starts one)."""

    service: "TurnService"
    user: User
    request: TurnInput
    conversation: Conversation | None
    persona: str
    persona_requested: str | None  # stored on a new conversation, so it keeps its persona

    def events(self) -> AsyncGenerator[TurnEvent, None]:
        """The answer as it is made, ending with TurnDone; nothing is stored."""
        return self.service.pipeline.stream_turn(self.request)

    async def stream(self) -> AsyncGenerator[TurnEvent | StoredTurn, None]:
        """The answer as it is made, committed at its end: the last event is the StoredTurn.
        Leaving early stops the models and stores nothing."""
        events = self.events()
        try:
            async for event in events:
                yield await self.commit(event.result) if isinstance(event, TurnDone) else event
        finally:
            await events.aclose()

    async def answer(self) -> StoredTurn:
        """The whole answer at once (and its audio if asked), committed."""
        return await self.commit(await self.service.pipeline.turn(self.request))

    async def commit(self, result: TurnResult) -> StoredTurn:
        """Store the user's message and the reply together, in one transaction."""
        settings, request = self.service.settings, self.request
        async with self.service.db.session() as session, session.begin():
            conversation = self.conversation
            if conversation is None:
                conversation = Conversation(
                    id=new_id(),
                    user_id=self.user.id,
                    persona=self.persona_requested,
                    title=(result.transcript or request.text or "")[:80].strip(),
                )
                session.add(conversation)
                seq = 1
            else:
                conversation = await session.merge(conversation, load=False)
                seq = await repo.next_seq(session, conversation.id)
            conversation.updated_at = utcnow()
            question = Message(
                id=new_id(),
                conversation_id=conversation.id,
                seq=seq,
                role="user",
                text=result.transcript or request.text,
                transcript=result.transcript,
                language=result.language,
                persona=self.persona,
            )
            answer = Message(
                id=new_id(),
                conversation_id=conversation.id,
                seq=seq + 1,
                role="assistant",
                text=result.reply,
                language=result.language,
                persona=self.persona,
                models=result.models,
                voice=result.voice,
                timings=result.timings,
            )
            if settings.store_audio:
                question.audio_path = _save_audio(
                    settings,
                    conversation.id,
                    question.id,
                    request.audio,
                    CONTAINER_EXTENSIONS.get(result.input_container or "", "bin"),
                )
                answer.audio_path = _save_audio(
                    settings, conversation.id, answer.id, result.speech, result.speech_format or "bin"
                )
            session.add_all([question, answer])
        metrics.observe_turn(result.timings)
        return StoredTurn(result, conversation.id, self.persona, question.id, answer.id)


class TurnService:
    def __init__(self, pipeline: Pipeline, db: Database, settings: Settings):
        self.pipeline, self.db, self.settings = pipeline, db, settings

    async def prepare(
        self, user: User, request: TurnInput, *, conversation_id: str | None = None, persona: str | None = None
    ) -> PreparedTurn:
        """Resolve who answers and how, and load the conversation's history."""
        async with self.db.session() as session:
            if conversation_id:
                conversation = await repo.get_conversation(session, user, conversation_id, messages=True)
            else:  # refused before any model runs
                await repo.check_conversation_quota(session, user, self.settings.max_conversations)
                conversation = None
            spec = await repo.get_persona(
                session, user, persona or (conversation and conversation.persona) or user.default_persona
            )
        custom = self.pipeline.registry.custom(request.model)
        filled = fill_open(
            {key: getattr(request, key) for key in PERSONA_FIELDS}, custom.persona if custom else {}, spec.as_fields()
        )
        history = tuple(ChatMessage(m.role, m.text) for m in conversation.messages) if conversation else ()
        request = replace(request, **filled, model=custom.base if custom else request.model, history=history)
        return PreparedTurn(self, user, request, conversation, spec.name, persona)

    async def trim_reply(self, user: User, conversation_id: str, message_id: str, text: str) -> None:
        """Cut a stored reply to what the user heard (the client said where playback stopped)."""
        async with self.db.session() as session, session.begin():
            message = await repo.get_message(session, user, conversation_id, message_id)
            message.text = text


def _save_audio(settings: Settings, conversation_id: str, message_id: str, data: bytes | None, ext: str) -> str | None:
    """Write before the commit: a crash in between leaves an unreferenced file, never a
    stored message pointing at audio that does not exist."""
    if not data:
        return None
    folder = audio_dir(settings) / conversation_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{message_id}.{ext}"
    path.write_bytes(data)
    return str(path.relative_to(audio_dir(settings)))
