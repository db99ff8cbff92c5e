"""Shared fixtures: real voxgate servers with the default models, and spoken questions.

Servers run as their own processes (`python -m voxgate serve`), exactly as users start
them, so the tests exercise the real HTTP stack, database, model loading and models.
The shared server is parametrized over SQLite and a throwaway PostgreSQL server.
"""

import io
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from pg_server import free_port, throwaway_postgres


TEST_JWT_SECRET = "test-secret-known-to-the-tests-so-they-can-forge-tokens"


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    env: dict[str, str]
    key: str | None  # an admin's API key (None when auth is off)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


def add_user(env: dict[str, str], username: str, *, admin: bool = False) -> tuple[str, str]:
    """Create an account with the CLI, as an operator would; returns (password, API key)."""
    out = subprocess.run([sys.executable, "-m", "voxgate", "users", "add", username, *(["--admin"] if admin else [])],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return re.search(r"password: (\S+)", out.stderr)[1], re.search(r"API key:\s+(\S+)", out.stderr)[1]


def start_server(workdir: Path, *, database_url: str | None = None, **env: str) -> Server:
    """Start `voxgate serve` with its own data dir (and database), wait until /readyz is 200.

    `env` holds extra environment variables, e.g. VOXGATE_AUTH="off".
    """
    port = free_port()
    env = {**os.environ, "VOXGATE_DATA_DIR": str(workdir / "data"), "VOXGATE_JWT_SECRET": TEST_JWT_SECRET, **env}
    if database_url:
        env["VOXGATE_DATABASE_URL"] = database_url
    key = None
    if env.get("VOXGATE_AUTH") != "off":
        _, key = add_user(env, f"admin-{secrets.token_hex(4)}", admin=True)
    log_path = workdir / f"server-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "voxgate", "serve", "--port", str(port)], env=env,
                            stdout=log_path.open("a"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"voxgate exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return Server(proc, url, env, key)
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"voxgate did not become ready:\n{log_path.read_text()}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> Iterator[str]:
    with throwaway_postgres(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def server_tmpdir(tmp_path_factory) -> Path:
    """TMPDIR of the shared servers, so tests can check that they leave no temp files."""
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory, server_tmpdir) -> Iterator[Server]:
    """The shared server; every test that uses it runs once per database."""
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    started = start_server(tmp_path_factory.mktemp(request.param), database_url=database_url,
                           VOXGATE_STORE_AUDIO="true", TMPDIR=str(server_tmpdir))
    yield started
    stop_server(started)


@pytest.fixture(scope="session")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=300) as c:
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
