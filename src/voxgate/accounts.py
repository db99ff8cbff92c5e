"""Start-up tasks around accounts: the database, the token secret, the first admin."""

import os
import secrets

from voxgate import auth
from voxgate.config import Settings
from voxgate.errors import Conflict
from voxgate.store import repo
from voxgate.store.db import Database
from voxgate.store.tables import User

LOCAL_USER = "local"


async def open_database(settings: Settings) -> Database:
    """Connect and migrate to the newest schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database)
    await db.migrate()
    return db


def token_secret(settings: Settings) -> str:
    """The configured JWT key, or one generated once and kept (mode 600) in the data dir."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = settings.data_dir / "jwt-secret"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path.read_text().strip()


async def local_user(db: Database) -> User:
    """The single admin everyone is served as when auth is off."""
    try:
        async with db.session() as session, session.begin():
            return await repo.user_by_name(session, LOCAL_USER) or await repo.create_user(
                session, LOCAL_USER, auth.new_password(), is_admin=True
            )
    except Conflict:  # another replica starting at the same moment created it
        async with db.session() as session:
            user = await repo.user_by_name(session, LOCAL_USER)
        assert user is not None, "the local user was created and deleted at once"
        return user


async def add_user(db: Database, username: str, *, is_admin: bool) -> tuple[User, str, str]:
    """Create a user with a random password and a first API key; returns both secrets."""
    password = auth.new_password()
    async with db.session() as session, session.begin():
        user = await repo.create_user(session, username, password, is_admin=is_admin)
        _, key = await repo.create_api_key(session, user, "first key")
    return user, password, key


async def first_admin(db: Database) -> tuple[User, str, str] | None:
    """On an empty database, create `admin` so a newcomer is never locked out."""
    async with db.session() as session:
        if await repo.count_users(session):
            return None
    try:
        return await add_user(db, "admin", is_admin=True)
    except Conflict:  # another replica starting at the same moment created it
        return None
