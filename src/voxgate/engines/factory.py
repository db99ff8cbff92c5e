"""How each engine is built from a model name: one constructor per engine, chosen from
tables (remote engines by role and backend, catalog voices by engine, local models by
role). Imports happen inside each constructor: a role's libraries load only when used."""

from collections.abc import Callable
from pathlib import Path

from voxgate import model_files
from voxgate.catalog import Role, catalog_voice
from voxgate.config import RemoteEngine, Settings
from voxgate.engines.base import ChatMessage, Engine

ESPEAK_PREFIX = "espeak-ng:"


def _openai_stt(name: str, remote: dict, settings: Settings) -> Engine:
    from voxgate.engines.openai_stt import OpenAISTT

    return OpenAISTT(name, **remote)


def _openai_tts(name: str, remote: dict, settings: Settings) -> Engine:
    from voxgate.engines.openai_tts import OpenAITTS

    return OpenAITTS(name, **remote, voice=settings.tts.voice)


def _openai_chat(name: str, remote: dict, settings: Settings) -> Engine:
    from voxgate.engines.openai_chat import OpenAIChat

    return OpenAIChat(name, **remote)


def _ollama_chat(name: str, remote: dict, settings: Settings) -> Engine:
    from voxgate.engines.ollama_chat import OllamaChat

    return OllamaChat(name, **remote)


_REMOTE: dict[tuple[Role, str], Callable[[str, dict, Settings], Engine]] = {
    (Role.STT, "openai"): _openai_stt,
    (Role.TTS, "openai"): _openai_tts,
    (Role.LLM, "openai"): _openai_chat,
    (Role.LLM, "ollama"): _ollama_chat,
}


def _hibari(name: str, voice: str, path: Path) -> Engine:
    from voxgate.engines.hibari import HibariTTS

    return HibariTTS(name, path)


def _kokoro_ja(name: str, voice: str, path: Path) -> Engine:
    from voxgate.engines.kokoro_ja import KokoroJaTTS

    return KokoroJaTTS(name, path, voice)


# Catalog models with several voices, by engine: (voice id, the engine's voice name, files).
_VOICE_ENGINES: dict[str, Callable[[str, str, Path], Engine]] = {"hibari": _hibari, "kokoro-ja": _kokoro_ja}


def _whisper(name: str, display: str, path: Path, settings: Settings) -> Engine:
    from voxgate.engines.whisper import WhisperSTT

    return WhisperSTT(display, path, workers=settings.speech_threads)


def _llamacpp(name: str, display: str, path: Path, settings: Settings) -> Engine:
    from voxgate.engines.llamacpp import LlamaCppLLM

    draft = (  # the draft model serves the default LLM only
        model_files.resolve(settings.llm.draft_model, Role.LLM, settings.models_dir)[1]
        if settings.llm.draft_model and name == settings.llm.model
        else None
    )
    return LlamaCppLLM(
        display,
        path,
        threads=settings.llm_threads,
        context=settings.llm.context,
        slots=settings.llm.slots,
        draft=draft,
        prefix=(ChatMessage("system", settings.system_prompt),),
    )


def _smart_turn(name: str, display: str, path: Path, settings: Settings) -> Engine:
    from voxgate.engines.smart_turn import SmartTurn

    return SmartTurn(display, path)


def _piper(name: str, display: str, path: Path, settings: Settings) -> Engine:
    from voxgate.engines.piper import PiperTTS

    return PiperTTS(display, path)


_LOCAL: dict[Role, Callable[[str, str, Path, Settings], Engine]] = {
    Role.STT: _whisper,
    Role.LLM: _llamacpp,
    Role.TURN: _smart_turn,
    Role.TTS: _piper,
}


def open_engine(role: Role, name: str, settings: Settings, remote: RemoteEngine | None = None) -> Engine:
    """Construct the engine for the `role` model `name` (blocking: reads weights, connects);
    `remote`: the role's remote engine, when `name` is the model it serves."""
    if remote is not None:
        connection = {
            "url": remote.url,
            "api_key": remote.api_key,
            "timeout": settings.backend_timeout,
            "retries": settings.backend_retries,
        }
        return _REMOTE[role, remote.backend](name, connection, settings)
    if name.startswith(ESPEAK_PREFIX):
        from voxgate.engines.espeak import EspeakTTS

        return EspeakTTS(name.removeprefix(ESPEAK_PREFIX))
    spoken = catalog_voice(name) if role == Role.TTS else None  # the catalog says which engine speaks it
    if spoken and (make := _VOICE_ENGINES.get(spoken[0].engine or "")):
        model, voice = spoken
        return make(name, voice.name, model_files.resolve(model.name, role, settings.models_dir)[1])
    display, path = model_files.resolve(name, role, settings.models_dir)
    return _LOCAL[role](name, display, path, settings)
