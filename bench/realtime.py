"""Benchmark a spoken conversation over /v1/realtime: time to first audio, turn-taking, barge-in.

What a voice user feels is the gap between the end of their sentence and the first sound of
the answer, and whether the assistant talks over them, cuts them off, or stops when asked.
This drives real WebSocket clients against a real `voxgate serve` (default models, auth on
with a key from `voxgate users add`, a fresh data dir, greedy answers):

  single       one session, a conversation of >= 10 spoken questions in sequence
  four         4 sessions at once, questions staggered by 0.7 s, 4 questions each
  four_busy    the same beside a process spinning on one core (ratio to `four`)
  pause        "What is the capital of" + 700 ms + "France?": cut or not
  echo         the reply played back into the microphone at -12 dB: interrupted or not
  interrupt    "Stop. What is two plus two?" 1 s into a long reply: how fast it stops
  backchannel  "Mm-hmm." / "Okay." 1 s into a long reply, 10 takes of each: how many interrupted it
  openai       `single` through the OpenAI Realtime API protocol (semantic_vad = voxgate's smart
               turn detection; audio in as input_audio_buffer.append, out as
               response.output_audio.delta): what the compatibility layer costs

Questions are spoken by the Piper voice in this process before the server starts (so the
benchmark's own CPU use does not overlap), trimmed to their voiced part by energy, and
streamed as a microphone would: 20 ms frames of 16 kHz int16 on an absolute monotonic
schedule, silence between questions, never a pause in the stream. Every wait has a
timeout: a hang fails its sample, not the run.

    python bench/realtime.py                 # all cases, a few minutes on 2 cores
    python bench/realtime.py --quick --cases single,pause
"""

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from websockets.asyncio.client import ClientConnection, connect

from voxgate import audio

RESULTS = Path(__file__).parent / "results"
VOICE = Path.home() / ".cache" / "voxgate" / "models" / "piper-en_US-joe-medium" / "voice.onnx"
RATE = 16_000
FRAME = RATE // 50  # 20 ms
LEAD_IN = RATE // 2  # 0.5 s of silence before each question
ANSWER_TIMEOUT = 60.0  # from the end of the question; a missing answer by then is an error
ECHO_GAIN = 10 ** (-12 / 20)  # -12 dB: the speaker next to the microphone
ECHO_CAP = 20.0  # s of reply played back before the echo sample stops listening
BARGE_WINDOW = 8.0  # s after an interruption's speech ends to wait for `interrupted`
BACKCHANNEL_WINDOW = 4.0  # s after "mm-hmm" ends to wait for `interrupted`
# Piper says a phrase a little differently each time, and Whisper hears some takes of
# "Mm-hmm." as words: several takes make the case a rate, not one take's luck.
BACKCHANNEL_TAKES = 10
STAGGER = 0.7  # s between the four sessions' first questions
SESSION_START = {"type": "session.start", "reply_as": "voice", "input_format": "pcm16", "sample_rate": RATE}

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What color is the sky?",
    "How many days are in a week?",
    "What is the largest planet?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water?",
    "How many continents are there?",
    "What is the capital of Japan?",
    "What do bees make?",
    "How many hours are in a day?",
    "What is the opposite of hot?",
    "What animal says moo?",
    "What is the tallest mountain?",
    "How many wheels does a bicycle have?",
    "What is frozen water called?",
]
PAUSE_PARTS = ("What is the capital of", "France?")
PAUSE_MS = 700
ECHO_QUESTION = "Why is the sky blue? Explain it in a few sentences."
STORY = "Tell me a long story about a dragon and a knight."
INTERRUPTION = "Stop. What is two plus two?"
BACKCHANNELS = ("Mm-hmm.", "Okay.")

DEFINITIONS = {
    "ttfa_ms": "time to first audio: from sending the 20 ms frame that holds the question's last voiced sample "
    "(Piper audio trimmed by energy, -35 dB below its loudest 10 ms) to the arrival of the first "
    "`audio` message after the question's first voiced sample; negative if the server answered "
    "before the user finished",
    "timings": "the server's own `done.timings` (ms), recorded as sent; stage medians over the turns that have them",
    "p95": "95th percentile, linear interpolation between samples (numpy default); with few samples it is "
    "close to the maximum",
    "error": "an `error` message, a closed socket, or no `done`/`interrupted` within 60 s of the question's end, "
    "or a turn that ended without any audio",
    "busy_ratio": "four_busy p95 TTFA / four p95 TTFA (and the same for p50)",
    "cut": "pause case: a `transcript` or `speech.stopped` arrived before the question's last voiced sample was "
    "sent, or the first transcript lacks 'france'",
    "echo_outcome": "echo case: `interrupted` (the reply stopped itself), `done` (played to the end) or "
    f"`still_playing` (neither within {ECHO_CAP:.0f} s of the first audio; then cancelled)",
    "openai_ttfa_ms": "openai case: ttfa_ms with the OpenAI protocol's events (`response.output_audio.delta` for "
    "`audio`, `response.done` for `done`), same questions and microphone as `single`",
    "paused_ms": "interrupt case: from sending the frame with the interruption's first voiced sample to the "
    "arrival of `output.paused` (the client stops playback there; the target's measure)",
    "stop_ms": "interrupt case: from sending the frame with the interruption's first voiced sample to the "
    "arrival of `interrupted` (generation and synthesis stopped, the trimmed reply stored)",
    "last_audio_ms": "interrupt case: from the interruption's first voiced sample to the arrival of the last "
    "`audio` message of the interrupted reply (null: none arrived after the user began)",
    "held_ms": "backchannel case: from `output.paused` to `output.resumed`, how long the reply stood still "
    "while the speech over it was heard and judged",
    "backchannel_interrupted": f"`interrupted` arrived within {BACKCHANNEL_WINDOW:.0f} s after the "
    "acknowledgement's speech ended",
    "backchannel_ignored": "share of the backchannel samples (`backchannel_takes` Piper takes of each phrase, "
    "each said over its own reply) that did not interrupt the reply",
    "speech_over_replies": "how the server heard and judged each short speech over a reply (its log lines: "
    "Whisper's close readings; when it was unsure, a line naming the second opinion asked before the readings "
    "that decided; back-channel or interruption)",
    "event times": "raw samples list every server message as [ms since the session's socket opened, type, detail]",
}
TARGETS = {
    "single_median_ms": 900,
    "single_p95_ms": 1200,
    "four_p95_ms": 2000,
    "four_errors": 0,
    "busy_ratio": 2.0,
    "pause_cut": False,
    "echo_interrupted": False,
    "interrupt_stop_ms": 300,
    "backchannel_ignored": 0.9,
}


# Speech.


@dataclass
class Clip:
    """Microphone audio for one utterance: float32 at 16 kHz, with named sample positions."""

    text: str
    pcm: np.ndarray
    marks: dict[str, int]

    @property
    def voiced_seconds(self) -> float:
        return (self.marks["voiced_end"] - self.marks["voiced_start"] + 1) / RATE


def voiced_part(samples: np.ndarray) -> np.ndarray:
    """Piper pads speech with quiet lead-in and tail; keep what is within 35 dB of the loudest 10 ms."""
    win = RATE // 100
    rms = np.sqrt(np.mean(samples[: len(samples) // win * win].reshape(-1, win) ** 2, axis=1))
    voiced = np.flatnonzero(rms > max(rms.max() * 10 ** (-35 / 20), 1e-4))
    return samples[voiced[0] * win : (voiced[-1] + 1) * win]


def clip(text: str, parts: list[np.ndarray], lead_in: int = LEAD_IN, gap_ms: int = 0) -> Clip:
    """Lead-in silence, then the voiced parts separated by `gap_ms` of silence."""
    pieces, marks, pos = [np.zeros(lead_in, np.float32)], {"voiced_start": lead_in}, lead_in
    for i, part in enumerate(parts):
        if i:
            pieces.append(np.zeros(RATE * gap_ms // 1000, np.float32))
            marks[f"part{i}_end"] = pos - 1
            pos += RATE * gap_ms // 1000
            marks[f"part{i + 1}_start"] = pos
        pieces.append(part)
        pos += len(part)
    marks["voiced_end"] = pos - 1
    return Clip(text, np.concatenate(pieces).astype(np.float32), marks)


def synthesize(console: Console, backchannel_takes: int = BACKCHANNEL_TAKES) -> dict:
    """Every utterance the benchmark says, spoken by Piper and resampled to 16 kHz."""
    from voxgate.engines.piper import PiperTTS

    tts = PiperTTS("piper-en_US-joe-medium", VOICE)

    def say(text: str) -> np.ndarray:
        chunks = [c.pcm for c in tts.synthesize(text)]
        pcm = np.concatenate(chunks).astype(np.float32) / 32768
        return voiced_part(audio.resample(pcm, tts.sample_rate, RATE))

    with console.status("speaking the questions with Piper"):
        clips = {
            "questions": [clip(q, [say(q)]) for q in QUESTIONS],
            "pause": clip(" ".join(PAUSE_PARTS), [say(p) for p in PAUSE_PARTS], gap_ms=PAUSE_MS),
            "echo": clip(ECHO_QUESTION, [say(ECHO_QUESTION)]),
            "story": clip(STORY, [say(STORY)]),
            "interruption": clip(INTERRUPTION, [say(INTERRUPTION)], lead_in=0),
            "backchannels": [clip(b, [say(b)], lead_in=0) for _ in range(backchannel_takes) for b in BACKCHANNELS],
        }
    return clips


# The server.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(workdir: Path, console: Console, **settings: str):
    """A fresh `voxgate serve` with auth on and `settings` (VOXGATE_ variables); yields
    (url, api key, env overrides)."""
    port = free_port()
    overrides = {"VOXGATE_AUTH": "on", "VOXGATE_DATA_DIR": str(workdir), "VOXGATE_TEMPERATURE": "0", **settings}
    env = {**os.environ, **overrides, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "400"}
    added = subprocess.run(
        [sys.executable, "-m", "voxgate", "users", "add", "bench"], env=env, capture_output=True, text=True, timeout=120
    )
    found = re.search(r"API key:\s*(vg_\S+)", added.stdout + added.stderr)
    if added.returncode or not found:
        raise RuntimeError(f"`voxgate users add` failed:\n{added.stdout}\n{added.stderr}")
    log = workdir / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxgate", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with console.status("waiting for the server to load its models"):
            deadline = time.monotonic() + 240
            while not _ready(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"voxgate did not become ready:\n{log.read_text()[-4000:]}")
                time.sleep(0.5)
        yield url, found.group(1), overrides
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def server_log(workdir: Path) -> list[str]:
    log = workdir / "server.log"
    return log.read_text(errors="replace").splitlines() if log.exists() else []


def server_log_problems(workdir: Path) -> list[str]:
    """Errors the server logged during the run, each with its traceback."""
    problems: list[str] = []
    inside = False
    for line in server_log(workdir):
        if line.startswith(("ERROR", "CRITICAL")):
            inside = True
        elif line.startswith(("INFO", "WARNING", "DEBUG")):
            inside = False
        if inside and len(problems) < 300:
            problems.append(line[:300])
    return problems


# A client: a microphone that never stops, and a receiver that timestamps every message.


@dataclass
class Said:
    """When each marked sample of an utterance went out (time.monotonic())."""

    clip: Clip
    at: dict[str, float] = field(default_factory=dict)
    pos: int = 0


class Microphone:
    """Sends one 20 ms frame per tick on an absolute schedule (no drift): queued speech,
    else silence, with the reply's playback mixed in when the echo case turns it on."""

    MAX_SECONDS = 600

    def __init__(self, ws: ClientConnection, encode: Callable[[bytes], bytes | str] = bytes):
        self.ws = ws
        self.encode = encode  # a 20 ms frame as the protocol sends it
        self.queue: list[Said] = []
        self.echo = np.zeros(0, np.float32)
        self.echo_paused = False  # the client paused playback (`output.paused`)
        self.echo_played = 0
        self.max_lag = 0.0

    def say(self, utterance: Clip) -> Said:
        said = Said(utterance)
        self.queue.append(said)
        return said

    def _frame(self) -> tuple[np.ndarray, list[tuple[Said, int, int]]]:
        frame, filled, spans = np.zeros(FRAME, np.float32), 0, []
        while filled < FRAME and self.queue:
            said = self.queue[0]
            n = min(FRAME - filled, len(said.clip.pcm) - said.pos)
            frame[filled : filled + n] = said.clip.pcm[said.pos : said.pos + n]
            spans.append((said, said.pos, said.pos + n))
            said.pos += n
            filled += n
            if said.pos >= len(said.clip.pcm):
                self.queue.pop(0)
        if len(self.echo) and not self.echo_paused:
            n = min(FRAME, len(self.echo))
            frame[:n] += self.echo[:n]
            self.echo = self.echo[n:]
            self.echo_played += n
        return frame, spans

    async def run(self) -> None:
        begin = time.monotonic()
        for tick in range(self.MAX_SECONDS * RATE // FRAME):
            lag = time.monotonic() - (begin + tick * FRAME / RATE)
            if lag < 0:
                await asyncio.sleep(-lag)
            self.max_lag = max(self.max_lag, lag)
            frame, spans = self._frame()
            await self.ws.send(self.encode((np.clip(frame, -1, 1) * 32767).astype("<i2").tobytes()))
            sent = time.monotonic()
            for said, start, end in spans:
                for name, index in said.clip.marks.items():
                    if start <= index < end:
                        said.at[name] = sent
                if end >= len(said.clip.pcm):
                    said.at["end"] = sent


class Session:
    """One /v1/realtime socket: its microphone, and every message it received with its arrival time."""

    def __init__(
        self,
        ws: ClientConnection,
        encode: Callable[[bytes], bytes | str] = bytes,
        translate: Callable[[dict], dict | None] | None = None,
    ):
        self.ws = ws
        self.mic = Microphone(ws, encode)
        self.translate = translate  # another protocol's events as voxgate's (None: not needed)
        self.opened = time.monotonic()
        self.events: list[tuple[float, dict]] = []
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.playback = False  # echo case: the reply's audio goes back into the microphone
        self.closed: str | None = None
        self.conversation_id: str | None = None

    def _note(self, message: dict) -> dict:
        """The message without its audio payload (kept: its duration); playback if on."""
        if message.get("type") != "audio" or "audio" not in message:
            return message
        wav = base64.b64decode(message.get("audio", ""))
        note = {k: v for k, v in message.items() if k != "audio"}
        try:
            with wave.open(io.BytesIO(wav)) as w:
                rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")
            note["duration_ms"] = round(len(pcm) / rate * 1000, 1)
            if self.playback:
                played = audio.resample(pcm.astype(np.float32) / 32768, rate, RATE) * ECHO_GAIN
                self.mic.echo = np.concatenate([self.mic.echo, played])[: RATE * 120]
        except (wave.Error, EOFError) as exc:
            note["decode_error"] = str(exc)
        return note

    async def receive(self) -> None:
        try:
            async for raw in self.ws:
                arrived = time.monotonic()
                if isinstance(raw, bytes):
                    continue
                message = json.loads(raw)
                if self.translate is not None and (message := self.translate(message)) is None:
                    continue
                message = self._note(message)
                if message.get("type") == "interrupted" and self.playback:
                    self.mic.echo = np.zeros(0, np.float32)  # the client stops playing
                if message.get("type") in ("output.paused", "output.resumed"):
                    self.mic.echo_paused = message["type"] == "output.paused"
                self.events.append((arrived, message))
                self.inbox.put_nowait((arrived, message))
            self.closed = f"closed by the server ({self.ws.close_code})"
        except Exception as exc:  # noqa: BLE001 - any failure closes this session, not the run
            self.closed = f"{type(exc).__name__}: {exc}"

    async def next(self, timeout: float) -> tuple[float, dict] | None:
        try:
            return await asyncio.wait_for(self.inbox.get(), timeout=max(0.0, timeout))
        except TimeoutError:
            return None

    async def wait_for(self, match: Callable[[float, dict], bool], deadline: float) -> tuple[float, dict] | None:
        """The next message that matches (or an `error`), or None at the deadline or when closed."""
        while time.monotonic() < deadline and self.closed is None:
            got = await self.next(min(0.25, deadline - time.monotonic()))
            if got is not None and (got[1].get("type") == "error" or match(*got)):
                return got
        return None

    async def cancel(self) -> None:
        """Stop whatever reply is running and let the server settle before the next sample."""
        if self.closed:
            return
        with contextlib.suppress(Exception):
            await self.ws.send(json.dumps({"type": "response.cancel"}))
            await self.wait_for(lambda t, m: m["type"] in ("interrupted", "done"), time.monotonic() + 3)

    def ms(self, moment: float | None) -> float | None:
        return None if moment is None else round((moment - self.opened) * 1000, 1)

    def log(self, since: int = 0) -> list[list]:
        """Raw events: [ms since the socket opened, type, detail]."""
        return [[self.ms(t), m.get("type"), _detail(m)] for t, m in self.events[since:]]


def _detail(m: dict):
    """What the log keeps of a message."""
    match m.get("type"):
        case "audio":
            return {k: m.get(k) for k in ("index", "duration_ms", "text")}
        case "text":
            return m.get("delta")
        case "transcript":
            return m.get("text")
        case "error":
            return m.get("error")
        case "done" | "interrupted":
            return {"reply": m.get("reply"), "timings": m.get("timings"), "usage": m.get("usage")}
    return None


@contextlib.asynccontextmanager
async def session(url: str, key: str, start: dict):
    async with connect(
        f"{url.replace('http', 'ws', 1)}/v1/realtime",
        subprotocols=["voxgate", f"bearer.{key}"],
        open_timeout=15,
        close_timeout=3,
        ping_interval=None,
        max_size=64 * 2**20,
    ) as ws:
        await ws.send(json.dumps(start))
        ready = json.loads(await asyncio.wait_for(ws.recv(), timeout=15))
        if ready.get("type") != "session.ready":
            raise RuntimeError(f"no session.ready: {ready}")
        s = Session(ws)
        s.conversation_id = ready.get("conversation_id")
        async with _live(s):
            yield s


@contextlib.asynccontextmanager
async def openai_session(url: str, key: str, start: dict):
    """A session in the OpenAI Realtime protocol, set up like `session`'s default: smart turn
    detection (semantic_vad), 16 kHz pcm16 in, spoken replies."""
    async with connect(
        f"{url.replace('http', 'ws', 1)}/v1/realtime?model=default",
        additional_headers={"Authorization": f"Bearer {key}"},
        open_timeout=15,
        close_timeout=3,
        ping_interval=None,
        max_size=64 * 2**20,
    ) as ws:
        update = {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": RATE}, "turn_detection": {"type": "semantic_vad"}}
            },
        }
        for expected, reply in (
            ("session.created", None),
            ("session.updated", {"type": "session.update", "session": update}),
        ):
            if reply:
                await ws.send(json.dumps(reply))
            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=15))
            if event.get("type") != expected:
                raise RuntimeError(f"no {expected}: {event}")

        def append(pcm: bytes) -> str:
            return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})

        async with _live(Session(ws, append, from_openai)) as s:
            yield s


def from_openai(event: dict) -> dict | None:
    """An OpenAI Realtime server event as the voxgate message `ask` waits for."""
    match event.get("type"):
        case "response.output_audio.delta":
            return {"type": "audio", "duration_ms": round(len(base64.b64decode(event["delta"])) / 48, 1)}  # 24 kHz
        case "conversation.item.input_audio_transcription.completed":
            return {"type": "transcript", "text": event["transcript"]}
        case "input_audio_buffer.speech_stopped":
            return {"type": "speech.stopped"}
        case "response.done":
            response = event["response"]
            parts = [part for item in response["output"] for part in item["content"]]
            return {
                "type": "done" if response["status"] == "completed" else "interrupted",
                "reply": " ".join(part.get("transcript") or part.get("text") or "" for part in parts),
            }
        case "error":
            return {"type": "error", "error": event["error"]}
    return None


@contextlib.asynccontextmanager
async def _live(s: Session):
    """The session's receiver and microphone running."""
    tasks = [asyncio.create_task(s.receive()), asyncio.create_task(s.mic.run())]
    try:
        yield s
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _between(s: Session, since: int, kinds: tuple[str, ...], start: float, end: float = float("inf")) -> list:
    return [(t, m) for t, m in s.events[since:] if m.get("type") in kinds and start <= t <= end]


async def ask(s: Session, question: Clip) -> dict:
    """Say a question, keep the microphone open, and wait for its `done`/`interrupted`/`error`."""
    since = len(s.events)
    said = s.mic.say(question)
    hard = time.monotonic() + len(question.pcm) / RATE + ANSWER_TIMEOUT + 5
    status, final = "timeout", None
    while time.monotonic() < hard:
        if s.closed:
            status = "closed"
            break
        end = said.at.get("voiced_end")
        if end is not None and time.monotonic() > end + ANSWER_TIMEOUT:
            break
        got = await s.next(0.25)
        if got is None:
            continue
        t, m = got
        if m.get("type") == "error":
            status, final = "error", m
            break
        # A `done` before the question ended belongs to a turn cut out of its first part.
        if m.get("type") in ("done", "interrupted") and end is not None and t >= end:
            status, final = m["type"], m
            break
    if status in ("timeout", "error"):
        await s.cancel()
    start, end = said.at.get("voiced_start"), said.at.get("voiced_end")
    audios = _between(s, since, ("audio",), start or float("inf"))
    early = _between(s, since, ("transcript", "speech.stopped"), 0, end or float("inf"))
    transcripts = [m.get("text") for _, m in _between(s, since, ("transcript",), 0)]
    ttfa = round((audios[0][0] - end) * 1000, 1) if audios and end else None
    return {
        "question": question.text,
        "status": status,
        "ttfa_ms": ttfa,
        "error": s.closed if status == "closed" else (final or {}).get("error") if status == "error" else None,
        "transcripts": transcripts,
        "started_before_end": bool(early),
        "reply": (final or {}).get("reply"),
        "timings": (final or {}).get("timings"),
        "usage": (final or {}).get("usage"),  # the LLM's prompt, completion and cached tokens
        "audio_messages": len(audios),
        "voiced_start_ms": s.ms(start),
        "voiced_end_ms": s.ms(end),
        "events": s.log(since),
    }


def failed(sample: dict) -> bool:
    return sample["status"] not in ("done", "interrupted") or sample["ttfa_ms"] is None


# Statistics.


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def ttfa_summary(samples: list[dict]) -> dict:
    ok = [s["ttfa_ms"] for s in samples if not failed(s)]
    return {
        "n": len(samples),
        "ok": len(ok),
        "errors": len(samples) - len(ok),
        "median": pct(ok, 50),
        "p95": pct(ok, 95),
        "min": min(ok, default=None),
        "max": max(ok, default=None),
    }


def stage_medians(samples: list[dict]) -> dict:
    stages: dict[str, list[float]] = {}
    for s in samples:
        for key, value in (s.get("timings") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                stages.setdefault(key, []).append(value)
    return {key: round(statistics.median(values), 1) for key, values in stages.items()}


# Cases.


@dataclass
class Bench:
    url: str
    key: str
    clips: dict
    quick: bool
    console: Console
    start: dict


async def guarded(coro, seconds: float, what: dict) -> dict:
    """A sample that hangs or crashes is recorded as failed; the run goes on."""
    try:
        return await asyncio.wait_for(coro, timeout=seconds)
    except Exception as exc:  # noqa: BLE001
        return {**what, "status": "failed", "ttfa_ms": None, "error": f"{type(exc).__name__}: {exc}"}


async def warm_up(b: Bench) -> dict:
    """One turn on its own session: the first realtime turn loads and fills caches."""

    async def run():
        async with session(b.url, b.key, b.start) as s:
            return await ask(s, b.clips["questions"][-1])

    return await guarded(run(), 120, {"question": b.clips["questions"][-1].text})


async def case_single(b: Bench, opener=session, label: str = "single") -> dict:
    turns = 5 if b.quick else 12
    questions = b.clips["questions"]

    async def run():
        samples = []
        async with opener(b.url, b.key, b.start) as s:
            for i in range(turns):
                sample = await guarded(
                    ask(s, questions[i % len(questions)]), 120, {"question": questions[i % len(questions)].text}
                )
                samples.append(sample)
                b.console.print(
                    f"  {label} {i + 1}/{turns}: {sample['status']} ttfa={sample['ttfa_ms']} ms "
                    f"heard={sample.get('transcripts')}"
                )
                if s.closed:
                    break
        return samples

    samples = await run()
    return {
        "summary": {"ttfa_ms": ttfa_summary(samples), "stage_median_ms": stage_medians(samples)},
        "samples": samples,
    }


async def case_four(b: Bench, label: str = "four") -> dict:
    per_session = 2 if b.quick else 4
    questions = b.clips["questions"]

    async def one(i: int) -> list[dict]:
        samples = []
        try:
            async with session(b.url, b.key, b.start) as s:
                await asyncio.sleep(i * STAGGER)
                for j in range(per_session):
                    q = questions[(i * per_session + j) % len(questions)]
                    sample = await guarded(ask(s, q), 120, {"question": q.text})
                    samples.append({"session": i, **sample})
                    if s.closed:
                        break
        except Exception as exc:  # noqa: BLE001 - a session that cannot open fails its questions
            samples.append({"session": i, "status": "failed", "ttfa_ms": None, "error": f"{type(exc).__name__}: {exc}"})
        samples += [{"session": i, "status": "not asked", "ttfa_ms": None}] * (per_session - len(samples))
        return samples

    samples = [s for group in await asyncio.gather(*(one(i) for i in range(4))) for s in group]
    summary = ttfa_summary(samples)
    b.console.print(f"  {label}: {summary}")
    return {"summary": {"ttfa_ms": summary, "stage_median_ms": stage_medians(samples)}, "samples": samples}


async def case_four_busy(b: Bench, quiet: dict | None) -> dict:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        await asyncio.sleep(1.0)  # let the scheduler see it as a steady load
        result = await case_four(b, "four_busy")
    finally:
        spinner.kill()
        spinner.wait(timeout=10)
    busy = result["summary"]["ttfa_ms"]
    ratio = {}
    if quiet:
        q = quiet["summary"]["ttfa_ms"]
        for key in ("median", "p95"):
            ratio[key] = round(busy[key] / q[key], 2) if busy[key] and q[key] else None
    result["summary"]["ratio_to_four"] = ratio or None
    return result


async def case_pause(b: Bench) -> dict:
    question = b.clips["pause"]
    repeats = 1 if b.quick else 2

    async def run():
        async with session(b.url, b.key, b.start) as s:
            sample = await ask(s, question)
            first = (sample["transcripts"] or [""])[0] or ""
            sample["cut"] = sample["started_before_end"] or "france" not in first.lower()
            sample["pause_ms"] = PAUSE_MS
            return sample

    samples = []
    for i in range(repeats):
        sample = await guarded(run(), 120, {"question": question.text, "cut": None})
        samples.append(sample)
        b.console.print(
            f"  pause {i + 1}/{repeats}: cut={sample.get('cut')} ttfa={sample['ttfa_ms']} ms "
            f"heard={sample.get('transcripts')}"
        )
    ok = [s["ttfa_ms"] for s in samples if not failed(s)]
    return {
        "summary": {"cut": [s.get("cut") for s in samples], "ttfa_ms": {"median": pct(ok, 50), "values": ok}},
        "samples": samples,
    }


async def case_echo(b: Bench) -> dict:
    question = b.clips["echo"]
    repeats = 1 if b.quick else 3

    async def run():
        async with session(b.url, b.key, b.start) as s:
            s.playback = True
            said = s.mic.say(question)
            limit = time.monotonic() + len(question.pcm) / RATE + ANSWER_TIMEOUT
            first = await s.wait_for(lambda t, m: m["type"] == "audio", limit)
            sample = {"question": question.text, "voiced_end_ms": s.ms(said.at.get("voiced_end"))}
            if first is None or first[1]["type"] == "error":
                await s.cancel()
                return {
                    **sample,
                    "outcome": "no reply",
                    "error": s.closed or (first or [0, {}])[1].get("error"),
                    "events": s.log(),
                }
            end = await s.wait_for(lambda t, m: m["type"] in ("interrupted", "done"), first[0] + ECHO_CAP)
            outcome = end[1]["type"] if end else "still_playing"
            s.playback = False
            s.mic.echo = np.zeros(0, np.float32)
            if outcome != "done":
                await s.cancel()
            after = [m.get("text") for _, m in _between(s, 0, ("transcript",), first[0])]
            return {
                **sample,
                "outcome": outcome,
                "first_audio_ms": s.ms(first[0]),
                "outcome_ms": s.ms(end[0]) if end else None,
                "echo_seconds_played": round(s.mic.echo_played / RATE, 2),
                "speech_started_during_reply": len(_between(s, 0, ("speech.started",), first[0])),
                "paused_during_reply": len(_between(s, 0, ("output.paused",), first[0])),
                "transcripts_during_reply": after,
                "reply": (end or [0, {}])[1].get("reply"),
                "error": (end or [0, {}])[1].get("error"),
                "events": s.log(),
            }

    samples = []
    for i in range(repeats):
        sample = await guarded(run(), ANSWER_TIMEOUT + ECHO_CAP + 30, {"question": question.text, "outcome": "failed"})
        samples.append(sample)
        b.console.print(
            f"  echo {i + 1}/{repeats}: {sample.get('outcome')} after "
            f"{sample.get('echo_seconds_played')} s of echo {sample.get('error') or ''}"
        )
    return {
        "summary": {
            "outcomes": [s.get("outcome") for s in samples],
            "paused": [s.get("paused_during_reply") for s in samples],
            "interrupted": sum(s.get("outcome") == "interrupted" for s in samples),
        },
        "samples": samples,
    }


async def talk_over(b: Bench, words: Clip, window: float) -> dict:
    """A long reply; 1 s after its first audio, `words` are said over it."""
    story = b.clips["story"]
    async with session(b.url, b.key, b.start) as s:
        s.mic.say(story)
        limit = time.monotonic() + len(story.pcm) / RATE + ANSWER_TIMEOUT
        first = await s.wait_for(lambda t, m: m["type"] == "audio", limit)
        sample = {"said": words.text}
        if first is None or first[1]["type"] == "error":
            await s.cancel()
            return {
                **sample,
                "outcome": "no reply",
                "error": s.closed or (first or [0, {}])[1].get("error"),
                "events": s.log(),
            }
        await asyncio.sleep(1.0)
        if _between(s, 0, ("done", "interrupted"), first[0]):
            return {**sample, "outcome": "reply ended before the user spoke", "events": s.log()}
        said = s.mic.say(words)
        end = await s.wait_for(
            lambda t, m: m["type"] in ("interrupted", "done"), time.monotonic() + words.voiced_seconds + window
        )
        begin = said.at.get("voiced_start")
        outcome = end[1]["type"] if end else "still_playing"
        old_audio = _between(s, 0, ("audio",), begin or float("inf"), end[0] if end else float("inf"))
        paused = _between(s, 0, ("output.paused",), begin or float("inf"))
        resumed = _between(s, 0, ("output.resumed",), begin or float("inf"))
        result = {
            **sample,
            "outcome": outcome,
            "first_audio_ms": s.ms(first[0]),
            "voiced_start_ms": s.ms(begin),
            "paused_ms": round((paused[0][0] - begin) * 1000, 1) if paused else None,
            "resumed": bool(resumed),
            "held_ms": round((resumed[0][0] - paused[0][0]) * 1000, 1) if paused and resumed else None,
            "stop_ms": round((end[0] - begin) * 1000, 1) if end and outcome == "interrupted" and begin else None,
            "last_audio_ms": round((old_audio[-1][0] - begin) * 1000, 1) if old_audio else None,
            "audio_messages_after_user_began": len(old_audio),
            "error": (end or [0, {}])[1].get("error"),
        }
        if outcome == "interrupted":
            await asyncio.sleep(1.0)  # anything still arriving from the stopped reply is a late stop
        await s.cancel()
        result["voiced_end_ms"] = s.ms(said.at.get("voiced_end"))  # null: still being said when it ended
        result["transcripts"] = [m.get("text") for _, m in _between(s, 0, ("transcript",), 0)]
        result["events"] = s.log()
        return result


async def case_interrupt(b: Bench) -> dict:
    repeats = 1 if b.quick else 3
    samples = []
    for i in range(repeats):
        sample = await guarded(
            talk_over(b, b.clips["interruption"], BARGE_WINDOW),
            ANSWER_TIMEOUT + 40,
            {"said": INTERRUPTION, "outcome": "failed"},
        )
        samples.append(sample)
        b.console.print(
            f"  interrupt {i + 1}/{repeats}: {sample.get('outcome')} paused={sample.get('paused_ms')} ms "
            f"stop={sample.get('stop_ms')} ms last audio={sample.get('last_audio_ms')} ms "
            f"{sample.get('error') or ''}"
        )
    stops = [s["stop_ms"] for s in samples if s.get("stop_ms") is not None]
    pauses = [s["paused_ms"] for s in samples if s.get("paused_ms") is not None]
    lasts = [s["last_audio_ms"] for s in samples if s.get("last_audio_ms") is not None]
    return {
        "summary": {
            "outcomes": [s.get("outcome") for s in samples],
            "stop_ms_median": pct(stops, 50),
            "paused_ms_median": pct(pauses, 50),
            "paused_ms": pauses,
            "last_audio_ms_median": pct(lasts, 50),
            "stop_ms": stops,
        },
        "samples": samples,
    }


async def case_backchannel(b: Bench) -> dict:
    takes = b.clips["backchannels"][: len(BACKCHANNELS) if b.quick else None]
    samples = []
    for i, words in enumerate(takes):
        sample = await guarded(
            talk_over(b, words, BACKCHANNEL_WINDOW), ANSWER_TIMEOUT + 40, {"said": words.text, "outcome": "failed"}
        )
        sample["interrupted"] = sample.get("outcome") == "interrupted"
        samples.append(sample)
        b.console.print(
            f"  backchannel {i + 1}/{len(takes)} ({words.text}): {sample.get('outcome')} "
            f"paused={sample.get('paused_ms')} ms resumed={sample.get('resumed')} held={sample.get('held_ms')} ms "
            f"{sample.get('error') or ''}"
        )
    return {
        "summary": {
            "outcomes": _group(samples),
            "resumed": sum(s.get("resumed", False) for s in samples),
            "held_ms": [s["held_ms"] for s in samples if s.get("held_ms") is not None],
            "interrupted": sum(s["interrupted"] for s in samples),
            "ignored": round(1 - sum(s["interrupted"] for s in samples) / len(samples), 3),
            "n": len(samples),
        },
        "samples": samples,
    }


def _group(samples: list[dict]) -> dict:
    out: dict[str, list] = {}
    for s in samples:
        out.setdefault(s["said"], []).append(s.get("outcome"))
    return out


CASES = ("single", "openai", "four", "four_busy", "pause", "echo", "interrupt", "backchannel")


async def run_cases(b: Bench, cases: list[str]) -> dict:
    results: dict = {"warm_up": await warm_up(b)}
    b.console.print(f"warm-up: {results['warm_up']['status']} ttfa={results['warm_up']['ttfa_ms']} ms")
    runners = {
        "single": case_single,
        "four": case_four,
        "pause": case_pause,
        "echo": case_echo,
        "interrupt": case_interrupt,
        "backchannel": case_backchannel,
        "four_busy": lambda b: case_four_busy(b, results.get("four")),
        "openai": lambda b: case_single(b, openai_session, "openai"),
    }
    for name in cases:
        b.console.rule(name)
        started = time.monotonic()
        try:
            results[name] = await runners[name](b)
        except Exception as exc:  # noqa: BLE001 - a broken case is reported, the others still run
            results[name] = {"summary": None, "error": f"{type(exc).__name__}: {exc}", "samples": []}
            b.console.print(f"[red]{name} failed:[/] {exc}")
        results[name]["seconds"] = round(time.monotonic() - started, 1)
    return results


# Report.


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "ram_gb": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def server_settings(overrides: dict) -> dict:
    """The settings the server read (same environment), without secrets."""
    try:
        from voxgate.config import Settings

        with mock.patch.dict(os.environ, overrides):  # read as the server reads them
            dumped = Settings().model_dump(mode="json")  # SecretStr fields come out masked
        return {k: v for k, v in dumped.items() if not re.search(r"secret|api_key|password", k)}
    except Exception as exc:  # noqa: BLE001 - the settings class is being edited; the env still says enough
        return {"unavailable": f"{type(exc).__name__}: {exc}"}


def git_state() -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"), "uncommitted": git("status", "--porcelain", "--", "src").splitlines()}


def fmt(value, unit: str = " ms", digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("[green]yes[/]" if ok else "[red]no[/]")


def show(results: dict, console: Console) -> dict:
    """Print the table; returns which targets were met."""
    t = Table(title="voxgate realtime conversation benchmark")
    for column in ("case", "metric", "result", "target", "met"):
        t.add_column(column, justify="right" if column in ("result", "target") else "left")
    met: dict[str, bool | None] = {}

    def row(case, metric, value, target="", key=None, ok=None):
        if key:
            met[key] = ok
        t.add_row(case, metric, value, target, verdict(ok) if key else "")

    if results.get("single", {}).get("summary"):
        s = results["single"]["summary"]["ttfa_ms"]
        row(
            "single",
            f"TTFA median ({s['ok']}/{s['n']} turns)",
            fmt(s["median"]),
            "≤ 900 ms",
            "single_median",
            None if s["median"] is None else s["median"] <= TARGETS["single_median_ms"],
        )
        row(
            "",
            "TTFA p95",
            fmt(s["p95"]),
            "≤ 1200 ms",
            "single_p95",
            None if s["p95"] is None else s["p95"] <= TARGETS["single_p95_ms"],
        )
        row("", "TTFA min / max", f"{fmt(s['min'])} / {fmt(s['max'])}")
        row("", "errors", fmt(s["errors"], ""))
        stages = results["single"]["summary"]["stage_median_ms"]
        if stages:
            row("", "server stages (median ms)", ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    if results.get("openai", {}).get("summary"):
        s = results["openai"]["summary"]["ttfa_ms"]
        native = (results.get("single", {}).get("summary") or {}).get("ttfa_ms", {})
        row(
            "openai", f"TTFA median ({s['ok']}/{s['n']} turns)", fmt(s["median"]), f"single {fmt(native.get('median'))}"
        )
        row("", "TTFA p95", fmt(s["p95"]), f"single {fmt(native.get('p95'))}")
        row("", "errors", fmt(s["errors"], ""))
    for name in ("four", "four_busy"):
        if not results.get(name, {}).get("summary"):
            continue
        s = results[name]["summary"]["ttfa_ms"]
        row(name, f"TTFA p50 ({s['ok']}/{s['n']} turns)", fmt(s["median"]))
        row(
            "",
            "TTFA p95",
            fmt(s["p95"]),
            "≤ 2000 ms" if name == "four" else "",
            "four_p95" if name == "four" else None,
            None if s["p95"] is None else s["p95"] <= TARGETS["four_p95_ms"],
        )
        row("", "TTFA max", fmt(s["max"]))
        row("", "errors", fmt(s["errors"], ""), "0", f"{name}_errors", s["errors"] == 0)
        if name == "four_busy":
            ratio = results[name]["summary"].get("ratio_to_four")
            if ratio:
                row(
                    "",
                    "p95 / four p95 (p50 ratio)",
                    f"{fmt(ratio['p95'], '×', 2)} ({fmt(ratio['median'], '×', 2)})",
                    "≤ 2×",
                    "busy_ratio",
                    None if ratio["p95"] is None else ratio["p95"] <= TARGETS["busy_ratio"],
                )
            else:
                row("", "ratio to four", "— (run `four` too)")
    if results.get("pause", {}).get("summary"):
        s = results["pause"]["summary"]
        cuts = s["cut"]
        row(
            "pause",
            f"cut by a {PAUSE_MS} ms pause",
            ", ".join(map(str, cuts)),
            "not cut",
            "pause_cut",
            None if None in cuts else not any(cuts),
        )
        row("", "TTFA after the real end", fmt(s["ttfa_ms"]["median"]))
    if results.get("echo", {}).get("summary"):
        s = results["echo"]["summary"]
        row(
            "echo",
            "outcomes (-12 dB playback)",
            ", ".join(map(str, s["outcomes"])),
            "none interrupted",
            "echo",
            not s["interrupted"] and "failed" not in s["outcomes"] and "no reply" not in s["outcomes"],
        )
    if results.get("interrupt", {}).get("summary"):
        s = results["interrupt"]["summary"]
        row("interrupt", "outcomes", ", ".join(map(str, s["outcomes"])))
        row(
            "",
            "speech start → playback paused (median)",
            fmt(s["paused_ms_median"]),
            "≤ 300 ms",
            "interrupt_stop",
            None
            if s["paused_ms_median"] is None or len(s["paused_ms"]) < len(s["outcomes"])
            else s["paused_ms_median"] <= TARGETS["interrupt_stop_ms"],
        )
        row("", "speech start → interrupted (median)", fmt(s["stop_ms_median"]))
        row("", "speech start → last reply audio (median)", fmt(s["last_audio_ms_median"]))
    if results.get("backchannel", {}).get("summary"):
        s = results["backchannel"]["summary"]
        row(
            "backchannel",
            "outcomes",
            f"{s['n'] - s['interrupted']} of {s['n']} not interrupted; "
            + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in s["outcomes"].items()),
            f"≥ {TARGETS['backchannel_ignored']:.0%} not interrupted",
            "backchannel",
            s["ignored"] >= TARGETS["backchannel_ignored"],
        )
    for name, r in results.items():
        if isinstance(r, dict) and r.get("error") and not r.get("summary"):
            row(name, "case failed", r["error"][:80])
    console.print(t)
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    parser.add_argument("--quick", action="store_true", help="fewer turns and repeats per case")
    parser.add_argument("--takes", type=int, default=BACKCHANNEL_TAKES, help="Piper takes of each back-channel phrase")
    parser.add_argument(
        "--session", default="{}", help='extra session.start fields as JSON, e.g. \'{"turn_detection": "silence"}\''
    )
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if unknown := set(cases) - set(CASES):
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    console = Console()
    if not console.is_terminal:  # piped into a log: keep the table's rows on one line
        console = Console(width=140)
    started = time.monotonic()
    clips = synthesize(console, args.takes)
    start = {**SESSION_START, **json.loads(args.session)}
    load = {"start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="voxgate-bench-") as tmp, serve(Path(tmp), console) as (url, key, env):
        bench = Bench(url, key, clips, args.quick, console, start)
        results = asyncio.run(run_cases(bench, cases))
        load["end"] = os.getloadavg()
        problems = server_log_problems(Path(tmp))
        judged = [line[:300] for line in server_log(Path(tmp)) if "speech over the reply" in line]
    met = show(results, console)
    report = {
        "timestamp": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "cases": cases,
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine() | {"loadavg": load},
        "git": git_state(),
        "server": {
            "env": {k: v for k, v in env.items() if k != "VOXGATE_DATA_DIR"} | {"VOXGATE_DATA_DIR": "<temp>"},
            "settings": server_settings(env),
            "session_start": start,
            "client": {
                "frame_ms": 1000 * FRAME // RATE,
                "lead_in_s": LEAD_IN / RATE,
                "echo_gain_db": -12,
                "answer_timeout_s": ANSWER_TIMEOUT,
                "echo_cap_s": ECHO_CAP,
                "stagger_s": STAGGER,
            },
        },
        "questions": {
            c.text: round(c.voiced_seconds, 3)
            for c in [
                *clips["questions"],
                clips["pause"],
                clips["echo"],
                clips["story"],
                clips["interruption"],
            ]
        },
        "backchannel_takes": [[c.text, round(c.voiced_seconds, 3)] for c in clips["backchannels"]],
        "definitions": DEFINITIONS,
        "targets": TARGETS,
        "targets_met": met,
        "server_log_problems": problems,
        "speech_over_replies": judged,
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"realtime-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if problems:
        console.print(f"[yellow]the server logged errors ({len(problems)} lines); see server_log_problems[/]")
    console.print(f"wrote {path} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
