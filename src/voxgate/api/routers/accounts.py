"""Accounts: registration, login (JWT), API keys, and the user's own settings."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from voxgate import auth
from voxgate.api.deps import DatabaseDep, SettingsDep, UserDep, current_user
from voxgate.api.schemas import (
    ApiKeyOut,
    AuthConfig,
    CreatedApiKey,
    Credentials,
    NewApiKey,
    Registration,
    TokenOut,
    UserOut,
    UserSettings,
)
from voxgate.errors import Forbidden, Unauthorized
from voxgate.limits import Limits
from voxgate.store import repo
from voxgate.store.tables import User

router = APIRouter(tags=["accounts"])


async def registrar(request: Request, settings: SettingsDep, db: DatabaseDep) -> User | None:
    """Who is registering someone: nobody needed when registration is open, else an admin."""
    if settings.registration == "open" and "authorization" not in request.headers:
        return None
    user = await current_user(request, settings, None)  # the header is read, not the bearer dependency
    if settings.registration == "admin" and not user.is_admin:
        raise Forbidden("only an admin can create accounts on this server")
    return user


@router.post("/v1/auth/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: Registration, db: DatabaseDep, registered_by: Annotated[User | None, Depends(registrar)]
) -> UserOut:
    if body.is_admin and not (registered_by and registered_by.is_admin):
        raise Forbidden("only an admin can create admin accounts")
    async with db.session() as session, session.begin():
        user = await repo.create_user(session, body.username, body.password, is_admin=body.is_admin)
    return UserOut.model_validate(user)


@router.post("/v1/auth/login")
async def login(body: Credentials, db: DatabaseDep, request: Request, settings: SettingsDep) -> TokenOut:
    """A JWT for a username and password. Failed logins are limited per username and per
    client address (429 + Retry-After until the window ends, even for the right password)."""
    limits: Limits = request.app.state.limits
    address = request.client.host if request.client else ""
    limits.login_attempt(body.username, address)
    async with db.session() as session:
        user = await repo.user_by_name(session, body.username)
    # One answer, in the same time, for an unknown name and a wrong password, so names cannot be probed.
    if not await auth.verify_password(body.password, user.password_hash if user else None) or user is None:
        raise Unauthorized("wrong username or password", code="bad_credentials")
    limits.login_succeeded(body.username, address)
    token, expires = auth.issue_token(user.id, request.app.state.jwt_secret, settings.token_minutes)
    return TokenOut(access_token=token, expires_at=expires)


@router.get("/v1/auth/config")
async def auth_config(settings: SettingsDep) -> AuthConfig:
    """What a client needs before signing in, without credentials: whether it must sign in at all."""
    return AuthConfig(auth=settings.auth, registration=settings.registration)


@router.get("/v1/me")
async def me(user: UserDep) -> UserOut:
    return UserOut.model_validate(user)


@router.put("/v1/me/settings")
async def update_settings(body: UserSettings, user: UserDep, db: DatabaseDep) -> UserOut:
    async with db.session() as session, session.begin():
        await repo.get_persona(session, user, body.default_persona)  # 404 for an unknown persona
        row = await session.get_one(User, user.id)
        row.default_persona = body.default_persona
    return UserOut.model_validate(row)


@router.post("/v1/auth/keys", status_code=status.HTTP_201_CREATED)
async def create_key(body: NewApiKey, user: UserDep, db: DatabaseDep) -> CreatedApiKey:
    async with db.session() as session, session.begin():
        row, key = await repo.create_api_key(session, user, body.name)
    return CreatedApiKey(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.get("/v1/auth/keys")
async def list_keys(user: UserDep, db: DatabaseDep) -> list[ApiKeyOut]:
    async with db.session() as session:
        return [ApiKeyOut.model_validate(row) for row in await repo.list_api_keys(session, user)]


@router.delete("/v1/auth/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_key(key_id: str, user: UserDep, db: DatabaseDep) -> None:
    async with db.session() as session, session.begin():
        await repo.delete_api_key(session, user, key_id)
