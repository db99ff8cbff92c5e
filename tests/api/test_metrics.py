"""GET /metrics: what an operator scrapes after real traffic: requests by route template and
status, errors by code, lanes and a full lane, loaded models, realtime sessions; and the
turn stage histograms fed with the timings of real turns.

The module's server has one LLM place (one slot, no queue), so a second turn while one is
generating is refused at once, and /metrics needs a token.
"""

import json
import secrets
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from conftest import start_server, stop_server
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

TOKEN = "metrics-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = start_server(
        tmp_path_factory.mktemp("metrics"),
        VOXGATE_METRICS_TOKEN=TOKEN,
        VOXGATE_LLM_SLOTS="1",
        VOXGATE_QUEUE_SIZE="0",
        VOXGATE_LOGIN_FAILURES_PER_USER="2",
    )
    yield started
    stop_server(started)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as c:
        yield c


Samples = dict[tuple[str, frozenset], float]


def scrape(server) -> Samples:
    response = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(server, check: Callable[[Samples], bool], what: str, seconds: float = 60) -> Samples:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check(samples := scrape(server)):
            return samples
        time.sleep(0.1)
    pytest.fail(f"metrics never showed {what}")


def test_metrics_need_the_token_when_one_is_set(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_metrics_token"
    answered = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert answered.status_code == 200 and answered.headers["content-type"].startswith("text/plain")
    assert value(scrape(server), "process_resident_memory_bytes") > 0  # the process's own metrics too


def test_requests_are_counted_by_route_template_and_status(server, client):
    before = scrape(server)
    assert client.post("/v1/chat", json={"text": "Say hello.", "max_tokens": 8}).status_code == 200
    ids = [secrets.token_hex(16) for _ in range(2)]
    for conversation_id in ids:
        assert client.get(f"/v1/conversations/{conversation_id}").status_code == 404
    after = scrape(server)
    chat = {"method": "POST", "route": "/v1/chat"}
    assert (
        value(after, "voxgate_http_requests_total", **chat, status="200")
        == value(before, "voxgate_http_requests_total", **chat, status="200") + 1
    )
    assert (
        value(after, "voxgate_http_request_duration_seconds_count", **chat)
        == value(before, "voxgate_http_request_duration_seconds_count", **chat) + 1
    )
    one = {"method": "GET", "route": "/v1/conversations/{conversation_id}", "status": "404"}
    assert value(after, "voxgate_http_requests_total", **one) == value(before, "voxgate_http_requests_total", **one) + 2
    assert not any(i in str(labels) for _, labels in after for i in ids), "one series per id"


def test_a_turn_in_flight_shows_in_the_lane_and_a_full_lane_is_counted_as_503_busy(server, client):
    before = scrape(server)
    first_text = threading.Event()
    streamed: list[str] = []

    def stream() -> None:
        with client.stream(
            "POST", "/v1/chat", json={"text": "Count from one to fifty in words.", "stream": True, "max_tokens": 300}
        ) as response:
            for line in response.iter_lines():
                streamed.append(line)
                if line == "event: text":
                    first_text.set()

    streaming = threading.Thread(target=stream)
    streaming.start()
    try:
        assert first_text.wait(120), streamed
        during = scrape(server)
        assert value(during, "voxgate_lane_in_flight", lane="llm") == 1
        assert value(during, "voxgate_lane_capacity", lane="llm") == 1
        refused = client.post("/v1/chat", json={"text": "Hello?"})
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "busy"
    finally:
        streaming.join(180)
    after = wait_for(server, lambda s: value(s, "voxgate_lane_in_flight", lane="llm") == 0, "the LLM lane free")
    assert (
        value(after, "voxgate_http_errors_total", status="503", code="busy")
        == value(before, "voxgate_http_errors_total", status="503", code="busy") + 1
    )
    busy = {"method": "POST", "route": "/v1/chat", "status": "503"}
    requests = "voxgate_http_requests_total"
    assert value(after, requests, **busy) == value(before, requests, **busy) + 1


def test_too_many_failed_logins_are_counted_as_429(server, client):
    before = value(scrape(server), "voxgate_http_errors_total", status="429", code="too_many_logins")
    statuses = [
        httpx.post(
            f"{server.url}/v1/auth/login", json={"username": "nobody", "password": "wrong-password"}, timeout=30
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]
    assert value(scrape(server), "voxgate_http_errors_total", status="429", code="too_many_logins") == before + 1


def test_realtime_sessions_are_a_gauge(server):
    assert value(scrape(server), "voxgate_realtime_sessions") == 0
    with connect(
        f"{server.url.replace('http', 'ws')}/v1/realtime",
        subprotocols=["voxgate", f"bearer.{server.key}"],
        open_timeout=10,
    ) as ws:
        ws.send(json.dumps({"type": "session.start"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "session.ready"
        assert value(scrape(server), "voxgate_realtime_sessions") == 1
    wait_for(server, lambda s: value(s, "voxgate_realtime_sessions") == 0, "the session closed", seconds=10)


def test_loaded_models_are_listed(server, client):
    defaults = client.get("/readyz").json()["models"].values()
    samples = scrape(server)
    assert all(value(samples, "voxgate_model_loaded", model=name) == 1 for name in defaults)


def _stage(samples: Samples, name: str) -> tuple[float, float]:
    """(count, sum) of a turn stage's histogram."""
    return (
        value(samples, "voxgate_turn_stage_seconds_count", stage=name),
        value(samples, "voxgate_turn_stage_seconds_sum", stage=name),
    )


def test_the_timings_of_real_turns_become_stage_histograms(server, client, france_wav):
    before = scrape(server)
    with client.stream(
        "POST",
        "/v1/chat",
        files={"audio": ("q.wav", france_wav)},
        data={"reply_as": "voice", "stream": "true", "max_tokens": "40"},
    ) as response:
        done = json.loads([line for line in response.iter_lines() if line.startswith("data: ")][-1][6:])
    timings = done["timings"]
    assert all(
        timings[k] is not None
        for k in ("decode", "stt", "llm", "tts", "tts_first", "first_text", "first_audio", "total")
    )
    after = scrape(server)
    stages = {
        "decode": "decode",
        "stt": "stt",
        "llm": "llm",
        "tts": "tts",
        "tts_first": "tts_first_chunk",
        "first_audio": "first_audio",
        "total": "total",
    }
    for key, stage in stages.items():
        (count, total), (count_before, total_before) = _stage(after, stage), _stage(before, stage)
        assert count == count_before + 1, stage
        assert total - total_before == pytest.approx(timings[key] / 1000), stage
    first_token = _stage(after, "llm_first_token")[1] - _stage(before, "llm_first_token")[1]
    assert first_token == pytest.approx((timings["first_text"] - timings["decode"] - timings["stt"]) / 1000)
    client.post("/v1/chat", json={"text": "Say hi.", "max_tokens": 8}).raise_for_status()
    text_turn = scrape(server)  # a text turn: no decode, STT or TTS stage, nothing recorded for them
    assert _stage(text_turn, "llm")[0] == _stage(after, "llm")[0] + 1
    assert _stage(text_turn, "stt")[0] == _stage(after, "stt")[0]
