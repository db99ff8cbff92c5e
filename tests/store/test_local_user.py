"""With auth off, processes (or tasks) starting at the same moment share one local admin."""

import asyncio

from voxgate import accounts
from voxgate.config import Settings


def test_the_local_user_created_at_the_same_moment_is_one_user(tmp_path):
    async def run() -> set[str]:
        db = await accounts.open_database(Settings(data_dir=tmp_path, auth="off"))
        try:
            users = await asyncio.gather(*(accounts.local_user(db) for _ in range(4)))
            return {user.id for user in users}
        finally:
            await db.close()

    assert len(asyncio.run(run())) == 1
