"""Connections `voxgate serve` does not keep for ever: an idle one, a slowloris head, a slow
body and an idle keep-alive are closed after their timeouts (408 in voxgate's envelope when
part of a request came), and past the connection cap a new one is answered 503 and closed,
while the server goes on answering everyone else."""

import json
import socket
import time

import httpx
import pytest
from conftest import start_server, stop_server

HEADER, BODY, KEEP_ALIVE, CAP = 1.5, 2.0, 3, 12


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = start_server(
        tmp_path_factory.mktemp("connections"),
        VOXGATE_HEADER_TIMEOUT=str(HEADER),
        VOXGATE_BODY_TIMEOUT=str(BODY),
        VOXGATE_KEEP_ALIVE_TIMEOUT=str(KEEP_ALIVE),
        VOXGATE_MAX_CONNECTIONS=str(CAP),
        VOXGATE_WARMUP="false",
    )
    yield started
    stop_server(started)


def open_socket(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)  # a hang fails the test
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def healthz(sock: socket.socket) -> bytes:
    """Ask /healthz on a kept-alive connection; its whole answer (head and body may come apart)."""
    sock.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while not answer.endswith(b'{"status":"ok"}'):
        answer += sock.recv(65536) or pytest.fail(f"closed after {answer!r}")
    return answer


def envelope(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server):
    with open_socket(server) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""  # nothing was asked: closed without an answer
        assert HEADER - 0.2 <= time.monotonic() - started < HEADER + 3


def test_a_slowloris_head_is_cut_with_408_while_others_are_served(server):
    with open_socket(server) as sock:
        started = time.monotonic()
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100
        sent = 0
        try:
            for byte in head:  # one byte every 0.1 s: the head would take 13 s
                sock.send(bytes([byte]))
                sent += 1
                time.sleep(0.1)
        except OSError:
            pass  # cut while sending
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200  # meanwhile, others are served
        status, headers, body = envelope(read_until_closed(sock))
        assert time.monotonic() - started < HEADER + 3 and sent < len(head)
    assert status == 408 and headers["connection"] == "close" and body["error"]["code"] == "request_timeout"


def test_a_slow_second_request_on_a_kept_alive_connection_is_cut_too(server):
    with open_socket(server) as sock:
        assert healthz(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100:
                sock.send(bytes([byte]))  # each byte would restart uvicorn's keep-alive timer
                time.sleep(0.1)
        except OSError:
            pass
        status, _, _ = envelope(read_until_closed(sock))
        assert status == 408 and time.monotonic() - started < HEADER + 3


def test_a_body_that_does_not_arrive_is_cut_with_408(server):
    with open_socket(server) as sock:
        started = time.monotonic()
        sock.send(
            b"POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + server.key.encode()
            + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"text": '
        )
        status, _, body = envelope(read_until_closed(sock))
        assert BODY - 0.2 <= time.monotonic() - started < BODY + 3
    assert status == 408 and "body" in body["error"]["message"]


def test_an_idle_keep_alive_connection_is_closed_after_its_own_timeout(server):
    with open_socket(server) as sock:
        assert healthz(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        assert KEEP_ALIVE - 0.2 <= time.monotonic() - started < KEEP_ALIVE + 3  # not the shorter header timeout


def test_past_the_connection_cap_a_new_connection_gets_503_and_is_closed(server):
    held = [open_socket(server) for _ in range(CAP)]
    try:
        for sock in held:  # each is known to the server once it answers on it (and kept alive KEEP_ALIVE s)
            assert healthz(sock).startswith(b"HTTP/1.1 200")
        with open_socket(server) as extra:
            status, headers, body = envelope(read_until_closed(extra))
        assert status == 503 and headers["retry-after"] == "1" and body["error"]["code"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10  # the server notices the closed ones
    while httpx.get(f"{server.url}/healthz", timeout=5).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
