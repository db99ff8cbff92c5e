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
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import httpx
import llama_server
import numpy as np
import pytest
from pg_server import throwaway_postgres
from processes import free_port, wait_until_serving

TEST_JWT_SECRET = "test-secret-known-to-the-tests-so-they-can-forge-tokens"
# Tests that start real servers, load real models or drive a real browser: the `real` tier.
# The rest (tests/fast and the unit tests beside this file) run in seconds with fakes:
# `pytest -m "not real"`.
REAL_FOLDERS = {"api", "web", "engines", "deploy", "store"}
REAL_MODULES = {"test_cli.py", "test_model_files.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(tests).parts
        if parts[0] in REAL_FOLDERS or parts[-1] in REAL_MODULES:
            item.add_marker(pytest.mark.real)


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
    out = subprocess.run(
        [sys.executable, "-m", "voxgate", "users", "add", username, *(["--admin"] if admin else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxgate", "serve", "--port", str(port)],
        env=env,
        stdout=log_path.open("a"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(proc, f"{url}/readyz", log_path, "voxgate", 180)
    return Server(proc, url, env, key)


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
    # Greedy decoding with a fixed seed: content checks ("paris" in the reply) see the same answer every run.
    started = start_server(
        tmp_path_factory.mktemp(request.param),
        database_url=database_url,
        VOXGATE_STORE_AUDIO="true",
        VOXGATE_TEMPERATURE="0",
        VOXGATE_SEED="0",
        TMPDIR=str(server_tmpdir),
    )
    yield started
    stop_server(started)


@pytest.fixture(scope="session")
def llama_url(tmp_path_factory) -> Iterator[str]:
    """llama.cpp's own OpenAI-compatible server with the default LLM, as a remote LLM backend; its /v1 URL."""
    proc, url = llama_server.start(tmp_path_factory.mktemp("llama"))
    yield url
    proc.kill()
    proc.wait()


@contextmanager
def stub_server(handle: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    """A throwaway HTTP server in a thread that answers every request with `handle(request)`,
    the request's body read into `request.body`; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            handle(self)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def reply(request: BaseHTTPRequestHandler, status: int, body: bytes | str, content_type: str) -> None:
    data = body.encode() if isinstance(body, str) else body
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


def reply_streamed(request: BaseHTTPRequestHandler, content_type: str, pieces: Iterable[bytes | str]) -> None:
    """A 200 sent with chunked transfer encoding, each piece flushed as it comes, as streaming servers do."""
    request.send_response(200)
    request.send_header("Content-Type", content_type)
    request.send_header("Transfer-Encoding", "chunked")
    request.end_headers()
    for piece in pieces:
        data = piece.encode() if isinstance(piece, str) else piece
        request.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        request.wfile.flush()
    request.wfile.write(b"0\r\n\r\n")


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
