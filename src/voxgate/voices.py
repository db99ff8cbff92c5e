"""Which voices there are, and which one speaks a reply: the voices of the TTS models on disk
(catalog voices as the catalog describes them, others from their Piper config), the remote
TTS voice if configured, and espeak-ng's languages."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voxgate import model_files
from voxgate.catalog import CATALOG, Role, voice_id
from voxgate.config import Settings
from voxgate.engines.factory import ESPEAK_PREFIX
from voxgate.errors import BadRequest
from voxgate.languages import base_language

if TYPE_CHECKING:
    from voxgate.registry import ModelInfo


@dataclass(frozen=True)
class Voice:
    id: str  # what a request names in `voice`
    language: str | None  # BCP 47-ish, e.g. "en-us", "fr"; None: whatever the remote engine speaks
    name: str
    engine: str  # piper | hibari | kokoro-ja | espeak-ng | openai
    gender: str | None = None
    quality: str | None = None


def voices_on_disk(models: Iterable["ModelInfo"], settings: Settings) -> list[Voice]:
    """Every voice of the TTS models among `models` that can speak now, then espeak-ng's."""
    from voxgate.engines.espeak import espeak_voices

    found = []
    for info in models:
        if info.role != Role.TTS:
            continue
        if info.source == "remote":
            found.append(Voice(info.name, None, settings.tts.voice, "openai"))
        elif info.source == "catalog" and info.state in ("ready", "loaded"):
            model = CATALOG[info.name]
            assert model.engine, f"the catalog's TTS model {model.name} names no engine"
            found += [
                Voice(voice_id(model, v), v.language, v.name, model.engine, v.gender, v.quality) for v in model.voices
            ]
        elif info.source in ("imported", "path") and info.state in ("ready", "loaded"):
            _, path = model_files.resolve(info.name, Role.TTS, settings.models_dir)
            config = json.loads(path.with_name(path.name + ".json").read_text())
            language = config.get("language", {})
            found.append(
                Voice(
                    info.name,
                    language.get("code", "").replace("_", "-").lower() or None,
                    config.get("dataset", info.name),
                    "piper",
                    quality=config.get("audio", {}).get("quality"),
                )
            )
    found += [Voice(ESPEAK_PREFIX + v.id, v.language, v.name, "espeak-ng", gender=v.gender) for v in espeak_voices()]
    return found


def choose_voice(voices: list[Voice], default: str, language: str | None, requested: str | None = None) -> str:
    """The voice to speak a reply with: the one asked for, else the default voice if it
    speaks `language`, else a neural voice for it (Piper, hibari, Kokoro), else espeak-ng's,
    else the default."""
    if requested:
        if requested == default or any(v.id == requested for v in voices):
            return requested
        raise BadRequest(f"unknown voice {requested!r}; GET /v1/voices lists them", code="unknown_voice")
    if language is None:
        return default
    wanted = base_language(language)
    spoken = next((v.language for v in voices if v.id == default), None)
    if spoken is None or base_language(spoken) == wanted:
        return default
    neural = [v.id for v in voices if v.engine != "espeak-ng" and v.language and base_language(v.language) == wanted]
    if neural:
        return neural[0]
    from voxgate.engines.espeak import espeak_language

    espeak = espeak_language(language)
    return ESPEAK_PREFIX + espeak if espeak else default
