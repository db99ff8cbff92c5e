"""Accounts: registration, login, API keys, and every way a token can be wrong."""

import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from conftest import TEST_JWT_SECRET, add_user


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def alice(server):
    """A second, non-admin user made with the CLI: (password, API key, username)."""
    name = f"alice-{int(time.time() * 1000)}"
    password, key = add_user(server.env, name)
    return password, key, name


def test_login_gives_a_working_expiring_jwt(server, alice):
    password, _, name = alice
    r = httpx.post(f"{server.url}/v1/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert datetime.fromisoformat(r.json()["expires_at"]) > datetime.now(UTC)
    me = httpx.get(f"{server.url}/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.json()["username"] == name and me.json()["is_admin"] is False


@pytest.mark.parametrize("who", ["unknown", "wrong password"])
def test_bad_credentials(server, alice, who):
    name = alice[2] if who == "wrong password" else "nobody-here"
    r = httpx.post(f"{server.url}/v1/auth/login", json={"username": name, "password": "wrong-password"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "wrong username or password"


def _token(**claims) -> dict:
    return {"sub": "x", "exp": datetime.now(UTC) + timedelta(minutes=5), **claims}


@pytest.mark.parametrize(
    ("case", "headers", "code"),
    [
        ("missing", {}, "missing_token"),
        ("not bearer", {"Authorization": "Basic dXNlcjpwdw=="}, "malformed_token"),
        ("empty bearer", {"Authorization": "Bearer"}, "malformed_token"),
        ("garbage", bearer("not.a.jwt"), "invalid_token"),
        ("unknown api key", bearer("vg_" + "x" * 43), "invalid_api_key"),
        (
            "wrong signature",
            bearer(jwt.encode(_token(), "another-secret-of-a-healthy-length-0123456789", algorithm="HS256")),
            "invalid_token",
        ),
        ("alg none", bearer(jwt.encode(_token(), None, algorithm="none")), "invalid_token"),
        (
            "expired",
            bearer(
                jwt.encode(_token(exp=datetime.now(UTC) - timedelta(minutes=1)), TEST_JWT_SECRET, algorithm="HS256")
            ),
            "token_expired",
        ),
        ("no expiry", bearer(jwt.encode({"sub": "x"}, TEST_JWT_SECRET, algorithm="HS256")), "invalid_token"),
    ],
)
def test_bad_tokens_get_401(server, case, headers, code):
    for path in ("/v1/me", "/v1/conversations", "/v1/models"):
        r = httpx.get(f"{server.url}{path}", headers=headers)
        assert r.status_code == 401, (case, path, r.text)
        assert r.json()["error"]["code"] == code
        assert r.headers["www-authenticate"] == "Bearer"


def test_chat_needs_a_token(server):
    r = httpx.post(f"{server.url}/v1/chat", json={"text": "hi"})
    assert r.status_code == 401
    # A client learns that it must sign in without a failed request.
    assert httpx.get(f"{server.url}/v1/auth/config").json() == {"auth": "on", "registration": "admin"}


def test_api_keys_are_shown_once_listed_and_revocable(server, alice):
    _, key, _ = alice
    created = httpx.post(f"{server.url}/v1/auth/keys", json={"name": "laptop"}, headers=bearer(key))
    assert created.status_code == 201
    new_key = created.json()["key"]
    assert httpx.get(f"{server.url}/v1/me", headers=bearer(new_key)).status_code == 200
    listed = httpx.get(f"{server.url}/v1/auth/keys", headers=bearer(key)).json()
    assert {"laptop", "first key"} <= {k["name"] for k in listed}
    assert all("key" not in k for k in listed)
    laptop = next(k for k in listed if k["name"] == "laptop")
    assert laptop["last_used_at"] is not None
    assert httpx.delete(f"{server.url}/v1/auth/keys/{laptop['id']}", headers=bearer(key)).status_code == 204
    assert httpx.get(f"{server.url}/v1/me", headers=bearer(new_key)).status_code == 401


def test_another_users_key_id_is_a_404(server, alice):
    admin_keys = httpx.get(f"{server.url}/v1/auth/keys", headers=server.headers).json()
    r = httpx.delete(f"{server.url}/v1/auth/keys/{admin_keys[0]['id']}", headers=bearer(alice[1]))
    assert r.status_code == 404


def test_only_admins_register_users(server, alice):
    body = {"username": f"bob-{int(time.time() * 1000)}", "password": "a-long-password"}
    assert httpx.post(f"{server.url}/v1/auth/register", json=body, headers=bearer(alice[1])).status_code == 403
    assert httpx.post(f"{server.url}/v1/auth/register", json=body).status_code == 401
    r = httpx.post(f"{server.url}/v1/auth/register", json=body, headers=server.headers)
    assert r.status_code == 201 and r.json()["is_admin"] is False
    assert httpx.post(f"{server.url}/v1/auth/register", json=body, headers=server.headers).status_code == 409
    login = httpx.post(f"{server.url}/v1/auth/login", json=body)
    assert login.status_code == 200
