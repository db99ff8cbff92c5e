"""Limits against abuse: failed logins, requests per API key, conversations per user, body
sizes; argon2 off the event loop, and clients that hang up mid-body.

One server with small limits and short windows serves the module; a test that ends in a
429 uses names and client addresses (X-Forwarded-For, trusted from 127.0.0.1 as uvicorn
does by default) of its own, so the tests do not share a window.
"""

import asyncio
import concurrent.futures
import os
import secrets
import socket
import statistics
import time

import httpx
import pytest
from conftest import add_user, silence_wav, start_server, stop_server

WINDOW = 4  # seconds, for the login and API key windows
PER_USER, PER_ADDRESS, PER_KEY, CONVERSATIONS, JSON_BYTES = 3, 5, 10, 3, 64 * 1024
LIMITS = {
    "VOXGATE_LOGIN_WINDOW_SECONDS": str(WINDOW),
    "VOXGATE_LOGIN_FAILURES_PER_USER": str(PER_USER),
    "VOXGATE_LOGIN_FAILURES_PER_ADDRESS": str(PER_ADDRESS),
    "VOXGATE_API_KEY_WINDOW_SECONDS": str(WINDOW),
    "VOXGATE_API_KEY_REQUESTS": str(PER_KEY),
    "VOXGATE_MAX_CONVERSATIONS": str(CONVERSATIONS),
    "VOXGATE_MAX_JSON_BYTES": str(JSON_BYTES),
    "VOXGATE_WARMUP": "false",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = start_server(tmp_path_factory.mktemp("limits"), **LIMITS)
    yield started
    stop_server(started)


def new_user(server, *, admin: bool = False) -> tuple[str, str, str]:
    """A user of its own: (name, password, API key)."""
    name = f"u{secrets.token_hex(4)}"
    return name, *add_user(server.env, name, admin=admin)


def address() -> str:
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def login(server, name: str, password: str, client_address: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/auth/login",
        json={"username": name, "password": password},
        headers={"X-Forwarded-For": client_address},
        timeout=60,
    )


def assert_429(response: httpx.Response, code: str, window: int = WINDOW) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert response.json()["error"]["code"] == code
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window
    return retry_after


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Logins


@pytest.mark.parametrize("who", ["known", "unknown"])
def test_failed_logins_per_user_lock_even_the_right_password_until_the_window_ends(server, who):
    name, password, _ = new_user(server) if who == "known" else (f"nobody{secrets.token_hex(4)}", "", "")
    for _ in range(PER_USER):
        assert login(server, name, "wrong-password", address()).status_code == 401
    # From another address and with the right password: still refused, so guessing stops here.
    refused = login(server, name, password or "any-password", address())
    retry_after = assert_429(refused, "too_many_logins")
    assert "username" in refused.json()["error"]["message"]
    if who == "known":  # unknown names count the same, so the 429 does not tell them apart
        time.sleep(retry_after)
        assert login(server, name, password, address()).status_code == 200


def test_failed_logins_per_address(server):
    name, password, _ = new_user(server)
    attacker = address()
    for _ in range(PER_ADDRESS):  # a different name each time: no username reaches its own limit
        assert login(server, f"nobody{secrets.token_hex(4)}", "wrong-password", attacker).status_code == 401
    refused = login(server, name, password, attacker)
    assert_429(refused, "too_many_logins")
    assert "address" in refused.json()["error"]["message"]
    assert login(server, name, password, address()).status_code == 200


def test_successful_logins_do_not_use_up_the_limits(server):
    name, password, _ = new_user(server)
    same_address = address()
    for _ in range(PER_USER + PER_ADDRESS):
        assert login(server, name, password, same_address).status_code == 200


def test_unknown_usernames_take_as_long_as_known_ones(server):
    name, password, _ = new_user(server)

    def seconds(username: str, pw: str) -> float:
        start = time.perf_counter()
        login(server, username, pw, address())
        return time.perf_counter() - start

    seconds(f"nobody{secrets.token_hex(4)}", "wrong-password")  # the first one also makes the dummy hash
    known = statistics.median(seconds(name, password) for _ in range(5))
    unknown = statistics.median(seconds(f"nobody{secrets.token_hex(4)}", "wrong-password") for _ in range(5))
    # Before: 157 ms for a known user, 3.5 ms for an unknown one.
    assert unknown > 0.6 * known, (known, unknown)


def test_healthz_stays_fast_during_parallel_logins(server):
    admin = new_user(server, admin=True)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        admin_token = client.post(
            "/v1/auth/login", json={"username": admin[0], "password": admin[1]}, headers={"X-Forwarded-For": address()}
        ).json()["access_token"]
        users = [(f"u{secrets.token_hex(4)}", secrets.token_urlsafe(12)) for _ in range(22)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            registered = pool.map(
                lambda user: client.post(
                    "/v1/auth/register", headers=bearer(admin_token), json={"username": user[0], "password": user[1]}
                ),
                users,
            )
            assert [r.status_code for r in registered] == [201] * len(users)

    async def logins() -> list[int]:  # one thread of the test: its own load hardly delays the probe
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/v1/auth/login",
                        json={"username": name, "password": password},
                        headers={"X-Forwarded-For": address()},
                    )
                    for name, password in (users[i % len(users)] for i in range(64))
                )
            )  # at most 3 per user
        return [r.status_code for r in responses]

    times = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool, httpx.Client(timeout=30) as probe:
        statuses = pool.submit(asyncio.run, logins())
        while not statuses.done():
            start = time.perf_counter()
            assert probe.get(f"{server.url}/healthz").status_code == 200
            times.append(time.perf_counter() - start)
        assert statuses.result() == [200] * 64  # each one ran argon2
    assert len(times) >= 5
    # Before: 1.26 s while argon2 ran on the event loop.
    assert max(times) < 0.5, sorted(times)[-5:]  # after: at most 0.13 s, median 2 ms


# API keys


def test_requests_per_api_key(server):
    name, password, key = new_user(server)
    token = login(server, name, password, address()).json()["access_token"]
    other_key = httpx.post(f"{server.url}/v1/auth/keys", json={"name": "other"}, headers=bearer(token)).json()["key"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(PER_KEY):
            assert client.get("/v1/me", headers=bearer(key)).status_code == 200
        retry_after = assert_429(client.get("/v1/me", headers=bearer(key)), "rate_limited")
        assert client.post("/v1/chat", json={"text": "hi"}, headers=bearer(key)).status_code == 429
        # The limit is per key: the user's other key and access tokens still work.
        assert client.get("/v1/me", headers=bearer(other_key)).status_code == 200
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200
        time.sleep(retry_after)
        assert client.get("/v1/me", headers=bearer(key)).status_code == 200


# Conversations


def test_conversations_per_user(server):
    name, password, _ = new_user(server)
    token = login(server, name, password, address()).json()["access_token"]
    with httpx.Client(base_url=server.url, headers=bearer(token), timeout=30) as client:
        created = [client.post("/v1/conversations", json={"title": f"t{i}"}) for i in range(CONVERSATIONS)]
        assert [r.status_code for r in created] == [201] * CONVERSATIONS
        refused = client.post("/v1/conversations", json={"title": "one too many"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "conversation_quota"
        assert str(CONVERSATIONS) in refused.json()["error"]["message"]
        assert len(client.get("/v1/conversations").json()["data"]) == CONVERSATIONS
        # A turn that would start one is refused before any model runs; one in a kept conversation is not.
        turn = client.post("/v1/chat", json={"text": "Say hi.", "max_tokens": 5})
        assert turn.status_code == 403 and turn.json()["error"]["code"] == "conversation_quota", turn.text
        kept = client.post(
            "/v1/chat", json={"text": "Say hi.", "max_tokens": 5, "conversation_id": created[1].json()["id"]}
        )
        assert kept.status_code == 200, kept.text
        # Another user has a quota of their own.
        other, other_password, _ = new_user(server)
        other_token = login(server, other, other_password, address()).json()["access_token"]
        assert client.post("/v1/conversations", json={}, headers=bearer(other_token)).status_code == 201
        # Deleting one makes room again.
        assert client.delete(f"/v1/conversations/{created[0].json()['id']}").status_code == 204
        assert client.post("/v1/conversations", json={"title": "again"}).status_code == 201


# Body sizes


@pytest.fixture(scope="module")
def token(server) -> str:
    name, password, _ = new_user(server)
    return login(server, name, password, address()).json()["access_token"]


JSON_ROUTES = [
    "/v1/chat",
    "/v1/auth/login",
    "/v1/auth/register",
    "/v1/personas",
    "/v1/conversations",
    "/v1/chat/completions",
    "/v1/audio/speech",
    "/v1/models/import",
]


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("chunked", [False, True])
def test_json_bodies_over_the_limit_get_413(server, token, path, chunked):
    body = b'{"pad": "' + b"x" * JSON_BYTES + b'"}'
    content = iter([body[:1000], body[1000:]]) if chunked else body
    r = httpx.post(
        f"{server.url}{path}",
        content=content,
        timeout=30,
        headers={"content-type": "application/json", **bearer(token)},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large"
    assert f"{JSON_BYTES} byte limit" in r.json()["error"]["message"]


def test_json_bodies_under_the_limit_are_read(server, token):
    r = httpx.post(
        f"{server.url}/v1/chat", json={"text": "hi", "pad": "x" * (JSON_BYTES - 100)}, headers=bearer(token), timeout=30
    )
    assert r.status_code == 422, r.text  # read and judged: `pad` is no field


def test_uploads_may_be_larger_than_json_bodies(server, token):
    recording = silence_wav(5.0)
    assert len(recording) > 2 * JSON_BYTES
    for path, field in (("/v1/chat", "audio"), ("/v1/audio/transcriptions", "file")):
        r = httpx.post(f"{server.url}{path}", files={field: ("q.wav", recording)}, headers=bearer(token), timeout=60)
        assert r.status_code == 400 and r.json()["error"]["code"] == "no_speech", r.text  # read and listened to


def chunked_multipart(field: str, megabytes: int):
    """A multipart form with one file of `megabytes` MiB, sent in chunks (no Content-Length)."""
    boundary = "limitsboundary"
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    for _ in range(megabytes):
        yield b"\0" * (1024 * 1024)
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize(("path", "field"), [("/v1/audio/transcriptions", "file"), ("/v1/chat", "audio")])
def test_chunked_upload_over_the_limit_gets_413(server, token, path, field):
    r = httpx.post(
        f"{server.url}{path}",
        content=chunked_multipart(field, 27),
        timeout=60,
        headers={"content-type": "multipart/form-data; boundary=limitsboundary", **bearer(token)},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "too_large"


# Clients that leave


def hang_up_mid_body(url: str, path: str, token: str, content_type: str, first_bytes: bytes) -> None:
    """Send headers promising a larger body and part of it, then close the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(first_bytes) + 10_000}\r\n\r\n"
            ).encode()
            + first_bytes
        )


def test_clients_that_hang_up_or_are_refused_mid_body_are_no_error(tmp_path):
    server = start_server(tmp_path, VOXGATE_WARMUP="false")
    try:
        token = server.key
        # Refused mid-body: the route reading it sees the client leave.
        over = httpx.post(
            f"{server.url}/v1/chat",
            content=iter([b'{"text": "', b"x" * (2 << 20), b'"}']),
            headers={"content-type": "application/json", **bearer(token)},
            timeout=30,
        )
        assert over.status_code == 413, over.text
        form = (
            b'--b\r\nContent-Disposition: form-data; name="audio"; filename="q.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + os.urandom(2000)
        )
        hang_up_mid_body(server.url, "/v1/chat", token, "application/json", b'{"text": "hel')
        hang_up_mid_body(server.url, "/v1/chat", token, "multipart/form-data; boundary=b", form)
        hang_up_mid_body(
            server.url,
            "/v1/audio/transcriptions",
            token,
            "multipart/form-data; boundary=b",
            form.replace(b'name="audio"', b'name="file"'),
        )
        # The server goes on serving, then stops with everything handled.
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        stop_server(server)
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert "Finished server process" in log, log  # the whole log: the server stopped
    assert "Traceback" not in log and "unexpected error" not in log and "Exception in ASGI" not in log, log
