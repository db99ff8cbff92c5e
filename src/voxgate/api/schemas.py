"""Request and response bodies of the HTTP API."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from voxgate.audio import VOICE_FORMATS, VoiceFormat
from voxgate.catalog import Role
from voxgate.errors import BadRequest

REPLY_AS = ("text", "voice")


def plain_text(text: str) -> str:
    """Refuse what is not text and some engines and databases cannot take (llama.cpp's JSON
    parser, PostgreSQL): NUL, and a lone surrogate (half of a UTF-16 pair)."""
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise ValueError("contains a lone surrogate, which is not valid Unicode text")
    return text


PlainText = Annotated[str, AfterValidator(plain_text)]


class ChatBody(BaseModel):
    """`POST /v1/chat`: as JSON, or as multipart form fields beside an `audio` file."""

    # Examples of the whole body, not of fields: a field example would pre-fill the upload
    # form in /docs too, and `text` beside a file is refused.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "What is the capital of France?"},
                {"text": "Tell me a fun fact.", "reply_as": "voice", "voice_format": "mp3"},
                {"text": "And its population?", "conversation_id": "5f0c6a1e2b3d4c5e8f9a0b1c2d3e4f50", "stream": True},
            ]
        },
    )

    text: PlainText | None = Field(None, description="The prompt as text. Send this or an `audio` file, not both.")
    reply_as: Literal["text", "voice"] = Field("text", description="`text` for JSON, `voice` for an audio body.")
    voice_format: VoiceFormat = Field("wav", description="Audio format of a voice reply.")
    system: PlainText | None = Field(None, max_length=8000, description="System prompt replacing the default one.")
    max_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    language: str | None = Field(
        None,
        pattern=r"^[a-z]{2,3}$",
        description="Language heard and answered (ISO 639-1); omit to let multilingual Whisper detect it.",
    )
    model: str | None = Field(None, max_length=64, description="LLM or custom model (default: the LLM default).")
    voice: str | None = Field(
        None,
        max_length=100,
        description="Voice id from GET /v1/voices (default: one that speaks the reply's language).",
    )
    conversation_id: str | None = Field(
        None, max_length=64, description="Continue this conversation; omit to start one."
    )
    persona: str | None = Field(None, max_length=64, description="Persona for this turn (default: the conversation's).")
    stream: bool = Field(False, description="Answer as server-sent events: transcript, text, audio, done.")

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transcript": "What is the capital of France?",
                    "reply": "The capital of France is Paris.",
                    "language": "en",
                    "voice": None,
                    "models": {"stt": "whisper-tiny.en", "llm": "qwen2.5-coder-0.5b-instruct", "tts": None},
                    "timings": {"decode": 8.1, "stt": 391.6, "llm": 412.3, "tts": None},
                    "usage": {"prompt_tokens": 61, "completion_tokens": 8, "cached_tokens": 43},
                    "conversation_id": "5f0c6a1e2b3d4c5e8f9a0b1c2d3e4f50",
                    "persona": "assistant",
                    "message_id": "9a1e0c2b3d4e5f60718293a4b5c6d7e8",
                }
            ]
        }
    )

    transcript: str | None = Field(description="What the user said; null for text input.")
    reply: str
    language: str | None = Field(description="Language heard (or fixed by the request or persona) and answered in.")
    voice: str | None = Field(None, description="The voice that spoke the reply (reply_as=voice).")
    models: dict[str, str | None] = Field(description="The model of each role that did the work.")
    timings: Timings
    usage: dict[str, int] = Field(
        default_factory=dict,
        description="The LLM's prompt_tokens, completion_tokens and cached_tokens (the prompt prefix it had cached).",
    )
    conversation_id: str
    persona: str
    message_id: str = Field(description="Id of the stored reply message.")


class ErrorDetail(BaseModel):
    type: str = Field(
        description="invalid_request_error, authentication_error, permission_error, rate_limit_error or server_error."
    )
    code: str = Field(description="What went wrong, for programs: `busy`, `no_speech`, `rate_limited`, ...")
    message: str = Field(description="What went wrong, for people.")


class ErrorOut(BaseModel):
    """Every error voxgate answers, whatever its status."""

    error: ErrorDetail


# Accounts


class Credentials(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "ada", "password": "correct horse battery"}]}
    )

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=256)


class Registration(Credentials):
    is_admin: bool = False


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    is_admin: bool
    default_persona: str


class AuthConfig(BaseModel):
    auth: Literal["on", "off"] = Field(description="`off`: every request is served as the local admin.")
    registration: Literal["admin", "open"] = Field(description="Who may create accounts over HTTP.")


class TokenOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI1ZjBjIn0.c2lnbmF0dXJl",
                    "token_type": "bearer",
                    "expires_at": "2026-11-23T13:00:00Z",
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class NewApiKey(BaseModel):
    name: str = Field("default", min_length=1, max_length=100)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class CreatedApiKey(ApiKeyOut):
    key: str = Field(description="The key itself. Shown only now: store it safely.")


class UserSettings(BaseModel):
    default_persona: str = Field(min_length=1, max_length=64)


# Personas and conversations


class PersonaFields(BaseModel):
    system_prompt: PlainText = Field(min_length=1, max_length=8000)
    voice: str | None = Field(None, max_length=100)
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=4096)


class PersonaIn(PersonaFields):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class PersonaPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_prompt: PlainText | None = Field(None, min_length=1, max_length=8000)
    voice: str | None = Field(None, max_length=100)
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=4096)

    @field_validator("system_prompt")
    @classmethod
    def _prompt_not_null(cls, prompt: str | None) -> str:
        if prompt is None:  # only an explicit null gets here: an omitted field is not validated
            raise ValueError("cannot be null: omit it to keep the persona's prompt")
        return prompt


class PersonaOut(PersonaIn):
    model_config = ConfigDict(from_attributes=True)

    system_prompt: str
    builtin: bool


class ConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: PlainText | None = Field(None, max_length=200)
    persona: str | None = Field(None, max_length=64)


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    role: str
    text: str
    transcript: str | None
    language: str | None
    persona: str | None
    models: dict[str, Any] | None
    voice: str | None = Field(description="The voice that spoke a reply, if it was spoken.")
    timings: dict[str, Any] | None
    has_audio: bool
    created_at: datetime


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str | None
    persona: str | None
    created_at: datetime
    updated_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]


class ConversationPage(BaseModel):
    data: list[ConversationOut]
    limit: int
    offset: int


class SpeechBody(BaseModel):
    """OpenAI-compatible `POST /v1/audio/speech`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "tts-1",
                    "input": "Hello! How can I help you today?",
                    "voice": "default",
                    "response_format": "wav",
                },
                {
                    "model": "tts-1",
                    "input": "The capital of France is Paris.",
                    "voice": "alloy",
                    "response_format": "mp3",
                    "speed": 1.2,
                },
            ]
        }
    )

    model: str = "tts-1"
    input: PlainText = Field(min_length=1)
    voice: str = Field("default", max_length=100)
    response_format: VoiceFormat = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)


class ChatCompletionMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _plain(self) -> "ChatCompletionMessage":
        plain_text(self.text())
        return self

    def text(self) -> str:
        """The message's text; content parts other than text are not supported and ignored."""
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatCompletionBody(BaseModel):
    """OpenAI-compatible `POST /v1/chat/completions` (text only)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "default",
                    "max_tokens": 60,
                    "messages": [
                        {"role": "system", "content": "You are a concise assistant."},
                        {"role": "user", "content": "What is the capital of France?"},
                    ],
                },
                {"model": "default", "stream": True, "messages": [{"role": "user", "content": "Tell me a fun fact."}]},
            ]
        },
    )

    model: str = "default"
    messages: list[ChatCompletionMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False


class RealtimeStart(BaseModel):
    """The first message on `/v1/realtime`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["session.start"]
    token: str | None = Field(None, description="Access token or API key, unless sent as subprotocol.")
    conversation_id: str | None = None
    persona: str | None = None
    model: str | None = Field(None, max_length=64, description="LLM or custom model (default: the LLM default).")
    voice: str | None = Field(None, max_length=100, description="Voice id (default: one for the reply's language).")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$", description="Fix the language (default: detected).")
    reply_as: Literal["text", "voice"] = "voice"
    voice_format: VoiceFormat = "wav"
    input_format: Literal["pcm16", "container"] = "pcm16"
    sample_rate: int = Field(16_000, ge=8_000, le=96_000, description="Rate of pcm16 input.")
    vad_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    turn_detection: Literal["smart", "silence"] = Field(
        "smart",
        description="`smart`: at the first pause the Smart Turn model decides whether the turn is over; "
        "`silence`: a turn ends after `silence_ms` of silence.",
    )
    pause_ms: int = Field(
        200, ge=60, le=2_000, description="Silence at which work on the answer starts (and `smart` decides)."
    )
    relook_ms: int = Field(
        700,
        ge=100,
        le=5_000,
        description="`smart`: silence at which the end-of-turn model looks again if it said not yet at the pause.",
    )
    silence_ms: int = Field(700, ge=100, le=5_000, description="`silence` detection: silence that ends a turn.")
    max_silence_ms: int = Field(
        2_000, ge=200, le=10_000, description="`smart` detection: silence that ends a turn the model judged unfinished."
    )
    turn_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Smart Turn probability that ends a turn.")
    echo: Literal["ignore", "interrupt"] = Field(
        "ignore", description="The reply's own voice heard back through the microphone: ignored, or treated as speech."
    )
    backchannels: Literal["ignore", "interrupt"] = Field(
        "ignore", description='Short acknowledgements ("mm-hmm", "okay") during a reply: ignored, or an interruption.'
    )


# Models


class PullBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64, description="Catalog model to install and prepare.")
    stream: bool = Field(True, description="Stream progress as NDJSON lines; false: answer once done.")


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64)
    role: Role
    path: str = Field(
        max_length=4096,
        description="On the server: a GGUF file (llm), a faster-whisper "
        "directory (stt), a Piper .onnx with its .onnx.json (tts) "
        "or a Smart Turn .onnx (turn).",
    )
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$", description="Expected sha256 of the main file.")


class CreateBody(BaseModel):
    """A custom model: a base LLM with a persona, given by name and/or field by field."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64)
    base: str = Field(max_length=64, description="The LLM (or custom model) it runs on.")
    persona: str | None = Field(None, max_length=64, description="Start from this persona's settings.")
    system: str | None = Field(None, max_length=8000)
    voice: str | None = Field(None, max_length=100)
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$")
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=4096)


class DefaultsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stt: str | None = Field(None, max_length=4096)
    llm: str | None = Field(None, max_length=4096)
    tts: str | None = Field(None, max_length=4096)
    turn: str | None = Field(None, max_length=4096)
