"""Benchmark the speech-to-text window: Whisper's 30 s against one fitted to the speech.

The same spoken questions (Piper's voice, as in bench/realtime.py, with 250 ms of silence
before and 200 ms after, like an utterance the realtime VAD hands over) are transcribed
twice by the default Whisper (tiny.en), on one thread as the server runs it:
  window_30s   faster-whisper's transcribe (pads every utterance to 30 s), VAD filter on
  fitted       voxgate's WhisperSTT.transcribe: a window fitted to the speech, falling back
               to 30 s for speech under 1.2 s or a transcript that runs away (engines/whisper.py)
Each question is heard whole, and again with its first 200 ms lost (as when the realtime VAD
starts late: "is the largest planet."), where the fitted window's fallbacks used to show.
Reported per model, path and clip set: word error rate (against the whole question), clips
heard exactly (words compared lower-case without punctuation, digits as said), median and
p95 ms a clip.

    python bench/stt.py
"""

import itertools
import json
import os
import platform
import re
import statistics
import sys
import time
from datetime import UTC, datetime

import numpy as np
from realtime import QUESTIONS, RATE, RESULTS, VOICE  # bench/ is the script's directory
from rich.console import Console
from rich.table import Table

from voxgate import audio
from voxgate.engines.piper import PiperTTS
from voxgate.engines.whisper import WhisperSTT

MODELS = VOICE.parent.parent
LONGER = [
    "Tell me a long story about a dragon and a knight.",
    "Why is the sky blue? Explain it in a few sentences.",
    "My name is Ada and I live in a small town near the sea. What should I cook tonight with fish, lemons and rice?",
    "Stop. What is two plus two?",
]
NUMBERS = {"two": "2", "four": "4"}


def words(text: str) -> list[str]:
    return [NUMBERS.get(w, w) for w in re.findall(r"[a-z0-9']+", text.lower())]


def word_errors(reference: str, heard: str) -> tuple[int, int]:
    """Levenshtein distance over words, and the reference's length."""
    ref, hyp = words(reference), words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1], len(ref)


def main() -> None:
    console = Console()
    tts = PiperTTS("piper-en_US-joe-medium", VOICE)
    texts = QUESTIONS + LONGER
    clips: dict[str, list[np.ndarray]] = {"whole": [], "first 200 ms lost": []}
    for text in texts:
        pcm = np.concatenate([c.pcm for c in tts.synthesize(text)]).astype(np.float32) / 32768
        speech = audio.resample(pcm, tts.sample_rate, RATE)
        for kept, lost in zip(clips.values(), (0, RATE // 5), strict=True):
            silence_before, silence_after = np.zeros(RATE // 4, np.float32), np.zeros(RATE // 5, np.float32)
            kept.append(np.concatenate([silence_before, speech[lost:], silence_after]))
    rows = []
    for name in ("whisper-tiny.en",):
        stt = WhisperSTT(name, MODELS / name, workers=1)
        stt.warm_up()
        paths = {
            "window_30s": lambda c, stt=stt: " ".join(
                s.text.strip()
                for s in stt._model.transcribe(
                    c, language="en", beam_size=1, vad_filter=True, condition_on_previous_text=False
                )[0]
            ),
            "fitted": lambda c, stt=stt: stt.transcribe(c).text,
        }
        for (path, transcribe), (clip_set, heard_clips) in itertools.product(paths.items(), clips.items()):
            errors = total = exact = 0
            times, misheard = [], []
            for text, clip in zip(texts, heard_clips, strict=True):
                start = time.perf_counter()
                heard = transcribe(clip)
                times.append((time.perf_counter() - start) * 1000)
                e, n = word_errors(text, heard)
                errors, total, exact = errors + e, total + n, exact + (e == 0)
                if e:
                    misheard.append({"said": text, "heard": heard})
            rows.append(
                {
                    "model": name,
                    "path": path,
                    "clips_set": clip_set,
                    "wer_percent": round(100 * errors / total, 1),
                    "exact": exact,
                    "clips": len(texts),
                    "median_ms": round(statistics.median(times)),
                    "p95_ms": round(float(np.percentile(times, 95))),
                    "misheard": misheard,
                }
            )
    table = Table(title="speech to text, one thread")
    for column in ("model", "path", "clips", "WER %", "exact", "median ms", "p95 ms"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["model"],
            r["path"],
            r["clips_set"],
            str(r["wer_percent"]),
            f"{r['exact']}/{r['clips']}",
            str(r["median_ms"]),
            str(r["p95_ms"]),
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"stt-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
                "definition": __doc__,
                "rows": rows,
            },
            indent=1,
        )
    )
    console.print(f"results: {out}")


if __name__ == "__main__":
    main()
