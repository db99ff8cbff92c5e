"""Request ids and logs: every response carries `X-Request-ID` (the client's own when it is
plain), every log line the id of its request, and VOXGATE_LOG_FORMAT=json writes one JSON
object per line, access lines included."""

import asyncio
import io
import json
import logging
import re
import time
from pathlib import Path

import httpx
import pytest
from conftest import start_server, stop_server
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from voxgate import logs
from voxgate.api.app import create_app
from voxgate.config import Settings
from voxgate.lanes import Lane
from voxgate.scheduler import DeadlinePool


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def server(workdir):
    started = start_server(workdir, VOXGATE_LOG_FORMAT="json")
    started.log_path = workdir / f"server-{started.url.rsplit(':', 1)[1]}.log"  # where start_server sends it
    yield started
    stop_server(started)


def log_lines(server) -> list[dict]:
    """The server's log so far, every line parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in server.log_path.read_text().splitlines() if line]


def access_line(server, request_id: str) -> dict:
    deadline = time.monotonic() + 10  # the line is written as the response ends
    while time.monotonic() < deadline:
        found = [
            line
            for line in log_lines(server)
            if line["logger"] == "voxgate.access" and line["request_id"] == request_id
        ]
        if found:
            return found[-1]
        time.sleep(0.05)
    pytest.fail(f"no access line for {request_id}")


def test_the_clients_request_id_comes_back_and_is_in_the_access_line(server):
    response = httpx.post(
        f"{server.url}/v1/chat",
        headers={**server.headers, "X-Request-ID": "order-42.retry:1"},
        json={"text": "Say hi.", "max_tokens": 8},
        timeout=120,
    )
    assert response.status_code == 200 and response.headers["x-request-id"] == "order-42.retry:1"
    line = access_line(server, "order-42.retry:1")
    assert line["method"] == "POST" and line["path"] == line["route"] == "/v1/chat" and line["status"] == 200
    assert line["duration_ms"] > 0 and line["level"] == "INFO"


def test_without_a_usable_id_each_response_gets_a_new_one(server):
    ids = set()
    for given in (None, "has spaces", "x" * 200, "<script>"):
        headers = {"X-Request-ID": given} if given else {}
        response = httpx.get(f"{server.url}/v1/conversations/none", headers={**server.headers, **headers}, timeout=30)
        assert response.status_code == 404  # errors carry it too
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 4 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert access_line(server, ids.pop())["route"] == "/v1/conversations/{conversation_id}"


def test_a_websocket_gets_an_id_too(server):
    with connect(
        f"{server.url.replace('http', 'ws')}/v1/realtime",
        subprotocols=["voxgate", f"bearer.{server.key}"],
        additional_headers={"X-Request-ID": "socket-7"},
        open_timeout=10,
    ) as ws:
        assert ws.response.headers["x-request-id"] == "socket-7"
    assert access_line(server, "socket-7")["method"] == "WEBSOCKET"


def test_every_line_is_json_with_a_request_id(server):
    lines = log_lines(server)
    assert lines and all({"time", "level", "logger", "request_id", "message"} <= line.keys() for line in lines)
    assert any(line["logger"] == "uvicorn.error" and line["request_id"] == "-" for line in lines)  # outside requests


def test_what_a_model_call_logs_on_its_thread_carries_the_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RequestIdFilter())
    handler.setFormatter(logs.JsonFormatter())
    engine_log = logging.getLogger("test.engine")
    engine_log.addHandler(handler)
    engine_log.setLevel(logging.INFO)

    async def request(request_id: str) -> None:
        logs.request_id.set(request_id)  # as the request middleware does, in the request's task
        await lane.run(engine_log.info, "transcribing")

    async def scenario() -> None:
        await asyncio.gather(request("first"), request("second"))

    pool = DeadlinePool("test", 2)
    lane = Lane("the test model", pool=pool, capacity=2)
    try:
        asyncio.run(scenario())
    finally:
        pool.close()
        engine_log.removeHandler(handler)
    assert sorted(json.loads(line)["request_id"] for line in stream.getvalue().splitlines()) == ["first", "second"]


def test_a_500_carries_the_id_its_logged_traceback_has(tmp_path, caplog):
    app = create_app(Settings(data_dir=tmp_path))

    @app.get("/v1/bug")
    async def bug():  # stands in for any bug
        raise RuntimeError("a bug")

    caplog.handler.addFilter(logs.RequestIdFilter())
    response = TestClient(app).get("/v1/bug", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert response.headers["x-request-id"] == "bug-1"
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1 and logged[0].request_id == "bug-1"  # logged once, with its id
