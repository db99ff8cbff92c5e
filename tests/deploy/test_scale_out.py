"""Two voxgate replicas behind Debian's nginx, run the way docs/deployment.md (section 4) says.

The replicas share one PostgreSQL, one JWT secret and one llama.cpp server (the remote LLM),
and start together on an empty database. nginx runs deploy/nginx.conf itself, rendered the
way the docs render it, as an unprivileged process in a directory of its own. Its access log
says which replica served each request.
"""

import asyncio
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template

import httpx
import pytest
from conftest import TEST_JWT_SECRET, Server, add_user, stop_server, words
from pg_server import throwaway_postgres
from processes import free_port, wait_until_serving
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.sync.client import connect

NGINX = "/usr/sbin/nginx"  # Debian's `nginx` package; `make test` installs it
TEMPLATE = Path(__file__).parents[2] / "deploy" / "nginx.conf"
DOCS = Path(__file__).parents[2] / "docs" / "deployment.md"  # shows TEMPLATE
TIMEOUT = 120


@dataclass
class Replica:
    server: Server
    address: str  # host:port, as nginx names it
    log: Path


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Iterator[str]:
    """A PostgreSQL server of this module's own: the replicas must find its database empty."""
    with throwaway_postgres(tmp_path_factory.mktemp("scale-out-postgres")) as url:
        yield url


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, database, llama_url) -> Iterator[list[Replica]]:
    """Two `voxgate serve` started at the same moment on the empty database, auth on."""
    workdir = tmp_path_factory.mktemp("replicas")
    shared = {
        **os.environ,
        "VOXGATE_DATABASE_URL": database,
        "VOXGATE_JWT_SECRET": TEST_JWT_SECRET,
        "VOXGATE_LLM_BACKEND": "openai",
        "VOXGATE_LLM_URL": llama_url,
        "VOXGATE_LLM_MODEL": "qwen-remote",
        "VOXGATE_THREADS": "1",
    }  # two replicas and the LLM share this machine's cores
    started = []
    for name in ("a", "b"):
        port, env, log = free_port(), {**shared, "VOXGATE_DATA_DIR": str(workdir / name)}, workdir / f"{name}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "voxgate", "serve", "--port", str(port)],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        started.append(Replica(Server(proc, f"http://127.0.0.1:{port}", env, None), f"127.0.0.1:{port}", log))
    try:
        for replica in started:
            wait_until_serving(replica.server.proc, f"{replica.server.url}/readyz", replica.log, "a replica", 180)
        # The first admin's key is printed once, by whichever replica created the account.
        keys = [key for r in started for key in re.findall(r"API key:\s+(\S+)", r.log.read_text())]
        for replica in started:
            replica.server.key = keys[0] if keys else None
        yield started
    finally:
        for replica in started:
            stop_server(replica.server)


@dataclass
class Served:
    """One request in the balancer's access log."""

    request: str  # e.g. "POST /v1/chat HTTP/1.1"
    status: int
    upstreams: list[str]  # the replicas tried, in order: more than one when nginx retried


@dataclass
class Balancer:
    url: str
    headers: dict[str, str]  # the first admin's key
    access_log: Path

    def mark(self) -> int:
        """Where the access log ends now: `served(..., since=mark)` reads what comes after."""
        return self.access_log.stat().st_size

    def served(self, request: str, since: int, count: int = 0, until: int | None = None) -> list[Served]:
        """The requests starting with `request` (e.g. "POST /v1/chat") logged after `since` (up to
        `until`), once there are `count` (nginx logs a request just after its response, so a
        client can be a moment ahead of the log)."""
        deadline = time.monotonic() + 10
        while True:
            with self.access_log.open("rb") as f:
                f.seek(since)
                lines = f.read(None if until is None else until - since).decode().splitlines()
            served = [
                Served(m["request"], int(m["status"]), m["upstreams"].split(", "))
                for m in map(LOG_LINE.search, lines)
                if m["request"].startswith(request)
            ]
            if len(served) >= count:
                return served
            assert time.monotonic() < deadline, f"the balancer logged {len(served)} of {count} {request}: {lines}"
            time.sleep(0.05)


LOG_LINE = re.compile(r'"(?P<request>[^"]*)" (?P<status>\d+) \d+ upstream=(?P<upstreams>.*?) upstream_status=')


@pytest.fixture(scope="module")
def balancer(replicas) -> Iterator[Balancer]:
    """nginx running deploy/nginx.conf in front of the replicas."""
    # A short fresh dir in the system temp dir that an unprivileged user may enter (as in
    # pg_server.py): run as root, nginx runs as www-data, which cannot enter pytest's dirs.
    home = Path(tempfile.mkdtemp(prefix="voxgate-nginx-"))
    port = free_port()
    # What `envsubst '$LISTEN $REPLICA_A $REPLICA_B $LOG_DIR'` does in docs/deployment.md.
    (home / "voxgate.conf").write_text(
        Template(TEMPLATE.read_text()).safe_substitute(
            LISTEN=f"127.0.0.1:{port}", REPLICA_A=replicas[0].address, REPLICA_B=replicas[1].address, LOG_DIR=home
        )
    )
    # What Debian's /etc/nginx/nginx.conf puts around conf.d/, with every path in `home`.
    (home / "nginx.conf").write_text(
        f"worker_processes 1;\npid {home}/nginx.pid;\nevents {{ worker_connections 512; }}\n"
        f"http {{\n  client_body_temp_path {home}/body;\n  proxy_temp_path {home}/proxy;\n"
        f"  fastcgi_temp_path {home}/fastcgi;\n  uwsgi_temp_path {home}/uwsgi;\n  scgi_temp_path {home}/scgi;\n"
        f"  include {home}/voxgate.conf;\n}}\n"
    )
    as_user = {"user": "www-data", "group": "www-data"} if os.geteuid() == 0 else {}
    if as_user:
        shutil.chown(home, **as_user)
    output = replicas[0].log.parent / "nginx.out"
    proc = subprocess.Popen(
        [NGINX, "-p", str(home), "-c", str(home / "nginx.conf"), "-e", str(home / "error.log"), "-g", "daemon off;"],
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
        **as_user,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(proc, f"{url}/healthz", output, "nginx", 30)
        yield Balancer(url, replicas[0].server.headers, home / "voxgate-access.log")
    finally:
        proc.terminate()  # fast shutdown: the master stops its worker
        proc.wait(timeout=30)
        for name in ("voxgate-access.log", "error.log", "voxgate.conf"):  # for post-mortems
            if (home / name).exists():
                shutil.copyfile(home / name, output.parent / f"nginx-{name}")
        shutil.rmtree(home, ignore_errors=True)


def test_the_documented_nginx_config_is_the_one_tested():
    config = TEMPLATE.read_text()
    assert config[config.index("upstream voxgate {") :] in DOCS.read_text()


def test_replicas_started_together_on_an_empty_database_create_one_admin(replicas):
    banners = [r.log.read_text().count("first admin account created") for r in replicas]
    assert sorted(banners) == [0, 1], banners  # both migrated and serve; one created the admin
    for replica in replicas:
        me = httpx.get(f"{replica.server.url}/v1/me", headers=replica.server.headers, timeout=TIMEOUT)
        assert me.status_code == 200 and me.json()["username"] == "admin", me.text


MIGRATE = """
import asyncio, sys
from voxgate.store.db import Database

async def main():
    db = Database(sys.argv[1])
    async with db.engine.connect():  # connected first, so that the migrations start together
        pass
    print("connected", flush=True)
    sys.stdin.readline()
    await db.migrate()
    await db.close()

asyncio.run(main())
"""


def test_migrations_run_by_several_processes_at_once_all_succeed(database):
    url = f"{database.rsplit('/', 1)[0]}/voxgate_migrate"

    async def run(sql: str, on: str = database):
        engine = create_async_engine(on, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                result = await connection.execute(text(sql))
                return result.all() if result.returns_rows else None
        finally:
            await engine.dispose()

    asyncio.run(run("CREATE DATABASE voxgate_migrate"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline() == "connected\n", proc.stdout.read()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=TIMEOUT)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0, 0], "\n".join(outputs)
    assert len(asyncio.run(run("SELECT version_num FROM alembic_version", on=url))) == 1


def test_the_balancer_sends_requests_to_both_replicas_in_turn(balancer, replicas):
    since = balancer.mark()
    for _ in range(6):
        me = httpx.get(f"{balancer.url}/v1/me", headers=balancer.headers, timeout=TIMEOUT)
        assert me.status_code == 200, me.text
    upstreams = [s.upstreams for s in balancer.served("GET /v1/me", since, 6)]
    assert sorted(upstreams[:2]) == sorted([r.address] for r in replicas) and upstreams == upstreams[:2] * 3, upstreams


def test_a_conversation_and_a_token_carry_over_to_the_other_replica(replicas):
    (a, b) = (r.server for r in replicas)
    password, _ = add_user(a.env, "ada")
    login = httpx.post(f"{a.url}/v1/auth/login", json={"username": "ada", "password": password}, timeout=TIMEOUT)
    assert login.status_code == 200, login.text
    token = {"Authorization": f"Bearer {login.json()['access_token']}"}  # signed by replica a

    first = httpx.post(
        f"{a.url}/v1/chat",
        headers=token,
        timeout=TIMEOUT,
        json={"text": "My name is Ada.", "temperature": 0, "max_tokens": 30},
    )
    assert first.status_code == 200, first.text
    conversation = first.json()["conversation_id"]
    second = httpx.post(
        f"{b.url}/v1/chat",
        headers=token,
        timeout=TIMEOUT,  # the other replica
        json={"text": "What is my name?", "conversation_id": conversation, "temperature": 0, "max_tokens": 30},
    )
    assert second.status_code == 200, second.text
    assert "ada" in words(second.json()["reply"])  # b read the first turn from the shared database

    stored = httpx.get(f"{a.url}/v1/conversations/{conversation}", headers=token, timeout=TIMEOUT).json()
    assert [(m["role"], m["text"]) for m in stored["messages"]] == [
        ("user", "My name is Ada."),
        ("assistant", first.json()["reply"]),
        ("user", "What is my name?"),
        ("assistant", second.json()["reply"]),
    ]
    assert (
        httpx.get(f"{b.url}/v1/me", headers={"Authorization": "Bearer not-a-token"}, timeout=TIMEOUT).status_code == 401
    )  # b does check tokens


def turn(ws) -> list[dict]:
    """The server's messages up to the end of a turn (`done`, or an `error`)."""
    messages = []
    deadline = time.monotonic() + TIMEOUT
    while not messages or messages[-1]["type"] not in ("done", "error"):
        messages.append(json.loads(ws.recv(timeout=deadline - time.monotonic())))
    return messages


def test_the_realtime_socket_works_through_the_balancer(balancer, replicas, france_wav):
    since = balancer.mark()
    url = f"{balancer.url.replace('http', 'ws')}/v1/realtime"
    key = balancer.headers["Authorization"].removeprefix("Bearer ")
    conversations = []
    # Two sockets opened one after the other: round-robin puts them on different replicas.
    with (
        connect(url, subprotocols=["voxgate", f"bearer.{key}"], open_timeout=10) as first,
        connect(url, subprotocols=["voxgate", f"bearer.{key}"], open_timeout=10) as second,
    ):
        for ws, reply_as in ((first, "voice"), (second, "text")):
            ws.send(json.dumps({"type": "session.start", "input_format": "container", "reply_as": reply_as}))
            assert json.loads(ws.recv(timeout=10))["type"] == "session.ready"
            ws.send(france_wav)  # a whole recording, answered as one turn
            messages = turn(ws)
            assert messages[-1]["type"] == "done", messages
            assert "france" in words(next(m["text"] for m in messages if m["type"] == "transcript"))
            assert "paris" in words(messages[-1]["reply"])
            assert any(m["type"] == "audio" and m["audio"] for m in messages) == (reply_as == "voice")
            conversations.append(messages[-1]["conversation_id"])
        second.send(json.dumps({"type": "input.text", "text": "And of Italy?"}))  # the same socket goes on
        assert turn(second)[-1]["type"] == "done"
    for conversation, turns in zip(conversations, (1, 2), strict=True):
        stored = httpx.get(f"{balancer.url}/v1/conversations/{conversation}", headers=balancer.headers, timeout=TIMEOUT)
        assert [m["role"] for m in stored.json()["messages"]] == ["user", "assistant"] * turns, stored.text
    sockets = balancer.served("GET /v1/realtime", since, 2)
    assert [s.status for s in sockets] == [101, 101]
    assert sorted(s.upstreams[0] for s in sockets) == sorted(r.address for r in replicas)


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    body: dict


def test_a_replica_killed_under_load_loses_no_answered_turn(balancer, replicas):
    """Runs last: it kills replica a with SIGKILL while turns stream through the balancer."""
    victim, survivor = replicas
    threads = 3
    outcomes: dict[int, list[Outcome]] = {i: [] for i in range(threads)}
    progress = threading.Condition()
    killed_at = float("inf")
    stop = threading.Event()

    def answered_since(moment: float, i: int) -> int:
        return sum(o.status == 200 and o.started > moment for o in outcomes[i])

    def failed_after_kill() -> bool:  # the assertions below say how
        return any(o.status != 200 and o.started > killed_at for i in range(threads) for o in outcomes[i])

    def retried() -> bool:
        """nginx gave the dead replica a turn, found it gone and passed the turn to the survivor
        (at its first round-robin turn, or once `fail_timeout` after a failure has passed)."""
        return any(
            s.upstreams == [victim.address, survivor.address] and s.status == 200
            for s in balancer.served("POST /v1/chat", since)
        )

    def drive(i: int) -> None:
        """Turns of one conversation, one after the other, until told to stop."""
        conversation = None
        with httpx.Client(base_url=balancer.url, headers=balancer.headers, timeout=TIMEOUT) as client:
            for n in range(1000):
                if stop.is_set():
                    return
                started = time.monotonic()
                try:
                    response = client.post(
                        "/v1/chat",
                        json={"text": f"Say the number {n}.", "conversation_id": conversation, "max_tokens": 8},
                    )
                    status = response.status_code
                    body = (
                        response.json()
                        if "json" in response.headers.get("content-type", "")
                        else {"text": response.text}
                    )
                except httpx.TransportError as exc:
                    status, body = None, {"exception": repr(exc)}
                with progress:
                    outcomes[i].append(Outcome(started, time.monotonic(), status, body))
                    progress.notify_all()
                conversation = body.get("conversation_id", conversation)

    start = balancer.mark()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        drivers = [pool.submit(drive, i) for i in range(threads)]
        try:
            with progress:
                assert progress.wait_for(lambda: all(answered_since(0, i) for i in range(threads)), 90), outcomes
                since = balancer.mark()
                killed_at = time.monotonic()
                victim.server.proc.kill()  # kill -9, while turns are in flight
                assert progress.wait_for(
                    lambda: (
                        failed_after_kill() or (retried() and all(answered_since(killed_at, i) for i in range(threads)))
                    ),
                    90,
                ), outcomes
        finally:
            stop.set()
            for driver in drivers:
                driver.result(timeout=TIMEOUT)
    victim.server.proc.wait()

    everything = [o for i in range(threads) for o in outcomes[i]]
    for o in everything:
        if o.started > killed_at:  # the balancer no longer sends anything to the dead replica
            assert o.status == 200, o
        elif o.status != 200:  # in flight on the dead replica: a clean error from the balancer
            assert (o.status, o.body.get("error", {}).get("code")) == (502, "replica_failed") and o.ended > killed_at, o

    # Every answered turn is stored, read back through the balancer (now only the survivor).
    for i in range(threads):
        answered = [o.body for o in outcomes[i] if o.status == 200]
        conversation = answered[0]["conversation_id"]
        stored = httpx.get(f"{balancer.url}/v1/conversations/{conversation}", headers=balancer.headers, timeout=TIMEOUT)
        assert stored.status_code == 200, stored.text
        messages = stored.json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)  # whole turns only
        replies = {m["id"]: m["text"] for m in messages if m["role"] == "assistant"}
        for body in answered:
            assert replies.get(body["message_id"]) == body["reply"], (body, messages)

    # The balancer's log: before the kill both replicas answered turns; after it, every
    # request answered was answered by the survivor (at least one after trying the dead one).
    before = balancer.served("POST /v1/chat", start, until=since)
    assert {s.upstreams[-1] for s in before if s.status == 200} == {victim.address, survivor.address}, before
    turns_after = balancer.served("POST /v1/chat", since, sum(o.started > killed_at for o in everything))
    for served in turns_after:
        if served.status == 200:
            assert served.upstreams[-1] == survivor.address, served
        else:
            assert served.status == 502 and served.upstreams == [victim.address], served
