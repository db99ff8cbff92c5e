"""Benchmark the LLM presets: how right, how fast, for the same server.

For each preset (`fast`, `accurate`, `speculative`; see config.PRESETS) a fresh
`voxgate serve` (default STT and voice, temperature 0) is asked:
  battery          the answer battery of `voxgate eval` (voxgate/battery.py): right, heard,
                   well-formed, out of 43
  decode tok/s     completion tokens / (last token - first token) of a streamed
                   /v1/chat/completions, over 6 questions of 60-120 tokens (median)
  first clause     /v1/chat streamed as voice: the server's `first_text` and `first_audio`
                   timings (ms from the request, so from the end of a typed question)
                   over 8 questions (median, p95)
  RSS              the server's resident memory after the run (MB)

    python bench/presets.py [--presets fast,accurate]
"""

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from realtime import RESULTS, git_state, machine, serve  # bench/ is the script's directory
from rich.console import Console
from rich.table import Table

from voxgate.battery import run
from voxgate.config import PRESETS

LONG = [
    "Explain how a rainbow forms.",
    "Describe how bread is made.",
    "Explain why the sea is salty.",
    "Tell me how a bicycle works.",
    "Explain what a volcano is.",
    "Describe the water cycle.",
]
SHORT = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What do bees make?",
    "Who wrote Romeo and Juliet?",
    "What is two plus two?",
    "Why is the sky blue?",
    "What is the largest planet?",
    "What is frozen water called?",
]


def decode_speed(client: httpx.Client, question: str) -> float | None:
    times = []
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "default",
            "temperature": 0,
            "max_tokens": 120,
            "stream": True,
            "messages": [{"role": "user", "content": question}],
        },
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                times.append(time.perf_counter())
    # One SSE chunk a token (llama.cpp streams token by token).
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 10 else None


def first_clause(client: httpx.Client, question: str) -> dict:
    with client.stream(
        "POST", "/v1/chat", json={"text": question, "reply_as": "voice", "stream": True, "temperature": 0}
    ) as response:
        if response.status_code != 200:
            return {"error": f"{response.status_code}: {response.read()[:200]!r}"}
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "done":
                return json.loads(line[6:])["timings"]
    return {}


def rss_mb(workdir: Path) -> float | None:
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(workdir) in (proc / "environ").read_bytes().decode(errors="replace"):
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return round(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return None


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q))) if values else None


def bench_preset(preset: str, console: Console) -> dict:
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp), console, VOXGATE_PRESET=preset) as (url, key, _):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as client:
            with console.status(f"{preset}: answer battery"):
                summary = run(client, None).summary()
            speeds = [s for s in (decode_speed(client, q) for q in LONG) if s]
            timings = [first_clause(client, q) for q in SHORT]
            rss = rss_mb(Path(tmp))
    errors = [t["error"] for t in timings if "error" in t]
    text = [t["first_text"] for t in timings if t.get("first_text")]
    audio = [t["first_audio"] for t in timings if t.get("first_audio")]
    return {
        "preset": preset,
        "llm": PRESETS[preset][0],
        "draft": PRESETS[preset][1],
        "battery": summary,
        "decode_tok_s": round(statistics.median(speeds), 1) if speeds else None,
        "first_text_ms": {"median": pct(text, 50), "p95": pct(text, 95)},
        "first_audio_ms": {"median": pct(audio, 50), "p95": pct(audio, 95)},
        "rss_mb": rss,
        "first_clause_errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default=",".join(PRESETS))
    args = parser.parse_args()
    console = Console()
    rows = [bench_preset(p, console) for p in args.presets.split(",")]
    table = Table(title="LLM presets (2-core figures are on the machine below)")
    for column in (
        "preset",
        "right",
        "heard",
        "well-formed",
        "decode tok/s",
        "first text ms (p50/p95)",
        "first audio ms (p50/p95)",
        "RSS MB",
    ):
        table.add_column(column)
    for r in rows:
        b = r["battery"]
        table.add_row(
            r["preset"],
            f"{b['right']}/{b['asked']}",
            f"{b['heard']}/{b['spoken']}",
            f"{b['well_formed']}/{b['asked']}",
            str(r["decode_tok_s"]),
            f"{r['first_text_ms']['median']}/{r['first_text_ms']['p95']}",
            f"{r['first_audio_ms']['median']}/{r['first_audio_ms']['p95']}",
            str(r["rss_mb"]),
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"presets-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(
        json.dumps({"machine": machine(), "git": git_state(), "definition": __doc__, "rows": rows}, indent=1)
    )
    console.print(f"results: {out}  machine: {machine()}")


if __name__ == "__main__":
    main()
