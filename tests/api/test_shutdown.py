"""SIGTERM with turns in flight, against a real `voxgate serve` process.

Draining: /readyz answers 503 and new work (a turn, a realtime socket) is refused with 503
`shutting_down`. Turns that finish within the grace period are answered and stored, then
open sockets are closed with 1001 and the process exits without waiting out the grace.
Turns still running when the grace ends get 503 `shutting_down` (JSON, or an SSE `error`
event) and store nothing; the process exits soon after.
"""

import json
import signal
import sqlite3
import threading
import time

import httpx
import pytest
from conftest import start_server
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

# A reply long enough to be running when a 2 s grace ends. A buffered reply's generation
# cannot be stopped once it runs (llama.cpp is only asked to stop between streamed tokens):
# the process waits for its last token, so this bounds the exit too.
LONG = {"text": "Tell me a long story about a dragon who learns to sing.", "max_tokens": 120, "temperature": 0}
SHORT = {"text": "Say hello in three words.", "max_tokens": 12}


class Turns:
    """A streamed and a buffered turn, each in a thread, answered while the test signals."""

    def __init__(self, server, body: dict):
        self.client = httpx.Client(base_url=server.url, headers=server.headers, timeout=120)
        self.events: list[tuple[str, dict]] = []
        self.buffered: httpx.Response | None = None
        self.first_text = threading.Event()
        self.threads = [
            threading.Thread(target=self._stream, args=(body,)),
            threading.Thread(target=self._buffered, args=(body,)),
        ]
        for thread in self.threads:
            thread.start()

    def _stream(self, body: dict) -> None:
        with self.client.stream("POST", "/v1/chat", json={**body, "stream": True}) as response:
            name = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.append((name, json.loads(line.removeprefix("data: "))))
                    self.first_text.set()

    def _buffered(self, body: dict) -> None:
        self.buffered = self.client.post("/v1/chat", json=body)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(120)
            assert not thread.is_alive(), "a client hung"
        self.client.close()


def llm_in_flight(server) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return next(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "voxgate_lane_in_flight" and s.labels == {"lane": "llm"}
    )


def both_generating(server, turns: Turns) -> None:
    assert turns.first_text.wait(120), "the streamed turn never started"
    deadline = time.monotonic() + 60
    while llm_in_flight(server) < 2:  # the buffered turn is generating too
        assert time.monotonic() < deadline, "the buffered turn never reached the LLM"
        time.sleep(0.05)


def assert_draining(server) -> None:
    ready = httpx.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "shutting_down"
    refused = httpx.post(f"{server.url}/v1/chat", headers=server.headers, json=SHORT, timeout=10)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
    assert refused.headers["connection"] == "close" and refused.headers["retry-after"] == "1"
    with pytest.raises(InvalidStatus) as socket_refused:
        connect(f"{server.url.replace('http', 'ws')}/v1/realtime", open_timeout=10)
    assert socket_refused.value.response.status_code == 503


def stored_messages(workdir) -> list[tuple[str, str]]:
    with sqlite3.connect(workdir / "data" / "voxgate.db") as db:
        return db.execute("SELECT conversation_id, role FROM messages ORDER BY conversation_id, seq").fetchall()


def exit_after_signal(server) -> float:
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    return started


def clean_log(workdir, server) -> str:
    log = (workdir / f"server-{server.url.rsplit(':', 1)[1]}.log").read_text()
    assert "Event loop is closed" not in log and "Traceback" not in log, log
    return log


def test_turns_that_finish_within_the_grace_are_answered_and_stored_then_sockets_close(tmp_path):
    server = start_server(tmp_path, VOXGATE_SHUTDOWN_GRACE_SECONDS="60")
    try:
        with connect(
            f"{server.url.replace('http', 'ws')}/v1/realtime",
            subprotocols=["voxgate", f"bearer.{server.key}"],
            open_timeout=10,
        ) as socket:
            socket.send(json.dumps({"type": "session.start"}))
            assert json.loads(socket.recv(timeout=10))["type"] == "session.ready"
            turns = Turns(server, SHORT)
            both_generating(server, turns)
            signalled = exit_after_signal(server)
            assert_draining(server)
            turns.join()
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=60)
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "server shutting down")
        server.proc.wait(timeout=30)  # done when the turns are: the 60 s grace is not waited out
    finally:
        server.proc.kill()
    assert time.monotonic() - signalled < 30 and server.proc.returncode in (0, -signal.SIGTERM)
    assert turns.events[-1][0] == "done" and turns.buffered.status_code == 200
    assert "error" not in [kind for kind, _ in turns.events]
    assert [role for _, role in stored_messages(tmp_path)] == ["user", "assistant"] * 2
    clean_log(tmp_path, server)


def test_turns_still_running_when_the_grace_ends_get_errors_and_nothing_half_is_stored(tmp_path):
    grace = 2
    server = start_server(tmp_path, VOXGATE_SHUTDOWN_GRACE_SECONDS=str(grace))
    try:
        kept = httpx.post(f"{server.url}/v1/chat", headers=server.headers, json=SHORT, timeout=120).json()
        turns = Turns(server, LONG)
        both_generating(server, turns)
        signalled = exit_after_signal(server)
        assert_draining(server)
        turns.join()
        ended = time.monotonic() - signalled
        server.proc.wait(timeout=grace + 30)
    finally:
        server.proc.kill()
    exited = time.monotonic() - signalled
    kind, data = turns.events[-1]
    assert kind == "error" and data["error"]["code"] == "shutting_down"
    assert "done" not in [kind for kind, _ in turns.events[:-1]]
    assert turns.buffered.status_code == 503 and turns.buffered.json()["error"]["code"] == "shutting_down"
    assert grace - 0.5 < ended < grace + 4, "the turns end when the grace does"
    assert exited < grace + 12 and server.proc.returncode in (0, -signal.SIGTERM)
    messages = stored_messages(tmp_path)  # only the turn answered before the signal, whole
    assert messages == [(kept["conversation_id"], "user"), (kept["conversation_id"], "assistant")]
    clean_log(tmp_path, server)
