"""voxgate: a self-hosted voice chat API (Whisper in, local LLM, Piper voice out)."""

__version__ = "0.1.0"
