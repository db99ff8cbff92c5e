"""Benchmark time to first audio (TTFA) over HTTP and WebSocket, LLM prefix reuse, and concurrent sessions.

What a voice user waits for is the gap between the end of their speech and the first sound
of the reply. This measures it against a real `voxgate serve` (default models, auth off):
  1. a spoken ~3 s question as a buffered POST /v1/chat, as SSE (stream=true), and streamed
     in real time over /v1/realtime, where the VAD's silence_ms (700 default, and 300) is
     part of the wait, so each WebSocket stage is reported from the end of speech. A pause
     longer than silence_ms cuts the question into several utterances (turns); only the
     last one's turn is timed, and `utterances` shows the cut;
  2. the LLM time of a turn after 6 turns of history (~1200 prompt tokens) with and without
     llama.cpp's prompt prefix reuse, in-process (the HTTP API cannot switch the cache off),
     with the server stopped. Reuse can change greedy output (different float rounding), so
     compare first_token_ms (prompt evaluation); llm_ms also depends on the reply's length;
  3. K = 1..4 concurrent realtime sessions asking at the same moment, until the slowest
     session's TTFA reaches 2 s. They use silence_ms=500 (--silence-ms): with the default
     700 one session alone needs over 2 s, and 300 cuts this question at its comma.
The server answers greedily (VOXGATE_TEMPERATURE=0) so reply lengths do not vary between
modes and runs. Timings are CPU-bound: os.getloadavg() is recorded before each part.

    VOXGATE_CACHE_DIR=/tmp/vxcache python bench/streaming.py --runs 5
"""

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import connect

from voxgate import audio
from voxgate.config import Settings
from voxgate.engines.base import ChatMessage, ChatResult
from voxgate.pipeline import Pipeline
from voxgate.registry import Registry

QUESTION = "What is the capital of France, and why is it famous?"
# Six turns of history, answered by the model itself, then the measured seventh question.
HISTORY = [
    "Tell me about the history of Rome.",
    "How did the Roman Empire fall?",
    "What did the Romans eat every day?",
    "How were Roman roads built?",
    "Which Roman emperors were the most famous, and why?",
    "What is left of ancient Rome today?",
    "If I visit Rome for three days, what should I see?",
]
RESULTS = Path(__file__).parent / "results"
CHUNK = audio.STT_SAMPLE_RATE // 10  # 100 ms of 16 kHz samples per WebSocket message, like a microphone
TTFA_LIMIT = 2.0
WS_MARKS = ("speech.stopped", "transcript", "text", "audio", "done")


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


@contextmanager
def serve(workdir: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "VOXGATE_AUTH": "off", "VOXGATE_DATA_DIR": str(workdir), "VOXGATE_TEMPERATURE": "0"}
    log = workdir / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxgate", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"voxgate did not become ready:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def http_turn(client: httpx.Client, wav: bytes, stream: bool) -> dict[str, float]:
    """The whole recording is uploaded at once, so the end of speech is the request's start."""
    data = {"reply_as": "voice", "stream": str(stream).lower()}
    start = time.perf_counter()
    marks = {}
    with client.stream("POST", "/v1/chat", files={"audio": ("q.wav", wav, "audio/wav")}, data=data) as response:
        response.raise_for_status()
        if stream:
            for line in response.iter_lines():
                if line in ("event: audio", "event: done", "event: error"):
                    marks.setdefault(line.removeprefix("event: "), ms(time.perf_counter() - start))
            assert "error" not in marks and "audio" in marks, marks
        else:
            for _ in response.iter_bytes():
                marks.setdefault("audio", ms(time.perf_counter() - start))
            marks["done"] = ms(time.perf_counter() - start)
    return marks


async def ws_turn(url: str, pcm: np.ndarray, last_speech: int, silence_ms: int | None = None) -> dict:
    """One spoken question over /v1/realtime; each server event's arrival, from the last speech chunk sent."""
    start = {"type": "session.start", "reply_as": "voice"} | ({"silence_ms": silence_ms} if silence_ms else {})
    chunks = [pcm[i : i + CHUNK].tobytes() for i in range(0, len(pcm), CHUNK)]
    arrived: dict[str, float] = {}
    heard = {"utterances": 0, "heard": ""}
    speech_end = 0.0
    async with connect(f"{url.replace('http', 'ws')}/v1/realtime", open_timeout=10) as ws:
        await ws.send(json.dumps(start))
        assert json.loads(await ws.recv())["type"] == "session.ready"

        async def send() -> None:
            nonlocal speech_end
            # A microphone keeps sending silence while the reply plays, so the VAD keeps running.
            silence = np.zeros(CHUNK, "<i2").tobytes()
            begin = time.perf_counter()
            for i, chunk in enumerate(itertools.chain(chunks, itertools.repeat(silence, 600))):
                # Absolute schedule: a slow send must not delay every later chunk (drift).
                await asyncio.sleep(max(0.0, begin + (i + 1) * CHUNK / audio.STT_SAMPLE_RATE - time.perf_counter()))
                await ws.send(chunk)
                if i == last_speech // CHUNK:
                    speech_end = time.perf_counter()

        async def receive() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "speech.started":  # a new utterance: what came before was another turn
                    heard["utterances"] += 1
                    arrived.clear()
                if message["type"] == "transcript":
                    heard["heard"] = message["text"]
                arrived.setdefault(message["type"], time.perf_counter())
                if message["type"] in ("done", "error"):
                    assert message["type"] == "done", message
                    return

        sender = asyncio.create_task(send())
        try:
            await asyncio.wait_for(receive(), timeout=120)
        finally:
            sender.cancel()
    return {kind: ms(arrived[kind] - speech_end) for kind in WS_MARKS} | heard


async def concurrent(url: str, pcm: np.ndarray, last_speech: int, rounds: int, silence_ms: int) -> list[dict]:
    """K sessions ask the same question at the same moment: the worst case for the shared models."""
    levels = []
    for k in range(1, 5):
        ttfa = [
            turn["audio"]
            for _ in range(rounds)
            for turn in await asyncio.gather(*(ws_turn(url, pcm, last_speech, silence_ms) for _ in range(k)))
        ]
        levels.append({"sessions": k, "ttfa_ms": summary(ttfa), "raw": ttfa, "ok": max(ttfa) < TTFA_LIMIT * 1000})
        if not levels[-1]["ok"]:
            break
    return levels


def over_server(runs: int, rounds: int, silence_ms: int, console: Console, load: dict) -> dict:
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve(Path(tmp)) as url,
        httpx.Client(base_url=url, timeout=300) as client,
    ):
        speech = client.post("/v1/audio/speech", json={"input": QUESTION, "response_format": "wav"})
        wav = speech.raise_for_status().content
        samples = audio.decode(wav, max_seconds=60).samples
        # Lead-in silence so the VAD hears speech start; the speech ends at the last sample
        # above -34 dBFS (Piper pads sentences with quiet tails that are not speech).
        pcm = np.concatenate([np.zeros(CHUNK * 5, "<i2"), (samples * 32767).astype("<i2")])
        last_speech = int(np.flatnonzero(np.abs(pcm) > 650)[-1])
        question = {
            "text": QUESTION,
            "seconds": round(len(samples) / audio.STT_SAMPLE_RATE, 3),
            "speech_seconds": round((last_speech - CHUNK * 5) / audio.STT_SAMPLE_RATE, 3),
        }
        console.print(f"question: {question}")
        # Warm-up: the first realtime session loads the VAD model, the first turn fills caches.
        http_turn(client, wav, stream=False)
        asyncio.run(ws_turn(url, pcm, last_speech))

        modes = {
            "http_buffered": lambda: http_turn(client, wav, stream=False),
            "http_sse": lambda: http_turn(client, wav, stream=True),
            "ws_silence_700": lambda: asyncio.run(ws_turn(url, pcm, last_speech)),
            "ws_silence_300": lambda: asyncio.run(ws_turn(url, pcm, last_speech, silence_ms=300)),
        }
        raw: dict[str, list[dict]] = {mode: [] for mode in modes}
        load["ttfa"] = os.getloadavg()
        for i in range(runs):  # modes interleaved, so a change in background load hits each alike
            for mode, run in modes.items():
                raw[mode].append(run())
            console.print(f"run {i + 1}/{runs}: " + "  ".join(f"{m} {r[-1]['audio']:.0f} ms" for m, r in raw.items()))
        load["concurrency"] = os.getloadavg()
        levels = asyncio.run(concurrent(url, pcm, last_speech, rounds, silence_ms))
    ttfa = {
        mode: {kind: summary([r[kind] for r in rs]) for kind, v in rs[0].items() if not isinstance(v, str)}
        for mode, rs in raw.items()
    }
    return {"question": question, "ttfa_ms": ttfa, "concurrency": levels, "raw": raw}


async def prefix_reuse(runs: int, console: Console, load: dict) -> dict:
    settings = Settings()
    with console.status("loading models in-process"):
        registry = Registry(settings).load_defaults()
    pipeline = Pipeline(registry, settings)

    async def timed(messages: list[ChatMessage], reuse: bool) -> dict:
        request = replace(pipeline.chat_request(messages, temperature=0.0), reuse_prefix=reuse)
        start, first = time.perf_counter(), None
        async for item in pipeline.stream_chat(request):
            if isinstance(item, ChatResult):
                result = item
            elif first is None:
                first = time.perf_counter()
        return {
            "first_token_ms": ms(first - start),
            "llm_ms": ms(time.perf_counter() - start),
            "text": result.text,
            "prompt_tokens": result.prompt_tokens,
            "cached_tokens": result.cached_tokens,
            "completion_tokens": result.completion_tokens,
        }

    try:
        history = [ChatMessage("system", settings.system_prompt)]
        for question in HISTORY[:-1]:
            history.append(ChatMessage("user", question))
            history.append(ChatMessage("assistant", (await timed(history, True))["text"]))
        turn = [*history, ChatMessage("user", HISTORY[-1])]
        raw: dict[str, list[dict]] = {"with_reuse": [], "without_reuse": []}
        load["prefix_reuse"] = os.getloadavg()
        for _ in range(runs):
            # Turn N-1 again (greedy: the same reply) leaves a slot holding the conversation so
            # far, as in a live session; then turn N either reuses that prefix or evaluates it all.
            await timed(history[:-1], True)
            raw["with_reuse"].append(await timed(turn, True))
            raw["without_reuse"].append(await timed(turn, False))
    finally:
        pipeline.close()
    models = {role.value: name for role, name in registry.defaults.items()}
    keys = ("prompt_tokens", "cached_tokens", "completion_tokens", "first_token_ms", "llm_ms")
    return {
        "models": models,
        "turn": HISTORY[-1],
        "summary": {mode: {k: summary([r[k] for r in rs]) for k in keys} for mode, rs in raw.items()},
        "raw": raw,
    }


def show(report: dict, console: Console) -> None:
    def table(title: str, first: str, rows: list[tuple[str, dict]]) -> None:
        t = Table(title=title)
        for column in (first, "median", "min", "max"):
            t.add_column(column, justify="left" if column == first else "right")
        for label, s in rows:
            t.add_row(label, *(f"{s[k]:.0f}" for k in ("median", "min", "max")))
        console.print(t)

    q, ttfa = report["question"], report["ttfa_ms"]
    table(
        f"ms from the end of speech to each event, {report['runs']} runs ({q['speech_seconds']:.2f} s question)",
        "event",
        [(f"{mode} {kind}", s) for mode, kinds in ttfa.items() for kind, s in kinds.items()],
    )
    table(
        f"LLM turn 7 of a conversation, {report['runs']} runs",
        "metric",
        [(f"{mode} {key}", s) for mode, keys in report["prefix_reuse"]["summary"].items() for key, s in keys.items()],
    )
    table(
        f"TTFA ms of K concurrent realtime sessions (silence_ms={report['settings']['concurrency_silence_ms']}), "
        f"{report['rounds']} rounds",
        "K",
        [(f"{lv['sessions']}{'' if lv['ok'] else ' over limit'}", lv["ttfa_ms"]) for lv in report["concurrency"]],
    )
    console.print(f"largest K with max TTFA < {TTFA_LIMIT:.0f} s: {report['max_sessions_under_limit']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured turns per mode, after one warm-up")
    parser.add_argument("--rounds", type=int, default=2, help="simultaneous asks per concurrency level")
    parser.add_argument("--silence-ms", type=int, default=500, help="VAD silence_ms of the concurrent sessions")
    args = parser.parse_args()
    console = Console()
    runs, rounds = max(1, args.runs), max(1, args.rounds)
    load = {"start": os.getloadavg()}
    # The server runs first and is stopped before the models load in this process, so the
    # two never compete for the 2 cores.
    served = over_server(runs, rounds, args.silence_ms, console, load)
    reuse = asyncio.run(prefix_reuse(runs, console, load))
    load["end"] = os.getloadavg()
    settings = Settings()
    report = {
        "timestamp": datetime.now(UTC).isoformat(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # 1, 5, 15 min load before each part and at the end: other processes skew the numbers.
            "loadavg": load,
        },
        "models": reuse.pop("models"),
        "settings": {
            "threads": settings.threads,
            "llm_slots": settings.llm.slots,
            "max_tokens": settings.max_tokens,
            "temperature": 0.0,
            "chunk_ms": 100,
            "concurrency_silence_ms": args.silence_ms,
        },
        "runs": runs,
        "rounds": rounds,
        **served,
        "prefix_reuse": reuse,
        "max_sessions_under_limit": max([lv["sessions"] for lv in served["concurrency"] if lv["ok"]], default=0),
    }
    show(report, console)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"streaming-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
