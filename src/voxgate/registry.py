"""Every model voxgate knows, its state, and the engines loaded from it.

Models come from the catalog (prepared from registry packages), from the user (imported
into the cache), from `create` (a base LLM plus a persona), or from a remote engine named
in the settings. Each is `available` (catalog, not prepared), `preparing`, `ready` (on
disk or reachable) or `loaded` (in memory). Engines load on first use, are shared by all
requests, and those that are not a role's default unload after an idle timeout.

Loading, pulling and listing block (seconds, or a directory scan): the pipeline loads from
its lanes' worker threads, the API calls those through `asyncio.to_thread`. Name lookups
(`role_of`, `custom`) read at most one small manifest and are called directly.
"""

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voxgate import model_files
from voxgate.catalog import CATALOG, Role, catalog_voice, voice_id
from voxgate.config import RemoteEngine, Settings
from voxgate.engines.base import ChatModel, Engine, SpeechToText, TextToSpeech, TurnDetector
from voxgate.engines.factory import ESPEAK_PREFIX, open_engine
from voxgate.errors import BadRequest, Conflict, NotFound
from voxgate.loaded import LoadedModels
from voxgate.voices import Voice, choose_voice, voices_on_disk


@dataclass(frozen=True)
class ModelInfo:
    name: str
    role: Role
    source: str  # catalog | imported | custom | remote | path
    state: str  # available | preparing | ready | loaded
    default: bool
    size_bytes: int | None = None
    license: str | None = None
    description: str | None = None
    base: str | None = None  # custom models: the LLM they run on
    persona: dict | None = None  # custom models: prompt, voice, language, sampling
    sha256: dict[str, str] | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class CustomModel:
    name: str
    base: str
    persona: dict


# Progress reports of a pull, one JSON object each (streamed as NDJSON by the API).
Report = Callable[[dict], object]  # what it returns is ignored


class Registry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.models_dir = settings.models_dir
        self._remotes = settings.remote_engines()  # settings do not change while serving
        self.defaults: dict[Role, str] = {
            Role.STT: settings.stt.model,
            Role.LLM: settings.llm.model,
            Role.TTS: settings.tts.model,
            Role.TURN: settings.turn.model,
        }
        self._loaded = LoadedModels(lambda role, name: self._open(role, name), warm_up=settings.warmup)
        self._preparing: set[str] = set()
        self._lock = threading.Lock()  # guards _preparing

    @property
    def second_opinion(self) -> str | None:
        """The STT asked when the default one doubts (realtime's back-channels); none where it
        would be the default itself, or where speech is heard by a remote engine."""
        second = self.settings.stt.second_opinion
        return second if second and second != self.defaults[Role.STT] and "stt" not in self._remotes else None

    # Which model a name is.

    def _remote(self, role: Role, name: str) -> RemoteEngine | None:
        """The role's remote engine, when `name` is the model it serves (turn detection is always local)."""
        engine = self._remotes.get(role.value)
        return engine if engine is not None and engine.model == name else None

    def role_of(self, name: str) -> Role | None:
        if name in CATALOG:
            return CATALOG[name].role
        if catalog_voice(name):  # another voice of a catalog model: "kokoro-82m-ja:jm_kumo"
            return Role.TTS
        if name.startswith(ESPEAK_PREFIX):
            from voxgate.engines.espeak import espeak_voices

            known = any(ESPEAK_PREFIX + v.id == name for v in espeak_voices())
            return Role.TTS if known else None
        for role in Role:
            if self._remote(role, name) or name == self.defaults[role]:
                return role
        manifest = self._manifest(name)
        return Role(manifest["role"]) if manifest else None

    def _manifest(self, name: str | None) -> dict | None:
        """An imported or custom model's manifest; only plain names reach the file system."""
        if not name or name in CATALOG or not model_files.valid_name(name):
            return None
        return model_files.read_manifest(self.models_dir, name)

    def custom(self, name: str | None) -> CustomModel | None:
        manifest = self._manifest(name)
        if name is None or manifest is None or manifest["source"] != "custom":
            return None
        return CustomModel(name, manifest["base"], manifest["persona"])

    def _known_role(self, name: str) -> Role:
        """`name`'s role, or a 404 when no model has that name."""
        if (role := self.role_of(name)) is None:
            raise NotFound(f"no model named {name!r}; GET /v1/models lists them", code="model_not_found")
        return role

    def require(self, role: Role, name: str) -> str:
        """`name` if it is a usable `role` model (loading may still fail), else a 4xx error."""
        found = self._known_role(name)
        if self.custom(name):
            raise BadRequest(f"{name!r} is a custom model: name it in a request, not here", code="wrong_model_role")
        if found != role:
            raise BadRequest(f"{name!r} is a {found.value} model, not a {role.value} model", code="wrong_model_role")
        return name

    def known(self, role: Role, name: str | None) -> str | None:
        """`name` if it is a `role` model, else None (the default): OpenAI clients send
        names like "whisper-1" or "tts-1" that mean "your model for this"."""
        return name if name and self.role_of(name) == role and not self.custom(name) else None

    # Loading.

    def _open(self, role: Role, name: str) -> Engine:
        """Construct the engine for `name` (blocking: reads weights, connects)."""
        return open_engine(role, name, self.settings, self._remote(role, name))

    def use_stt(self, name: str | None = None) -> AbstractContextManager[SpeechToText]:
        return self._use(Role.STT, name)

    def use_llm(self, name: str | None = None) -> AbstractContextManager[ChatModel]:
        return self._use(Role.LLM, name)

    def use_tts(self, name: str | None = None) -> AbstractContextManager[TextToSpeech]:
        return self._use(Role.TTS, name)

    def use_turn(self, name: str | None = None) -> AbstractContextManager[TurnDetector]:
        return self._use(Role.TURN, name)

    def _use(self, role: Role, name: str | None) -> AbstractContextManager[Any]:
        return self._loaded.use(role, name or self.defaults[role])

    def load(self, name: str) -> None:
        """Load on request; an explicit load restarts the model's idle clock."""
        if custom := self.custom(name):
            name = custom.base
        role = self._known_role(name)
        self._loaded.load(role, self.require(role, name))

    def load_defaults(self) -> "Registry":
        for role in Role:
            self._loaded.load(role, self.defaults[role])
        if self.second_opinion:
            self._loaded.load(Role.STT, self.second_opinion)
        return self

    def loaded(self) -> list[str]:
        return self._loaded.names()

    def unload(self, name: str) -> bool:
        """Forget the engine; requests that hold it finish first, then its memory is freed.
        Defaults stay: /readyz and the next request's latency depend on them."""
        if name in self.defaults.values():
            raise Conflict(f"{name!r} is a default model; make another the default first", code="model_in_use")
        return self._loaded.drop(name)

    def unload_idle(self) -> list[str]:
        """Unload models that are not a default (nor the second opinion), not in use, and idle
        past the timeout."""
        timeout = self.settings.idle_unload_seconds
        kept = {*self.defaults.values(), *filter(None, [self.second_opinion])}
        return self._loaded.drop_idle(timeout, kept) if timeout else []

    def set_defaults(self, wanted: dict[Role, str]) -> None:
        """Make each name its role's default, all loaded first, so a failure changes nothing."""
        for role, name in wanted.items():
            self.require(role, name)
        for role, name in wanted.items():
            self._loaded.load(role, name)
        replaced = [self.defaults[role] for role in wanted]
        self.defaults.update(wanted)
        for name in replaced:  # a former default's idle time starts now, not at its last request
            self._loaded.touch(name)

    # Listing.

    def _state(self, name: str, on_disk: bool) -> str:
        if name in self._loaded:
            return "loaded"
        if name in self._preparing:
            return "preparing"
        return "ready" if on_disk else "available"

    def all_models(self) -> list[ModelInfo]:
        """Every model: catalog, imported, custom, remote, and defaults given as paths."""
        defaults = set(self.defaults.values())
        found: dict[str, ModelInfo] = {}
        for m in CATALOG.values():
            found[m.name] = ModelInfo(
                m.name,
                m.role,
                "catalog",
                self._state(m.name, model_files.is_prepared(self.models_dir, m.name)),
                m.name in defaults,
                m.size_bytes,
                m.license,
                m.description,
                sha256={f.name: f.sha256 for f in m.files},
            )
        for man in model_files.manifests(self.models_dir):
            name = man["name"]
            found[name] = ModelInfo(
                name,
                Role(man["role"]),
                man["source"],
                self._state(man.get("base", name), True) if man["source"] == "custom" else self._state(name, True),
                name in defaults,
                man["size_bytes"],
                description=man.get("origin"),
                base=man.get("base"),
                persona=man.get("persona"),
                sha256=man["files"] or None,
            )
        for role in Role:
            name = self.defaults[role]
            if remote := self._remote(role, name):
                found[name] = ModelInfo(
                    name,
                    role,
                    "remote",
                    self._state(name, True),
                    True,
                    description=f"{remote.backend} backend at {remote.url}",
                )
            elif name.startswith(ESPEAK_PREFIX):
                found[name] = ModelInfo(name, role, "espeak-ng", self._state(name, True), True)
            elif name not in found:
                found[name] = ModelInfo(name, role, "path", self._state(name, Path(name).expanduser().exists()), True)
        return sorted(found.values(), key=lambda m: (m.role.value, m.name))

    # Pull, import, create, delete.

    def pull(self, name: str, report: Report) -> None:
        """Install a catalog model's packages and prepare it, reporting progress."""
        model = CATALOG.get(name)
        if model is None:
            raise NotFound(f"{name!r} is not in the catalog; GET /v1/models lists it", code="model_not_found")
        with self._lock:
            if name in self._preparing:
                raise Conflict(f"{name!r} is already being pulled", code="pull_in_progress")
            self._preparing.add(name)
        try:
            if not model_files.is_prepared(self.models_dir, name):
                if missing := model_files.missing_packages(model):
                    report({"status": f"installing {len(missing)} package(s)", "packages": missing})
                    model_files.install_packages(missing)
                done = 0

                def progress(n: int) -> None:
                    nonlocal done
                    done += n
                    report({"status": "joining and verifying", "completed": done, "total": model.size_bytes})

                model_files.prepare(model, self.models_dir, progress)
            elif missing := [p for p in model_files.missing_packages(model) if p in model.runtime]:
                report({"status": f"installing {len(missing)} package(s)", "packages": missing})
                model_files.install_packages(missing)  # the files are cached; this environment lacks the code
            report({"status": "success", "name": name})
        finally:
            with self._lock:
                self._preparing.discard(name)

    def import_model(
        self, name: str, role: Role, path: Path, sha256: str | None = None, progress: model_files.Progress | None = None
    ) -> ModelInfo:
        model_files.import_files(self.models_dir, name, role, path, sha256, progress)
        return self.info(name)

    def create(self, name: str, base: str, persona: dict) -> ModelInfo:
        """A custom model: `base` LLM + persona, usable by name wherever a model is named."""
        if custom := self.custom(base):
            base = custom.base  # a custom model on a custom model: flatten
        self.require(Role.LLM, base)
        if persona.get("voice"):
            self.voice_for(None, persona["voice"])
        model_files.write_custom(self.models_dir, name, base, {k: v for k, v in persona.items() if v is not None})
        return self.info(name)

    def info(self, name: str) -> ModelInfo:
        for model in self.all_models():
            if model.name == name:
                return model
        raise NotFound(f"no model named {name!r}", code="model_not_found")

    def delete(self, name: str) -> None:
        """Remove a prepared, imported or custom model and free its disk."""
        info = self.info(name)
        if info.default:
            raise Conflict(
                f"{name!r} is the default {info.role.value} model; make another the default first", code="model_in_use"
            )
        dependants = [m.name for m in self.all_models() if m.base == name]
        if dependants:
            raise Conflict(f"{name!r} is the base of {', '.join(dependants)}; delete those first", code="model_in_use")
        if info.source not in ("catalog", "imported", "custom") or info.state in ("available", "preparing"):
            raise Conflict(
                f"{name!r} is {info.state if info.source == 'catalog' else info.source}: nothing to delete",
                code="not_deletable",
            )
        for voice in CATALOG[name].voices if info.source == "catalog" else ():  # its other voices too
            self.unload(voice_id(CATALOG[name], voice))
        self.unload(name)
        model_files.remove(self.models_dir, name)
        if info.source == "catalog":
            model_files.uninstall_packages(CATALOG[name])

    # Voices.

    def voices(self) -> list[Voice]:
        return voices_on_disk(self.all_models(), self.settings)

    def voice_for(self, language: str | None, requested: str | None = None) -> str:
        return choose_voice(self.voices(), self.defaults[Role.TTS], language, requested)
