"""The `voxgate` command, run as a user would run it."""

import json
import os
import subprocess
import sys

from conftest import espeak

from voxgate.config import Settings


def voxgate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voxgate", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "160", **(env or {})},
    )


def test_models_lists_catalog_and_readiness():
    for args in (("models",), ("models", "ls")):
        out = voxgate(*args)
        assert out.returncode == 0, out.stderr
        assert "whisper-tiny.en" in out.stdout and "ready" in out.stdout and "available" in out.stdout


def test_pull_is_instant_when_ready():
    out = voxgate("models", "pull")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("is ready") == 5  # stt, llm, tts, turn and the stt's second opinion


def test_import_create_and_remove(tmp_path):
    """The CLI's own model cache: import a Piper voice, create a custom LLM, remove both."""
    cache = {"VOXGATE_CACHE_DIR": str(tmp_path)}
    (tmp_path / "models").mkdir()
    for name in ("qwen2.5-coder-0.5b-instruct", "piper-en_US-joe-medium"):
        (tmp_path / "models" / name).symlink_to(Settings().models_dir / name)
    voice = Settings().models_dir / "piper-en_US-joe-medium" / "voice.onnx"

    out = voxgate("models", "import", "my-voice", str(voice), "--role", "tts", "--sha256", "0" * 64, env=cache)
    assert out.returncode == 1 and "does not match" in out.stderr
    out = voxgate("models", "import", "my-voice", str(voice), "--role", "tts", env=cache)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "models" / "my-voice" / "voice.onnx").stat().st_size == voice.stat().st_size

    out = voxgate(
        "models",
        "create",
        "helper",
        "--from",
        "qwen2.5-coder-0.5b-instruct",
        "--persona",
        "formal",
        "--voice",
        "my-voice",
        env=cache,
    )
    assert out.returncode == 0, out.stderr
    listed = voxgate("models", "ls", env=cache).stdout
    assert "my-voice" in listed and "imported" in listed and "helper" in listed and "custom" in listed

    out = voxgate("models", "create", "broken", "--from", "no-such-base", env=cache)
    assert out.returncode == 1 and "no model named" in out.stderr
    for name in ("helper", "my-voice"):
        assert voxgate("models", "rm", name, env=cache).returncode == 0
    assert not (tmp_path / "models" / "my-voice").exists()
    assert "my-voice" not in voxgate("models", "ls", env=cache).stdout


def test_ask_text(tmp_path):
    out = voxgate("ask", "What is the capital of France?")
    assert out.returncode == 0, out.stderr
    assert "paris" in out.stdout.lower()


def test_ask_audio_with_voice_reply(tmp_path):
    question = tmp_path / "q.wav"
    question.write_bytes(espeak("What is the capital of France?"))
    reply = tmp_path / "reply.wav"
    out = voxgate("ask", "--audio", str(question), "--voice", str(reply))
    assert out.returncode == 0, out.stderr
    assert "france" in out.stderr.lower()
    assert "paris" in out.stdout.lower()
    assert reply.read_bytes()[:4] == b"RIFF" and reply.stat().st_size > 10_000


def test_ask_with_silence_fails_cleanly(tmp_path):
    from conftest import silence_wav

    silent = tmp_path / "silent.wav"
    silent.write_bytes(silence_wav(1.0))
    out = voxgate("ask", "--audio", str(silent))
    assert out.returncode == 1
    assert "no speech" in out.stderr and "Traceback" not in out.stderr


def test_eval_scores_the_battery_through_a_running_server(server, tmp_path):
    out = tmp_path / "eval.json"
    done = voxgate(
        "eval",
        "--url",
        server.url,
        "--kind",
        "memory",
        "--kind",
        "arithmetic",
        "--output",
        str(out),
        env={"VOXGATE_API_KEY": server.key},
    )
    assert done.returncode == 0, done.stderr
    assert "answer battery: 10 questions" in done.stdout
    [report] = json.loads(out.read_text())
    assert report["asked"] == 10 and report["spoken"] == 2 and report["errors"] == 0
    # The default 0.5B at temperature 0 gets most of these right (9 of 10 when measured).
    assert report["right"] >= 7, report["replies"]
    refused = voxgate("eval", "--url", server.url, "--kind", "memory", env={"VOXGATE_API_KEY": "vg_wrong"})
    assert refused.returncode == 1 and "invalid_api_key" in refused.stderr
