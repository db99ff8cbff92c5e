"""Request and response bodies of the HTTP API."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxgate.audio import VOICE_FORMATS, VoiceFormat
from voxgate.errors import BadRequest

REPLY_AS = ("text", "voice")


class ChatBody(BaseModel):
    """`POST /v1/chat`: as JSON, or as multipart form fields beside an `audio` file."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="The prompt as text. Send this or an `audio` file, not both.")
    reply_as: Literal["text", "voice"] = Field("text", description="`text` for JSON, `voice` for an audio body.")
    voice_format: VoiceFormat = Field("wav", description="Audio format of a voice reply.")
    system: str | None = Field(None, max_length=8000, description="System prompt replacing the default one.")
    max_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$", description="Spoken language, if known (ISO 639-1).")

    # A wrong choice here is a user mistake worth a plain 400 naming the choices, rather
    # than a 422 schema dump; BadRequest is not a ValueError, so pydantic lets it through.
    @field_validator("reply_as", mode="before")
    @classmethod
    def _reply_as(cls, value: Any) -> Any:
        if value not in REPLY_AS:
            raise BadRequest(f"reply_as must be one of {', '.join(REPLY_AS)}; got {value!r}", code="bad_reply_as")
        return value

    @field_validator("voice_format", mode="before")
    @classmethod
    def _voice_format(cls, value: Any) -> Any:
        if value not in VOICE_FORMATS:
            raise BadRequest(
                f"voice_format must be one of {', '.join(VOICE_FORMATS)}; got {value!r}", code="bad_voice_format"
            )
        return value


class Timings(BaseModel):
    """Milliseconds per stage; null for a stage the turn did not need."""

    decode: float | None
    stt: float | None
    llm: float | None
    tts: float | None


class ChatReply(BaseModel):
    transcript: str | None = Field(description="What the user said; null for text input.")
    reply: str
    language: str | None
    timings: Timings


class SpeechBody(BaseModel):
    """OpenAI-compatible `POST /v1/audio/speech`."""

    model: str = "tts-1"
    input: str = Field(min_length=1)
    voice: str = "default"
    response_format: VoiceFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)


class ChatCompletionMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text; content parts other than text are not supported and ignored."""
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionBody(BaseModel):
    """OpenAI-compatible `POST /v1/chat/completions` (text only)."""

    model_config = ConfigDict(extra="allow")

    model: str = "default"
    messages: list[ChatCompletionMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
