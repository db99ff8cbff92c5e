"""Shared fixtures: a real voxgate server with the default models, and spoken questions.

The server runs as its own process (`python -m voxgate serve`), exactly as users start
it, so the tests exercise the real HTTP stack, model loading and the real models.
"""

import io
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log_dir: Path, **env: str) -> tuple[subprocess.Popen, str]:
    """Start `voxgate serve` with extra VOXGATE_* settings and wait until /readyz is 200."""
    port = _free_port()
    log_path = log_dir / f"server-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxgate", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"voxgate exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"voxgate did not become ready:\n{log_path.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def server_tmpdir(tmp_path_factory) -> Path:
    """TMPDIR of the shared server, so tests can check that it leaves no temp files."""
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="session")
def server_url(tmp_path_factory, server_tmpdir) -> Iterator[str]:
    proc, url = start_server(tmp_path_factory.mktemp("logs"), TMPDIR=str(server_tmpdir))
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def client(server_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=300) as c:
        yield c


def espeak(text: str, voice: str = "en-us") -> bytes:
    """A spoken question from espeak-ng, as WAV bytes (robotic: hard for Whisper tiny)."""
    return subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout


@pytest.fixture(scope="session")
def piper_speak(client):
    """A spoken question in the Piper voice (natural: easy for Whisper), via the server."""

    def speak(text: str) -> bytes:
        response = client.post("/v1/audio/speech", json={"input": text, "response_format": "wav"})
        assert response.status_code == 200, response.text
        return response.content

    return speak


@pytest.fixture(scope="session")
def france_wav() -> bytes:
    return espeak("What is the capital of France?")


def transcode(wav: bytes, container: str, codec: str, *, rate: int | None = None, layout: str = "mono") -> bytes:
    """Re-encode WAV bytes into another container/codec with PyAV, as a browser or phone would."""
    out_buf = io.BytesIO()
    with av.open(io.BytesIO(wav)) as src, av.open(out_buf, "w", format=container) as dst:
        in_stream = src.streams.audio[0]
        stream = dst.add_stream(codec, rate=rate or in_stream.rate, layout=layout)
        resampler = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=stream.rate)
        frames = [f for frame in src.decode(in_stream) for f in resampler.resample(frame)]
        for frame in [*frames, *resampler.resample(None)]:
            frame.pts = None
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out_buf.getvalue()


def silence_wav(seconds: float, rate: int = 16000) -> bytes:
    from voxgate.audio import encode

    return encode(np.zeros(int(seconds * rate), dtype=np.int16), rate, "wav")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())
