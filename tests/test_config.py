"""Role settings are nested (settings.llm.url) and keep their flat environment names."""

import pytest

from voxgate.config import RemoteEngine, Settings


def test_flat_environment_names_fill_the_nested_role_settings(monkeypatch):
    for name, value in {
        "VOXGATE_LLM_BACKEND": "ollama",
        "VOXGATE_LLM_URL": "http://jetson:11434",
        "VOXGATE_LLM_MODEL": "qwen2.5:1.5b",
        "VOXGATE_LLM_CONTEXT": "1024",
        "VOXGATE_LLM_DRAFT_MODEL": "tiny",
        "VOXGATE_STT_API_KEY": "secret",
        "VOXGATE_TTS_VOICE": "nova",
        "VOXGATE_TURN_MODEL": "/models/turn.onnx",
        "VOXGATE_MAX_TOKENS": "50",  # a flat setting beside them is still flat
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.llm.backend, settings.llm.url, settings.llm.model) == (
        "ollama",
        "http://jetson:11434",
        "qwen2.5:1.5b",
    )
    assert (settings.llm.context, settings.llm.draft_model) == (1024, "tiny")
    assert settings.stt.api_key is not None and settings.stt.api_key.get_secret_value() == "secret"
    assert (settings.tts.voice, settings.turn.model, settings.max_tokens) == ("nova", "/models/turn.onnx", 50)
    assert settings.remote_engines() == {"llm": RemoteEngine("ollama", "qwen2.5:1.5b", "http://jetson:11434", None)}
    assert settings.llm_threads == 0  # the remote LLM takes none of the CPU budget


def test_a_remote_backend_needs_its_url(monkeypatch):
    monkeypatch.setenv("VOXGATE_STT_BACKEND", "openai")
    with pytest.raises(ValueError, match="VOXGATE_STT_URL is required"):
        Settings()
