"""Benchmark one voice -> voice turn with the default models, in-process.

Measures what a user waits for: per-stage latency (decode, STT, LLM, TTS) and the
end-to-end wall time of `Pipeline.turn`, plus the throughput figures that explain it:
STT and TTS real-time factors (< 1 means faster than real time) and LLM tokens/s.
In-process (no HTTP) so the numbers are the models' and the pipeline's, not the
network's; the question is synthesized by the TTS model so no fixture file is needed.

    VOXGATE_CACHE_DIR=/tmp/vxcache python bench/turn.py --runs 5
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from voxgate import audio
from voxgate.config import Settings
from voxgate.engines.base import ChatMessage
from voxgate.pipeline import Pipeline
from voxgate.registry import Registry
from voxgate.turn_events import TurnInput

QUESTION = "What is the capital of France, and what is it famous for?"
RESULTS = Path(__file__).parent / "results"


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def bench(runs: int, console: Console) -> dict:
    settings = Settings()
    with console.status("loading models"):
        registry = Registry(settings).load_defaults()
    pipeline = Pipeline(registry, settings)
    try:
        pcm, rate = await pipeline.speak(QUESTION)
        question_wav = audio.encode(pcm, rate, "wav")
        question_s = len(pcm) / rate
        console.print(f"question: {QUESTION!r} ({question_s:.2f} s of speech)")

        # Greedy decoding: reply length drives LLM and TTS time, so sampling would add noise
        # between runs and the separate chat below would not reproduce the turn's reply.
        request = TurnInput(audio=question_wav, reply_as="voice", temperature=0.0)
        # The first turn pays for lazy allocations and cold caches that a serving process pays once.
        await pipeline.turn(request)

        stages: dict[str, list[float]] = {"decode": [], "stt": [], "llm": [], "tts": []}
        walls, stt_rtf, tts_rtf, tok_s, tokens = [], [], [], [], []
        for i in range(runs):
            start = time.perf_counter()
            result = await pipeline.turn(request)
            walls.append(round((time.perf_counter() - start) * 1000, 1))
            for name in stages:
                stages[name].append(result.timings[name])
            stt_rtf.append(round(result.timings["stt"] / 1000 / question_s, 4))

            # turn() reports neither token counts nor reply duration, so re-run those stages
            # alone on the same input; with greedy decoding they redo exactly the turn's work.
            start = time.perf_counter()
            reply_pcm, rate = await pipeline.speak(result.reply)
            tts_rtf.append(round((time.perf_counter() - start) / (len(reply_pcm) / rate), 4))

            messages = [ChatMessage("system", settings.system_prompt), ChatMessage("user", result.transcript)]
            start = time.perf_counter()
            chat = await pipeline.chat(pipeline.chat_request(messages, temperature=0.0))
            # Includes prompt evaluation (mostly a cached prefix after the first turn), so this is
            # the rate a user experiences, slightly under pure decode speed.
            tok_s.append(round(chat.completion_tokens / (time.perf_counter() - start), 1))
            tokens.append(chat.completion_tokens)
            console.print(f"run {i + 1}/{runs}: {walls[-1]:.0f} ms  transcript={result.transcript!r}")
        console.print(f"last reply: {result.reply!r}")
    finally:
        pipeline.close()

    return {
        "timestamp": datetime.now(UTC).isoformat(),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other processes (e.g. a running server) skew CPU-bound numbers; this shows it.
            "loadavg_1m": os.getloadavg()[0],
        },
        "models": {role.value: name for role, name in registry.defaults.items()},
        "settings": {
            "threads": settings.threads,
            "llm_slots": settings.llm.slots,
            "max_tokens": settings.max_tokens,
            "temperature": 0.0,
        },
        "runs": runs,
        "question": {"text": QUESTION, "seconds": round(question_s, 3)},
        "ms": {name: summary(values) for name, values in stages.items()} | {"end_to_end": summary(walls)},
        "stt_rtf": summary(stt_rtf),
        "tts_rtf": summary(tts_rtf),
        "llm_tokens_per_s": summary(tok_s),
        "llm_completion_tokens": summary(tokens),
        "raw": {
            "ms": stages | {"end_to_end": walls},
            "stt_rtf": stt_rtf,
            "tts_rtf": tts_rtf,
            "llm_tokens_per_s": tok_s,
        },
    }


def show(report: dict, console: Console) -> None:
    m = report["models"]
    table = Table(
        title=f"voice turn, {report['runs']} runs, {report['settings']['threads']} threads",
        caption=f"{m['stt']} / {m['llm']} / {m['tts']}",
    )
    for column in ("metric", "median", "min", "max"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    rows = [(f"{name} ms", s, "{:.0f}") for name, s in report["ms"].items()]
    rows += [
        ("STT RTF", report["stt_rtf"], "{:.3f}"),
        ("TTS RTF", report["tts_rtf"], "{:.3f}"),
        ("LLM tokens/s", report["llm_tokens_per_s"], "{:.1f}"),
        ("LLM reply tokens", report["llm_completion_tokens"], "{:.0f}"),
    ]
    for label, s, fmt in rows:
        table.add_row(label, *(fmt.format(s[k]) for k in ("median", "min", "max")))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured turns after one warm-up turn")
    args = parser.parse_args()
    console = Console()
    report = asyncio.run(bench(max(1, args.runs), console))
    show(report, console)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"turn-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
