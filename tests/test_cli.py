"""The `voxgate` command, run as a user would run it."""

import subprocess
import sys

from conftest import espeak


def voxgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voxgate", *args], capture_output=True, text=True, timeout=300)


def test_models_lists_catalog_and_readiness():
    out = voxgate("models")
    assert out.returncode == 0, out.stderr
    assert "whisper-tiny.en" in out.stdout and "ready" in out.stdout and "available" in out.stdout


def test_prepare_is_instant_when_ready():
    out = voxgate("models", "prepare")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("is ready") == 3


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
