"""Backends and languages: what a remote LLM costs over the in-process one, and what the
multilingual STT and the espeak-ng voices cost over the English defaults.

- LLM: the same greedy question to llama.cpp in-process and to llama.cpp's own HTTP server
  (a separate process serving the same GGUF) through the remote OpenAI-compatible backend.
- STT: whisper-tiny.en against whisper-base on the same spoken question.
- TTS: Piper against espeak-ng for the same sentence.

Run with `make bench` (or `.venv/bin/python bench/backends.py`); JSON goes to bench/results/.
"""

import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from voxgate import audio, model_files
from voxgate.config import Settings
from voxgate.engines.base import ChatMessage, ChatRequest
from voxgate.engines.espeak import EspeakTTS
from voxgate.engines.openai_chat import OpenAIChat
from voxgate.registry import Registry

RUNS = 5
QUESTION = "What is the capital of France, and what is it famous for?"
SENTENCE = "The capital of France is Paris, famous for the Eiffel Tower and its museums."
# llama.cpp's HTTP server as the tests start it (the default GGUF, its own process).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import llama_server  # noqa: E402


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def time_chat(llm, runs: int) -> dict:
    request = ChatRequest(
        (ChatMessage("system", Settings().system_prompt), ChatMessage("user", QUESTION)), max_tokens=60, temperature=0.0
    )
    firsts, totals, tokens = [], [], 0
    for _ in range(runs + 1):  # the first run warms caches up and is not counted
        start, first = time.perf_counter(), []

        def on_delta(_: str, first: list = first) -> None:
            if not first:
                first.append(time.perf_counter())

        result = llm.generate(request, on_delta=on_delta)
        firsts.append(first[0] - start)
        totals.append(time.perf_counter() - start)
        tokens = result.completion_tokens
    return {"first_token_ms": median_ms(firsts[1:]), "total_ms": median_ms(totals[1:]), "tokens": tokens}


def main() -> None:
    console = Console()
    settings = Settings()
    registry = Registry(settings)
    rows: dict[str, dict] = {}

    with console.status("LLM in-process"), registry.use_llm() as local:
        rows["LLM in-process (xllamacpp)"] = time_chat(local, RUNS)
    proc, url = llama_server.start(Path(tempfile.mkdtemp(prefix="voxgate-bench-")))
    try:
        with console.status("LLM over HTTP"):
            remote = OpenAIChat("qwen", url, None, timeout=60, retries=0)
            rows["LLM remote (llama.cpp server, HTTP)"] = time_chat(remote, RUNS)
    finally:
        proc.kill()

    with registry.use_tts() as voice:
        pcm = np.concatenate([c.pcm for c in voice.synthesize(QUESTION)])
        question = audio.decode(audio.encode(pcm, voice.sample_rate, "wav"), max_seconds=60).samples
        start = time.perf_counter()
        for _ in range(RUNS):
            list(voice.synthesize(SENTENCE))
        rows[f"TTS {voice.name}"] = {"total_ms": round((time.perf_counter() - start) / RUNS * 1000, 1)}
    espeak = EspeakTTS("fr")
    start = time.perf_counter()
    for _ in range(RUNS):
        list(espeak.synthesize(SENTENCE))
    rows["TTS espeak-ng fr"] = {"total_ms": round((time.perf_counter() - start) / RUNS * 1000, 1)}

    for name in ("whisper-tiny.en", "whisper-base"):
        if not model_files.is_prepared(settings.models_dir, name):
            continue
        with console.status(f"STT {name}"), registry.use_stt(name) as stt:
            samples = []
            for _ in range(RUNS + 1):
                start = time.perf_counter()
                heard = stt.transcribe(question)
                samples.append(time.perf_counter() - start)
            rows[f"STT {name}"] = {"total_ms": median_ms(samples[1:]), "heard": heard.text, "language": heard.language}

    table = Table("what", "first token ms", "total ms", "notes", title=f"backends and languages, {RUNS} runs")
    for name, row in rows.items():
        note = f"{row['tokens']} tokens" if "tokens" in row else row.get("heard", "")
        table.add_row(name, str(row.get("first_token_ms", "")), str(row["total_ms"]), note)
    console.print(table)
    out = Path(__file__).parent / "results" / f"backends-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"question": QUESTION, "sentence": SENTENCE, "runs": RUNS, "results": rows}, indent=2))
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
