"""Every turn that got a 200 survives `kill -9`; no half turn is ever stored."""

import concurrent.futures
import signal
import threading

import httpx
import pytest
from conftest import start_server, stop_server


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_kill_9_during_a_burst_loses_no_answered_turn(request, tmp_path_factory, database):
    database_url = request.getfixturevalue("postgres_url") if database == "postgresql" else None
    workdir = tmp_path_factory.mktemp(f"durable-{database}")
    server = start_server(workdir, database_url=database_url)
    headers = server.headers
    answered: list[dict] = []
    enough = threading.Event()

    def ask(i: int) -> None:
        try:
            r = httpx.post(
                f"{server.url}/v1/chat",
                headers=headers,
                timeout=120,
                json={"text": f"Give me one fact about the number {i}.", "max_tokens": 24},
            )
        except httpx.TransportError:
            return  # in flight when the server died: never answered, so nothing is owed
        if r.status_code == 200:
            answered.append(r.json())
            if len(answered) >= 3:
                enough.set()

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(ask, i) for i in range(10)]
        assert enough.wait(180), "the burst never got three answers"
        server.proc.send_signal(signal.SIGKILL)
        concurrent.futures.wait(futures)
    server.proc.wait()
    assert 3 <= len(answered) < 10, "the kill should land mid-burst"

    restarted = start_server(workdir, database_url=database_url)
    try:
        with httpx.Client(base_url=restarted.url, headers=headers, timeout=60) as client:
            for reply in answered:
                stored = client.get(f"/v1/conversations/{reply['conversation_id']}")
                assert stored.status_code == 200, stored.text
                messages = stored.json()["messages"]
                assert [m["role"] for m in messages] == ["user", "assistant"]
                assert messages[1]["id"] == reply["message_id"] and messages[1]["text"] == reply["reply"]
            for conversation in client.get("/v1/conversations", params={"limit": 100}).json()["data"]:
                roles = [m["role"] for m in client.get(f"/v1/conversations/{conversation['id']}").json()["messages"]]
                assert roles == ["user", "assistant"], roles  # complete turns only
    finally:
        stop_server(restarted)
