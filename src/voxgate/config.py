"""All configuration in one place: environment variables `VOXGATE_*` and an optional `.env`."""

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "voxgate"


class Settings(BaseSettings):
    """Server, model and limit settings.

    A model setting is either a catalog name (see `voxgate models`) or a path to the
    user's own model: a faster-whisper directory, a GGUF file, or a Piper `.onnx` voice.
    """

    model_config = SettingsConfigDict(env_prefix="VOXGATE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    cache_dir: Path = Field(default_factory=_default_cache_dir)

    stt_model: str = "whisper-tiny.en"
    llm_model: str = "qwen2.5-coder-0.5b-instruct"
    tts_model: str = "piper-en_US-joe-medium"

    threads: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    llm_context: int = Field(default=4096, ge=512, description="Tokens of context, shared by the LLM slots.")
    llm_slots: int = Field(default=2, ge=1, description="LLM requests decoded in parallel.")
    queue_size: int = Field(default=8, ge=0, description="Requests that may wait per model before 503.")
    warmup: bool = True

    system_prompt: str = (
        "You are voxgate, a friendly voice assistant. Answer in one to three short, "
        "plain sentences that sound natural when spoken aloud. No lists, no markdown."
    )
    max_tokens: int = Field(default=200, ge=1)
    temperature: float = Field(default=0.3, ge=0.0, le=2.0)

    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_audio_seconds: float = Field(default=300.0, gt=0)
    max_text_chars: int = Field(default=4000, ge=1)

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"
