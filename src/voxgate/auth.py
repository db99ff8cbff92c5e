"""Passwords, API keys and access tokens.

Passwords are hashed with argon2 (slow on purpose, so in a thread, never on the event
loop). API keys are 256-bit random strings, so a plain sha256 is enough to store them
safely and lets a request find its key with one indexed lookup. Access tokens are HS256
JWTs with an expiry; only HS256 is accepted, which also rules out `alg: none`.
"""

import asyncio
import functools
import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash

from voxgate.errors import Unauthorized

API_KEY_PREFIX = "vg_"
_passwords = PasswordHash.recommended()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_passwords.hash, password)


@functools.cache
def _dummy_hash() -> str:
    return _passwords.hash(secrets.token_urlsafe(16))


def _verify(password: str, password_hash: str | None) -> bool:
    return _passwords.verify(password, password_hash or _dummy_hash()) and password_hash is not None


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether `password` matches. With no hash (no such user) it is checked against a dummy
    hash all the same, so an unknown username takes as long as a known one."""
    return await asyncio.to_thread(_verify, password, password_hash)


def new_password() -> str:
    return secrets.token_urlsafe(12)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_token(user_id: str, secret: str, minutes: int) -> tuple[str, datetime]:
    expires = datetime.now(UTC) + timedelta(minutes=minutes)
    return jwt.encode({"sub": user_id, "exp": expires}, secret, algorithm="HS256"), expires


def user_id_from_token(token: str, secret: str) -> str:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the access token has expired; log in again", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the access token is malformed or not signed by this server", code="invalid_token") from None
    return claims["sub"]
