"""llama.cpp's own OpenAI-compatible HTTP server in a process of its own, for the remote LLM tests.

Run as `python tests/llama_server.py MODEL.gguf PORT`, it serves until it is killed (so a
test can kill it in the middle of an answer); `start()` runs it with voxgate's default LLM.
"""

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest


def start(log_dir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server (on a free port unless given) with the prepared default LLM; return it
    and its /v1 URL once it answers."""
    from processes import free_port, wait_until_serving

    from voxgate.catalog import Role
    from voxgate.config import Settings
    from voxgate.model_files import resolve

    settings = Settings()
    model = resolve(settings.llm.model, Role.LLM, settings.models_dir)[1]
    port = port or free_port()
    log_path = log_dir / f"llama-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, __file__, str(model), str(port)], stdout=log_path.open("a"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(proc, f"{url}/health", log_path, "the llama.cpp server", 120)
    return proc, f"{url}/v1"


def wait_idle(url: str, seconds: float) -> None:
    """Fail unless the server at `url` (its /v1 URL) is generating nothing within `seconds`."""
    deadline = time.monotonic() + seconds
    while any(slot["is_processing"] for slot in httpx.get(f"{url.removesuffix('/v1')}/slots").json()):
        if time.monotonic() > deadline:
            pytest.fail(f"llama.cpp still generates after {seconds:g} s")
        time.sleep(0.1)


def main() -> None:
    import xllamacpp

    model, port = sys.argv[1], int(sys.argv[2])
    params = xllamacpp.CommonParams()
    params.model.path = model
    params.port = port
    params.hostnames = ["127.0.0.1"]
    params.n_ctx = 2048
    # One thread: the tests' voxgate servers share the two cores (llama.cpp's default, one
    # per core, spins against them and an 8-token reply took up to 15 s under load).
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 1
    params.use_jinja = True
    params.verbosity = -1
    server = xllamacpp.Server(params)
    print(f"listening on {server.listening_address}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
