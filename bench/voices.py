"""Benchmark the English voices: Piper joe against hibari heart, as the server runs them.

Each voice is opened through the registry (the server's code path, one onnxruntime thread)
and warmed up; then it speaks 20 reply-like sentences, each synthesized 3 times:
  x real time     seconds of audio / seconds of synthesis, over all sentences (the median
                  of each sentence's 3 runs): 1 / real-time factor
  first chunk     ms from calling synthesize() to its first audio chunk, for the sentence
                  alone (the first clause a streamed reply speaks) and for all 20 sentences
                  as one text (a whole reply to /v1/audio/speech): median, p95 over runs
  word errors     each sentence's audio (first run), resampled to 16 kHz, transcribed by
                  whisper-tiny.en through voxgate's WhisperSTT; word error rate over all
                  sentences (words compared lower-case without punctuation; the sentences
                  avoid numbers, which Whisper may write as digits), and how many were heard
                  exactly
  level           RMS of all the audio, dBFS
The voice with fewer word errors, not slower than real time by a wide margin, is the
default (`VOXGATE_TTS_MODEL`; README, Models).

    python bench/voices.py [--voices piper-en_US-joe-medium,hibari-en_US-heart] [--runs 3]
"""

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

import numpy as np
from realtime import RATE, RESULTS, git_state, machine  # bench/ is the script's directory
from rich.console import Console
from rich.table import Table
from stt import word_errors

from voxgate import audio
from voxgate.config import Settings
from voxgate.engines.whisper import WhisperSTT
from voxgate.registry import Registry

VOICES = ("piper-en_US-joe-medium", "hibari-en_US-heart")
SENTENCES = [
    "The capital of France is Paris.",
    "Spiders spin webs to catch insects.",
    "The sky looks blue because air scatters blue light.",
    "Monday comes after Sunday.",
    "Jupiter is the largest planet in our solar system.",
    "William Shakespeare wrote Romeo and Juliet.",
    "Bees make honey from the nectar of flowers.",
    "Mount Everest is the tallest mountain on Earth.",
    "A bicycle has two wheels.",
    "Frozen water is called ice.",
    "Sure, I can help you with that.",
    "Your name is Ada, you told me earlier.",
    "Rainbows form when sunlight is bent inside raindrops.",
    "The sea is salty because rivers carry minerals into it.",
    "Bread rises because yeast makes tiny bubbles of gas.",
    "I am not sure, but I think it will rain tomorrow.",
    "Turn left at the next corner and walk straight ahead.",
    "The opposite of hot is cold.",
    "A cow says moo.",
    "Good morning! How can I help you today?",
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure(registry: Registry, stt: WhisperSTT, name: str, runs: int) -> dict:
    start = time.perf_counter()
    with registry.use_tts(name) as tts:
        tts.warm_up()
        load_ms = (time.perf_counter() - start) * 1000
        synth, first, first_reply, clips = [], [], [], []
        for sentence in SENTENCES:
            times = []
            for run in range(runs):
                start = time.perf_counter()
                chunks = []
                for chunk in tts.synthesize(sentence):
                    if not chunks:
                        first.append((time.perf_counter() - start) * 1000)
                    chunks.append(chunk.pcm)
                times.append(time.perf_counter() - start)
                if run == 0:
                    clips.append(np.concatenate(chunks))
            synth.append(statistics.median(times))
        for _ in range(runs):
            start = time.perf_counter()
            next(iter(tts.synthesize(" ".join(SENTENCES))))
            first_reply.append((time.perf_counter() - start) * 1000)
        rate = tts.sample_rate
    seconds = sum(len(c) for c in clips) / rate
    errors = total = exact = 0
    misheard = []
    for sentence, clip in zip(SENTENCES, clips, strict=True):
        heard = stt.transcribe(audio.resample(clip.astype(np.float32) / 32768, rate, RATE)).text
        e, n = word_errors(sentence, heard)
        errors, total, exact = errors + e, total + n, exact + (e == 0)
        if e:
            misheard.append({"said": sentence, "heard": heard})
    level = np.concatenate(clips).astype(np.float64) / 32768
    return {
        "voice": name,
        "sample_rate": rate,
        "load_ms": round(load_ms),
        "audio_s": round(seconds, 1),
        "x_realtime": round(seconds / sum(synth), 1),
        "rtf": round(sum(synth) / seconds, 4),
        "first_chunk_ms": {"median": round(statistics.median(first)), "p95": round(percentile(first, 95))},
        "first_chunk_reply_ms": {
            "median": round(statistics.median(first_reply)),
            "p95": round(percentile(first_reply, 95)),
        },
        "wer_percent": round(100 * errors / total, 1),
        "exact": exact,
        "sentences": len(SENTENCES),
        "rms_dbfs": round(20 * np.log10(np.sqrt(np.mean(level**2))), 1),
        "misheard": misheard,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    registry = Registry(Settings(warmup=False))
    voices = args.voices.split(",")
    for name in [*voices, "whisper-tiny.en"]:
        registry.pull(name, lambda _: None)
    stt = WhisperSTT("whisper-tiny.en", registry.models_dir / "whisper-tiny.en", workers=1)
    stt.warm_up()
    rows = [measure(registry, stt, name, args.runs) for name in voices]
    table = Table(title=f"English voices, one thread, {len(SENTENCES)} sentences × {args.runs} runs")
    for column in (
        "voice",
        "rate",
        "× real time",
        "1st chunk, sentence",
        "1st chunk, reply",
        "WER %",
        "exact",
        "level",
        "load",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["voice"],
            f"{r['sample_rate']} Hz",
            f"{r['x_realtime']}×",
            f"{r['first_chunk_ms']['median']} / {r['first_chunk_ms']['p95']} ms",
            f"{r['first_chunk_reply_ms']['median']} / {r['first_chunk_reply_ms']['p95']} ms",
            str(r["wer_percent"]),
            f"{r['exact']}/{r['sentences']}",
            f"{r['rms_dbfs']} dBFS",
            f"{r['load_ms']} ms",
        )
    console.print(table)
    for r in rows:
        for m in r["misheard"]:
            console.print(f"[dim]{r['voice']}: said {m['said']!r}, heard {m['heard']!r}[/]")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"voices-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "machine": machine(),
                "git": git_state(),
                "definition": __doc__,
                "runs": args.runs,
                "sentences": SENTENCES,
                "rows": rows,
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    console.print(f"results: {out}")


if __name__ == "__main__":
    main()
