"""A throwaway PostgreSQL server for the persistence tests.

Needs Debian's `postgresql` package (server binaries in /usr/lib/postgresql/NN/bin);
`make test` installs it. Each `throwaway_postgres()` gets its own cluster, port and
password, so tests never touch (or depend on) a system-wide server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from processes import free_port

USER = "voxgate"
DBNAME = "voxgate_test"


def _server_bin_dir() -> Path:
    # Look for initdb, not just the directory: postgresql-client-NN alone also
    # creates /usr/lib/postgresql/NN/bin (psql, createdb, ...) without a server.
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "install Debian's `postgresql` package (`make test` installs it)."
        )
    return max(found, key=lambda d: tuple(int(x) for x in d.parent.name.split(".")))


def _run(cmd: list[str], **kwargs) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")


@contextmanager
def throwaway_postgres(base_dir: Path) -> Iterator[str]:
    """Start a private PostgreSQL cluster on a free local port, yield an SQLAlchemy URL
    'postgresql+asyncpg://USER:PASSWORD@127.0.0.1:PORT/DBNAME', and tear it all down.

    The cluster lives in a fresh short dir in the system temp dir rather than in
    base_dir: as root, the server must run as `postgres`, which cannot enter pytest's
    0700 tmp dirs, and deep pytest paths can exceed the 107-byte unix socket path limit.
    The server log is copied to base_dir/postgres.log at the end for post-mortems.
    """
    bin_dir = _server_bin_dir()
    # PostgreSQL refuses to run as root, so drop to the user the Debian package creates.
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    cluster = Path(tempfile.mkdtemp(prefix="voxgate-pg-"))
    data, log, pwfile = cluster / "data", cluster / "server.log", cluster / "pwfile"
    password, port = secrets.token_hex(16), free_port()  # hex: safe in a URL unquoted
    pwfile.write_text(password + "\n")
    if as_pg:
        for path in (cluster, pwfile):
            shutil.chown(path, "postgres", "postgres")

    def run(tool: str, *args: str) -> None:
        # cwd=cluster: the postgres user may not be allowed into the caller's cwd.
        _run([*as_pg, str(bin_dir / tool), *args], cwd=cluster)

    try:
        run(
            "initdb",
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        # Appending keeps the file owned by postgres; durability is pointless for tests.
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{cluster}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        try:
            run("pg_ctl", "start", "-D", str(data), "-l", str(log), "-w", "-t", "60")
        except RuntimeError as exc:
            server_log = log.read_text() if log.exists() else "(no server log)"
            raise RuntimeError(f"{exc}\n--- server log ---\n{server_log}") from None
        # Over TCP with the password, i.e. exactly the way the tests will connect.
        _run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DBNAME],
            env={**os.environ, "PGPASSWORD": password},
        )
        yield f"postgresql+asyncpg://{USER}:{password}@127.0.0.1:{port}/{DBNAME}"
    finally:
        try:
            # postmaster.pid exists from launch until shutdown, even if `pg_ctl -w` timed out.
            if (data / "postmaster.pid").exists():
                run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w")
        finally:
            if log.exists():
                shutil.copyfile(log, Path(base_dir) / "postgres.log")
            shutil.rmtree(cluster, ignore_errors=True)
