"""Servers the tests start as processes of their own: a free port, and waiting until one serves."""

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc: subprocess.Popen, probe_url: str, log_path: Path, what: str, seconds: float) -> None:
    """Return once `probe_url` answers 200; fail with the process's log if it exits or stalls."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(probe_url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{what} did not become ready:\n{log_path.read_text()}")
