"""All configuration in one place: environment variables `VOXGATE_*` and an optional `.env`."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "voxgate"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "voxgate"


# Preset -> (LLM, draft model). Measured in bench/presets.py; the README's model table has the figures.
PRESETS: dict[str, tuple[str, str | None]] = {
    "fast": ("qwen2.5-coder-0.5b-instruct", None),
    "accurate": ("qwen2.5-coder-1.5b-instruct", None),
    "speculative": ("qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct"),
}


class _RemoteCapable(BaseModel):
    """A role that runs locally (`local`: `model` is a catalog name or a path) or on a remote
    engine (then `model` is the name that engine knows and `url` its base URL, e.g.
    http://gpu:8000/v1 for vLLM, http://jetson:11434 for Ollama's native API)."""

    url: str | None = None
    api_key: SecretStr | None = None


class SpeechToTextSettings(_RemoteCapable):
    backend: Literal["local", "openai"] = "local"
    model: str = "whisper-tiny.en"
    second_opinion: str = Field(
        "whisper-base",
        description=(
            "A larger local speech-to-text model, asked when `model` is unsure whether short speech over a reply "
            "was an acknowledgement; loaded with the defaults. Empty: none."
        ),
    )


class LlmSettings(_RemoteCapable):
    backend: Literal["local", "openai", "ollama"] = "local"
    model: str = Field("", description="The LLM; empty: the preset's.")
    draft_model: str | None = Field(
        None,
        description=(
            "A small LLM of the same family that drafts tokens for the LLM to check (speculative decoding, local "
            "llama.cpp only); unset: the preset's."
        ),
    )
    context: int = Field(default=4096, ge=512, description="Tokens of context for each request (each slot).")
    slots: int = Field(default=4, ge=1, description="LLM requests decoded in parallel (sessions served at once).")


class TextToSpeechSettings(_RemoteCapable):
    backend: Literal["local", "openai"] = "local"
    model: str = Field(
        "hibari-en_US-heart",
        description=(
            "The voice: faster and better understood than Piper joe (bench/voices.py); `piper-en_US-joe-medium` "
            "stays selectable."
        ),
    )
    voice: str = Field("alloy", description="Voice name sent to a remote (openai) TTS backend.")


class TurnSettings(BaseModel):
    model: str = Field(
        "smart-turn-v3.2",
        description="End-of-turn model, always local: a catalog name or a path to a Smart Turn .onnx file.",
    )


@dataclass(frozen=True)
class RemoteEngine:
    """Where one role's model runs when it is not local."""

    backend: str  # openai | ollama
    model: str  # the name that engine knows
    url: str | None
    api_key: str | None


class Settings(BaseSettings):
    """Server, model and limit settings.

    A model setting is either a catalog name (see `voxgate models`) or a path to the
    user's own model: a faster-whisper directory, a GGUF file, or a Piper `.onnx` voice.
    """

    # VOXGATE_LLM_DRAFT_MODEL -> llm.draft_model: split once, at the first "_" after the role.
    model_config = SettingsConfigDict(
        env_prefix="VOXGATE_", env_file=".env", extra="ignore", env_nested_delimiter="_", env_nested_max_split=1
    )

    host: str = "127.0.0.1"
    port: int = 8000
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    data_dir: Path = Field(default_factory=_default_data_dir, description="Database file, secrets, stored audio.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL, e.g. postgresql+asyncpg://user:pw@host/db; default: SQLite in data_dir."
    )

    auth: Literal["on", "off"] = Field(
        "on", description="`off` serves everyone as one local admin: only for a single user on a trusted machine."
    )
    registration: Literal["admin", "open"] = Field("admin", description="Who may create accounts over HTTP.")
    jwt_secret: str | None = Field(
        None, description="HS256 key for access tokens; default: generated once in data_dir. Set it for replicas."
    )
    token_minutes: int = Field(default=60, ge=1)
    store_audio: bool = Field(False, description="Keep users' recordings and voice replies as files in data_dir.")

    # One group per role, each set as VOXGATE_<ROLE>_<FIELD> (VOXGATE_LLM_URL,
    # VOXGATE_LLM_DRAFT_MODEL, VOXGATE_TTS_VOICE): see SpeechToTextSettings and the others.
    stt: SpeechToTextSettings = Field(default_factory=SpeechToTextSettings)
    preset: Literal["fast", "accurate", "speculative"] = Field(
        "fast",
        description=(
            "The local LLM in one word (see the README's model table): `fast` Qwen2.5-Coder 0.5B, `accurate` the "
            "1.5B, `speculative` the 1.5B drafted by the 0.5B. VOXGATE_LLM_MODEL / _LLM_DRAFT_MODEL override it."
        ),
    )
    llm: LlmSettings = Field(default_factory=LlmSettings)
    tts: TextToSpeechSettings = Field(default_factory=TextToSpeechSettings)
    turn: TurnSettings = Field(default_factory=TurnSettings)
    backend_timeout: float = Field(
        60.0, gt=0, description="Seconds a remote engine may take to answer (or between streamed tokens)."
    )
    backend_retries: int = Field(
        2, ge=0, description="Retries with backoff for a remote call that failed before any answer."
    )

    idle_unload_seconds: float = Field(
        300.0, ge=0, description="Unload a model that is not a role's default after this long unused; 0: never."
    )

    threads: int = Field(
        default_factory=lambda: os.cpu_count() or 2,
        ge=1,
        description="The CPU budget: threads for all local engines together (see `llm_threads`).",
    )
    queue_size: int = Field(default=8, ge=0, description="Requests that may wait per model before 503.")
    # Operations: the server `voxgate serve` runs, its shutdown, logs and metrics.
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "On SIGTERM or Ctrl-C, how long turns in flight may take to finish; then they end with a 503 "
            "`shutting_down` error (JSON, SSE `error` event, or a WebSocket close)."
        ),
    )
    keep_alive_timeout: int = Field(default=5, ge=1, description="Seconds an idle keep-alive connection stays open.")
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a client has to send a request's headers, from connecting or from its previous response; "
            "then 408 and the connection is closed (slowloris)."
        ),
    )
    body_timeout: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds a client has to send a request's whole body once its headers are in; then 408 and close."
        ),
    )
    max_connections: int = Field(
        default=500,
        ge=1,
        description=(
            "Open connections (HTTP and WebSocket) at once; one more is answered 503 and closed. Keep it well "
            "below the process's open-file limit (`ulimit -n`)."
        ),
    )
    log_format: Literal["text", "json"] = Field(default="text", description="`json`: one JSON object per log line.")
    metrics_token: SecretStr | None = Field(
        default=None, description=("Bearer token that GET /metrics requires; unset: /metrics is open, like /healthz.")
    )
    warmup: bool = True

    system_prompt: str = (
        "You are voxgate, a friendly voice assistant. Answer in one to three short, "
        "plain sentences that sound natural when spoken aloud. No lists, no markdown."
    )
    max_tokens: int = Field(default=200, ge=1)
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)
    seed: int | None = Field(
        None, description="The LLM's sampling seed: a request then samples the same reply every time; unset: random."
    )

    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_audio_seconds: float = Field(default=300.0, gt=0)
    max_text_chars: int = Field(default=4000, ge=1)
    # Limits against abuse. Rate limits count in memory, in each process on its own.
    max_json_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description=("Largest request body that is not a multipart upload (JSON); uploads may reach max_upload_bytes."),
    )
    login_window_seconds: float = Field(default=900.0, gt=0, description="How long failed logins are counted.")
    login_failures_per_user: int = Field(
        default=5,
        ge=1,
        description=("Failed logins for one username within the window; then 429, even for the right password."),
    )
    login_failures_per_address: int = Field(
        default=20, ge=1, description=("Failed logins from one client address within the window; then 429.")
    )
    api_key_requests: int = Field(
        default=600, ge=0, description=("Requests per API key within api_key_window_seconds; then 429. 0: no limit.")
    )
    api_key_window_seconds: float = Field(default=60.0, gt=0)
    max_conversations: int = Field(default=1000, ge=0, description="Conversations a user may keep; 0: no quota.")

    @model_validator(mode="after")
    def _preset_fills_the_llm(self) -> "Settings":
        model, draft = PRESETS[self.preset]
        self.llm.model = self.llm.model or model
        if "draft_model" not in self.llm.model_fields_set:
            self.llm.draft_model = draft
        return self

    @model_validator(mode="after")
    def _remote_backends_have_urls(self) -> "Settings":
        for role, engine in self.remote_engines().items():
            if not engine.url:
                raise ValueError(
                    f"VOXGATE_{role.upper()}_URL is required when VOXGATE_{role.upper()}_BACKEND is not local"
                )
        return self

    def remote_engines(self) -> dict[str, "RemoteEngine"]:
        """The roles ("stt", "llm", "tts") that run on a remote engine, each with its settings."""
        roles: dict[str, SpeechToTextSettings | LlmSettings | TextToSpeechSettings] = {
            "stt": self.stt,
            "llm": self.llm,
            "tts": self.tts,
        }
        return {
            role: RemoteEngine(
                group.backend, group.model, group.url, group.api_key.get_secret_value() if group.api_key else None
            )
            for role, group in roles.items()
            if group.backend != "local"
        }

    @property
    def llm_threads(self) -> int:
        """The local LLM's share of the budget: half (it decodes the whole reply), or none
        when the LLM runs on a remote engine."""
        return max(1, self.threads // 2) if self.llm.backend == "local" else 0

    @property
    def speech_threads(self) -> int:
        """Threads for everything else: decoding, STT, turn decisions, TTS, encoding. Each
        runs one single-threaded call at a time, so they never ask for more than this."""
        return max(1, self.threads - self.llm_threads)

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'voxgate.db'}"
