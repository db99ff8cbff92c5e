"""One realtime voice session: microphone audio in, turn-taking, streamed replies out.

How a turn goes:
1. The VAD finds speech. At its first short pause (`pause_ms`) the session starts on the
   answer at once (STT, the LLM, the first clause's voice), but holds everything back.
2. It asks whether the turn is over: the Smart Turn model judges the audio (`smart`), or a
   longer silence must pass (`silence`, or `smart` after a "not finished" verdict).
3. Confirmed: `speech.stopped`, then whatever is ready goes out at once and the rest
   streams. Speech resumed before that: the held work is dropped, nothing is sent or
   stored, the LLM slot is freed.

Speech while a reply plays is judged before it interrupts: our own voice coming back
through the speakers (`echo.py`) and short acknowledgements ("mm-hmm") leave the reply
alone; anything else stops it, and the stored reply keeps what the client already got.

The session is transport-agnostic: it sends JSON events through an async `send` (the
WebSocket router awaits the socket's drain there, so a slow client slows only its own
session). Every buffer it holds is bounded; closing it cancels all its work.
"""

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from voxgate import audio
from voxgate.echo import EchoGuard
from voxgate.engines.base import Readings
from voxgate.errors import BadRequest, PayloadTooLarge, VoxgateError, internal_error
from voxgate.scheduler import due_at
from voxgate.store.tables import User
from voxgate.turn_events import ClauseAudio, Heard, TextDelta, TurnDone, TurnInput, TurnResult
from voxgate.turns import PreparedTurn, TurnService, wire_event
from voxgate.vad import RATE, SpeechDetector

log = logging.getLogger("voxgate")
Send = Callable[[dict], Awaitable[None]]

# Speech over a reply that lasts longer than this is an interruption, whatever it says.
BACKCHANNEL_MAX_MS = 1000
_BACKCHANNEL_WORDS = frozenset(
    (
        "mm mmm mhm hmm hm uh huh um uhm yeah yes yep yup ok okay right sure alright i see got it cool oh ah aha wow"
    ).split()
)
ECHO_CHECK_EVERY = RATE * 3 // 20  # re-judge speech over a reply every 150 ms of it
MAX_UTTERANCE_SECONDS = 60.0
# How far a client's microphone audio may run ahead of real time (a network burst); past
# that its socket is not read until real time catches up: faster audio is paced, not buffered.
PACE_AHEAD_SECONDS = 2.0
# Speech that starts this soon after the reply's first words went out began before the user
# could hear them (a person answers what they heard some 200 ms later at the quickest, and
# the VAD's start lags the voice): they were still talking, and the turn had ended too soon.
WENT_ON_SECONDS = 0.4
# While the user speaks, the words said so far are evaluated into the LLM's cache this often,
# so most of the turn's prompt is evaluated by the time it ends (engine measurement, 60 % of
# the question evaluated before: first token 227 -> 168 ms median).
PREFILL_EVERY_MS = 1000
OVERLAP_PREROLL_MS = 300
_HEARD_ONSETS = frozenset(("in", "and", "then"))  # heard before a hummed "mm-hmm" (is_backchannel)
# Whisper hears a lone "mm-hmm" as anything ("in a month") unless it expects one.
_BACKCHANNEL_PROMPT = "Mm-hmm. Uh-huh. Yeah. Okay. Right."


_DANGLING_WORDS = frozenset("the a an and or but my your our their his her because um uh of to".split())


def ends_unfinished(text: str) -> bool:
    """'What is the capital of': words cannot end there, whatever the voice did."""
    words = re.findall(r"[a-z']+", text.lower())
    return bool(words) and words[-1] in _DANGLING_WORDS


def is_backchannel(text: str) -> bool:
    """'Mm-hmm.', 'Okay.', 'Yeah, right.': a listener's acknowledgement, not a request.
    Whisper often hears the onset of a hummed "mm-hmm" as words before it: "In Mm-hmm.",
    "And then, Mm-hmm." (Piper's "Mm-hmm." under the back-channel prompt, benchmark logs)."""
    words = re.findall(r"[a-z]+", text.lower())
    for _ in range(2):
        if len(words) > 1 and words[0] in _HEARD_ONSETS:
            words = words[1:]
    return len(words) <= 3 and all(w in _BACKCHANNEL_WORDS for w in words)


def acknowledges(readings: Readings) -> bool:
    """No words, or any close reading an acknowledgement: a hummed "mm-hmm" is often heard
    as words first, with the acknowledgement close behind."""
    return not readings.texts or any(map(is_backchannel, readings.texts))


def in_doubt(readings: Readings) -> bool:
    """Words the STT is unsure of: worth a second opinion before they stop a reply."""
    return not readings.sure and not acknowledges(readings)


@dataclass
class SessionOptions:
    """Set by the client's `session.start` message (see `api.schemas.RealtimeStart`)."""

    conversation_id: str | None = None
    persona: str | None = None
    system: str | None = None  # instructions for every reply (default: the persona's)
    model: str | None = None
    voice: str | None = None
    language: str | None = None
    reply_as: str = "voice"
    voice_format: str = "wav"
    input_format: str = "pcm16"  # or "container": each binary message is a whole recording
    sample_rate: int = 16_000
    vad_threshold: float = 0.5
    turn_detection: Literal["smart", "silence"] = "smart"
    pause_ms: int = 200
    relook_ms: int = 700
    silence_ms: int = 700
    max_silence_ms: int = 2_000
    turn_threshold: float = 0.5
    echo: Literal["ignore", "interrupt"] = "ignore"
    backchannels: Literal["ignore", "interrupt"] = "ignore"

    @property
    def end_ms(self) -> int:
        """Silence after which a turn is over whatever was decided at its pause."""
        return self.silence_ms if self.turn_detection == "silence" else self.max_silence_ms


@dataclass
class _Sent:
    """What of a reply has reached the user, for trimming on barge-in."""

    text: list[str] = field(default_factory=list)
    spoken: list[tuple[float, str]] = field(default_factory=list)  # (when it starts playing, clause)

    def heard_by(self, moment: float) -> str:
        """The clauses whose playback had begun at `moment`."""
        return " ".join(text for start, text in self.spoken if start <= moment)


_END = object()


class _Turn:
    """One answer in the making. It may start before the turn is confirmed; until then
    nothing reaches the client or the store, and cancelling it leaves no trace."""

    def __init__(self, session: "RealtimeSession", request: TurnInput, speech_end_at: float | None):
        self.session = session
        self.request = request
        self.speech_end_at = speech_end_at
        self.confirmed = asyncio.Event()
        self.confirmed_at: float | None = None
        self.first_audio_at: float | None = None
        self.began_at: float | None = None  # when the reply's first words went out
        self.kept = True  # stored as far as it was heard if stopped; False: dropped, the turn goes on
        self.heard: Heard | None = None
        self.transcript: str | None = None  # known before the turn is confirmed
        self.transcribed = asyncio.Event()  # set once the transcript is known (or never will be)
        self.sent = _Sent()
        self.task = asyncio.create_task(self._run())

    @property
    def running(self) -> bool:
        return not self.task.done()

    def confirm(self) -> None:
        self.confirmed_at = time.monotonic()
        self.confirmed.set()

    async def cancel(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        # The oldest unanswered speech first: this turn's model work (STT, its first clause's
        # voice) goes before that of users who stopped talking later.
        with due_at(self.speech_end_at):
            await self._answer()

    async def _answer(self) -> None:
        session = self.session
        try:
            turn = await session.turns.prepare(
                session.user,
                self.request,
                conversation_id=session.options.conversation_id,
                persona=session.options.persona,
            )
            outbox: asyncio.Queue = asyncio.Queue()
            producer = asyncio.create_task(self._produce(turn.events(), outbox))
            try:
                await self.confirmed.wait()
                while (event := await outbox.get()) is not _END:
                    if isinstance(event, BaseException):
                        raise event
                    await session.output_open.wait()
                    await self._deliver(turn, event)
            except asyncio.CancelledError:
                if self.confirmed.is_set() and self.kept:
                    await self._store_interrupted(turn)
                raise
            finally:
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
        except VoxgateError as exc:
            await self.confirmed.wait()  # a speculative turn reports nothing until it is a turn
            await session.send({"type": "error", **exc.envelope()})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("realtime turn failed")
            await self.confirmed.wait()
            await session.send({"type": "error", **internal_error().envelope()})

    async def _produce(self, events, outbox: asyncio.Queue) -> None:
        """Run the pipeline ahead of delivery, so work done before confirmation is ready."""
        try:
            async for event in events:
                if isinstance(event, Heard):
                    self.transcript = event.text
                self.transcribed.set()
                outbox.put_nowait(event)
            outbox.put_nowait(_END)
        except Exception as exc:  # delivered (and raised) in order, after confirmation
            outbox.put_nowait(exc)
        finally:
            self.transcribed.set()

    async def _deliver(self, turn: PreparedTurn, event) -> None:
        session = self.session
        if isinstance(event, TurnDone):
            # The turn lasts until the user has heard it: talking over the rest of the
            # audio interrupts it, and the stored reply is what they heard.
            while (left := session.playing_until - time.monotonic()) > 0 or not session.output_open.is_set():
                await asyncio.sleep(left)
                await session.output_open.wait()  # held meanwhile: the audio waited too
            event.result.timings.update(self._wait_timings())
            await self._finish(turn, event.result, "done")
            return
        match event:
            case Heard():
                self.heard = event
            case TextDelta(text):
                self.sent.text.append(text)
                if session.options.reply_as == "text":
                    self.began_at = self.began_at or time.monotonic()
            case ClauseAudio():
                self.began_at = self.began_at or time.monotonic()
                self.first_audio_at = self.first_audio_at or time.monotonic()
        name, data = wire_event(event, session.options.voice_format)
        await session.send({"type": name, **data})
        if isinstance(event, ClauseAudio):
            # Noted before the next await: a reply cancelled from here on still stores this clause.
            self.sent.spoken.append((session.played(event), event.text))
            await session.expect_echo(event)

    def _wait_timings(self) -> dict[str, float | None]:
        """From the end of the user's speech: until the turn was confirmed, until first audio."""

        def since_speech(moment: float | None) -> float | None:
            if moment is None or self.speech_end_at is None:
                return None
            return round((moment - self.speech_end_at) * 1000, 1)

        return {"turn_wait": since_speech(self.confirmed_at), "speech_to_audio": since_speech(self.first_audio_at)}

    async def _finish(self, turn: PreparedTurn, result: TurnResult, kind: str) -> None:
        session = self.session
        stored = await turn.commit(result)
        session.options.conversation_id = stored.conversation_id  # the next turn continues it
        await session.send({"type": kind, **stored.summary()})

    async def _store_interrupted(self, turn: PreparedTurn) -> None:
        """Keep the turn as far as the user got it: the clauses spoken (voice) or text sent."""
        sent, heard = self.sent, self.heard
        reply = (
            sent.heard_by(time.monotonic()) if self.session.options.reply_as == "voice" else "".join(sent.text).strip()
        )
        if not reply or (self.request.audio is not None and heard is None):
            return  # nothing of the reply reached the user: nothing to remember
        result = TurnResult(
            transcript=heard.text if heard else None,
            reply=reply,
            language=heard.language if heard else None,
            timings={"interrupted": True, **self._wait_timings()},
        )
        # Shielded: the task is being cancelled, but the partial turn must still be written.
        await asyncio.shield(self._finish(turn, result, "interrupted"))


@dataclass
class _Overlap:
    """Speech heard while a reply plays, not yet judged an interruption."""

    went_on: bool  # it began before the user could have heard the reply: they were still talking
    echo: bool = False
    checked: int = 0  # samples of the utterance judged so far


class AudioPacer:
    """How long to wait before taking more audio so that it runs at most `ahead` seconds
    ahead of real time. Time without audio banks no credit: a client silent for a minute
    may not then send a minute at once."""

    def __init__(self, ahead: float):
        self.ahead = ahead
        self._lead = 0.0  # seconds of audio received beyond the time that passed
        self._at: float | None = None

    def wait_for(self, seconds: float, now: float) -> float:
        if self._at is not None:
            self._lead = max(0.0, self._lead - (now - self._at))
        self._at = now
        self._lead += seconds
        return max(0.0, self._lead - self.ahead)


class RealtimeSession:
    def __init__(self, turns: TurnService, user: User, options: SessionOptions, send: Send):
        self.turns, self.pipeline, self.user = turns, turns.pipeline, user
        self.options = options
        self.send = send
        self.detector = self._new_detector()
        self.echo = EchoGuard()
        self.pacer = AudioPacer(PACE_AHEAD_SECONDS)
        self._reply: _Turn | None = None  # the confirmed turn, running or done
        self._pending: _Turn | None = None  # started at a pause, not yet confirmed
        self._decision: asyncio.Task | None = None  # the end-of-turn model judging `_pending`
        self._overlap: _Overlap | None = None
        self.playing_until = 0.0  # when the client will have played the audio sent so far
        # Cleared while speech over the reply is being judged: the client pauses playback
        # (`output.paused`) and the reply waits, so a real interruption is heard at once.
        self.output_open = asyncio.Event()
        self.output_open.set()
        self._held_at = 0.0
        # Speech whose turn got no reply yet: if the user goes on after a turn was wrongly
        # confirmed, the continuation is heard together with the first part.
        self._unanswered = np.zeros(0, np.float32)
        self._prefilled_ms = 0.0  # speech of the current utterance when its words were last prefilled
        self._prefilling: asyncio.Task | None = None

    def _new_detector(self) -> SpeechDetector:
        options = self.options
        return SpeechDetector(
            threshold=options.vad_threshold,
            pause_ms=min(options.pause_ms, options.end_ms),
            relook_ms=options.relook_ms if options.turn_detection == "smart" else None,
            end_ms=options.end_ms,
            max_seconds=MAX_UTTERANCE_SECONDS,
        )

    async def update(self, **changes) -> None:
        """Change options mid-session (the OpenAI protocol's `session.update`); speech being
        heard is dropped, since it was measured with the old settings."""
        await self._drop_pending()
        self.options = replace(self.options, **changes)
        self.detector = self._new_detector()

    # Input.

    async def on_audio(self, data: bytes) -> None:
        if self.options.input_format == "container":
            await self._drop_pending()
            await self._start(TurnInput(audio=data), speech_end_at=None)
            return
        if len(data) % 2:
            raise BadRequest("pcm16 audio must be whole 16-bit samples")
        seconds = len(data) / 2 / self.options.sample_rate
        if seconds > PACE_AHEAD_SECONDS:
            raise BadRequest(
                f"a pcm16 frame holds {seconds:.1f} s of audio; send at most "
                f"{PACE_AHEAD_SECONDS:g} s per frame, as a microphone does",
                code="frame_too_long",
            )
        if wait := self.pacer.wait_for(seconds, time.monotonic()):
            await asyncio.sleep(wait)
        samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768
        if self.options.sample_rate != RATE:
            samples = audio.resample(samples, self.options.sample_rate, RATE)
        for event in await asyncio.to_thread(self.detector.feed, samples):  # VAD is a model: off the loop
            await self._on_speech(event)
        if self._overlap is not None and self.detector.speaking:
            await self._judge_overlap(paused=False)
        self._prefill_soon()

    async def on_text(self, text: str) -> None:
        await self.respond(TurnInput(text=text))

    async def respond(self, turn: TurnInput, **overrides) -> None:
        """Answer `turn` now (typed, or audio the client committed); `overrides` set TurnInput
        fields for this reply only, e.g. its `system` or `reply_as`."""
        await self._drop_pending()
        await self._start(turn, speech_end_at=None, **overrides)

    async def interrupt(self) -> None:
        """Stop the running reply now; its stored part is what the client already got."""
        if self._reply is not None and self._reply.running:
            await self._reply.cancel()
        self.playing_until = 0.0
        self.echo.clear()
        self.output_open.set()  # the reply is gone: nothing is held any more

    async def close(self) -> None:
        if self._prefilling is not None:
            self._prefilling.cancel()
        await self._drop_pending()
        await self.interrupt()

    # Called by a turn as it delivers.

    def played(self, chunk: ClauseAudio) -> float:
        """Track the reply audio the client plays (to know when it ends); returns when this
        chunk starts playing."""
        starts = max(self.playing_until, time.monotonic())
        self.playing_until = starts + len(chunk.pcm) / chunk.sample_rate
        return starts

    async def expect_echo(self, chunk: ClauseAudio) -> None:
        """Remember the chunk, to recognise it when it comes back through the microphone."""
        if self.options.echo == "ignore":
            self.echo.sent(
                await asyncio.to_thread(audio.resample, chunk.pcm.astype(np.float32) / 32768, chunk.sample_rate, RATE)
            )

    # Turn-taking.

    async def _on_speech(self, event: str) -> None:
        if event == "start":
            self._prefilled_ms = 0.0
            await self.send({"type": "speech.started"})
            reply = self._reply
            began = reply is not None and reply.began_at is not None
            # A spoken turn whose reply began too recently for the user to have heard it.
            went_on = (
                reply is not None
                and reply.began_at is not None
                and reply.request.samples is not None
                and time.monotonic() - reply.began_at < WENT_ON_SECONDS
            )
            if began and not went_on:
                self._unanswered = np.zeros(0, np.float32)  # what the user says now follows the reply
            if reply is not None and reply.running:
                if began:
                    self._overlap = _Overlap(went_on=went_on)  # judged as it goes on
                else:
                    await self.interrupt()  # nothing said yet: the user simply went on talking
        elif event == "pause":
            if self._overlap is not None:
                await self._judge_overlap(paused=True)
            if self._overlap is None and self.detector.speaking:
                await self._speculate()
        elif event == "relook":
            # The end-of-turn model said "not yet" at the pause; with more silence behind the
            # words it often says "done" (bench: "What do bees make?" 0.41 at 200 ms, 0.93 at
            # 700 ms), so it looks again rather than waiting out max_silence_ms.
            decided = self._decision is None or self._decision.done()
            if self._pending is not None and decided:
                self._decision = asyncio.create_task(self._decide(self._pending, self.detector.utterance()))
        elif event == "resume":
            await self._drop_pending()
        elif event == "end":
            await self._end_overlap()
            if self._pending is not None:
                await self._confirm(self._pending)
        elif event == "overflow":
            await self._drop_pending()
            await self._end_overlap()
            self._unanswered = np.zeros(0, np.float32)
            error = PayloadTooLarge(
                f"an utterance longer than {MAX_UTTERANCE_SECONDS:.0f} s was dropped; pause between questions",
                code="utterance_too_long",
            )
            await self.send({"type": "error", **error.envelope()})

    async def _judge_overlap(self, *, paused: bool) -> None:
        """Speech during a reply: echo and acknowledgements leave it alone; else interrupt."""
        overlap, options = self._overlap, self.options
        if overlap is None:  # the reply ended meanwhile: nothing to talk over
            return
        # Before speech over a reply comes its echo: only a little of that is heard with it.
        heard = self.detector.utterance(preroll_ms=OVERLAP_PREROLL_MS)
        if options.echo == "ignore" and (paused or len(heard) - overlap.checked >= ECHO_CHECK_EVERY):
            overlap.checked = len(heard)
            overlap.echo = await asyncio.to_thread(self.echo.is_echo, heard[-RATE:], unplayed=self._unplayed())
        if overlap.echo:
            await self._release()
            if paused:  # the echo's "utterance" is over: forget it
                self.detector.finish()
                self._overlap = None
            return
        if overlap.checked or options.echo == "interrupt":
            await self._hold()  # not our own voice: the user is talking
        if options.backchannels == "interrupt" or self.detector.speech_ms > BACKCHANNEL_MAX_MS:
            await self._barge_in()
        elif paused:
            # Short speech: its words decide. (Transcribing its first 300 ms instead, before
            # the pause, gained ~80 ms in the benchmark and heard "mm-hmm" as words.)
            readings = await self._readings(audio.DecodedAudio(heard, "pcm"))
            acknowledged = acknowledges(readings)
            log.info(
                "speech over the reply heard as %r: %s",
                readings.texts,
                "back-channel" if acknowledged else "interruption",
            )
            if acknowledged:
                self.detector.finish()  # "mm-hmm": the reply goes on
                await self._end_overlap()
            else:
                await self._barge_in()

    async def _readings(self, speech: audio.DecodedAudio) -> Readings:
        """How short speech over the reply is heard. Whisper tiny hears some hummed "mm-hmm"s
        as words ("In a month."), mostly unsure; when it is unsure of words, the second-opinion
        model (larger, slower) hears most of those right (bench/backchannels.py)."""
        language, second = self.options.language, self.pipeline.registry.second_opinion
        readings = await self.pipeline.readings(speech, language=language, prompt=_BACKCHANNEL_PROMPT)
        if second is None or not in_doubt(readings):
            return readings
        log.info("speech over the reply: unsure of %r, asking %s", readings.texts, second)
        # In the language the default model heard, not one guessed from a lone hum. (Left
        # without one, whisper-base took its one-reading path and heard "In a month." in 3 of
        # 24 live "Mm-hmm."s that it hears right in English: bench/realtime.py, backchannel.)
        language = language or readings.language
        try:
            return await self.pipeline.readings(speech, language=language, prompt=_BACKCHANNEL_PROMPT, model=second)
        except Exception:  # not pulled, or it failed to load: the default model's readings stand
            log.exception("no second opinion from %s", second)
            return readings

    async def _barge_in(self) -> None:
        overlap, self._overlap = self._overlap, None
        if overlap is not None and overlap.went_on and self._reply is not None:
            # The turn was ended too soon: its reply is dropped, not stored, and what the
            # user says now is heard together with what they said before.
            self._reply.kept = False
        await self.interrupt()

    def _unplayed(self) -> float:
        """Seconds of reply audio sent that the client has not played yet, by the playback
        clock (which stands still while output is held)."""
        now = time.monotonic() if self.output_open.is_set() else self._held_at
        return max(0.0, self.playing_until - now)

    async def _hold(self) -> None:
        if self.output_open.is_set():
            self.output_open.clear()
            self._held_at = time.monotonic()
            await self.send({"type": "output.paused"})

    async def _release(self) -> None:
        if not self.output_open.is_set():
            if self.playing_until > self._held_at:  # the client's queued audio waited too
                self.playing_until += time.monotonic() - self._held_at
            self.output_open.set()
            await self.send({"type": "output.resumed"})

    async def _end_overlap(self) -> None:
        """Speech over the reply that did not interrupt it: the reply goes on."""
        self._overlap = None
        await self._release()

    async def _speculate(self) -> None:
        """Start answering at the pause, in case the turn is over."""
        await self._drop_pending()
        samples = np.concatenate([self._unanswered, self.detector.at_pause])[-int(MAX_UTTERANCE_SECONDS * RATE) :]
        wav = await asyncio.to_thread(audio.encode, (samples * 32767).astype(np.int16), RATE, "wav")
        speech_end_at = time.monotonic() - self.detector.quiet_ms / 1000
        turn = self._pending = self._new_turn(TurnInput(audio=wav, samples=samples), speech_end_at)
        if self.options.turn_detection == "smart":
            self._decision = asyncio.create_task(self._decide(turn, samples))

    async def _decide(self, turn: _Turn, heard: np.ndarray) -> None:
        """Confirm `turn` if the end-of-turn model judges `heard` (the utterance up to now)
        finished and its words do not stop mid-sentence."""
        try:
            with due_at(turn.speech_end_at):
                complete = await self.pipeline.turn_completion(heard)
        except Exception:  # no verdict (busy, or no model): the silence bound still ends the turn
            log.exception("the end-of-turn model gave no verdict")
            return
        if complete < self.options.turn_threshold:
            return
        # The words too: a sentence that stops on "the" or "of" is unfinished however it
        # sounded. The transcript is needed for the answer anyway, so this costs no time
        # before the first audio.
        await turn.transcribed.wait()
        if turn.transcript and ends_unfinished(turn.transcript):
            return
        if self._pending is turn:
            self._decision = None  # this task is finishing: _confirm must not cancel it
            await self._confirm(turn)

    async def _confirm(self, turn: _Turn) -> None:
        self._pending = None
        await self._cancel_decision()
        await self.interrupt()
        self.detector.finish()  # what the user says next is a new utterance
        assert turn.request.samples is not None  # only speculative (pcm16) turns are confirmed here
        self._unanswered = turn.request.samples
        await self.send({"type": "speech.stopped"})
        self._reply = turn
        turn.confirm()

    async def _drop_pending(self) -> None:
        await self._cancel_decision()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending.cancel()

    async def _cancel_decision(self) -> None:
        if self._decision is not None:
            decision, self._decision = self._decision, None
            decision.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await decision

    def _prefill_soon(self) -> None:
        """Every `PREFILL_EVERY_MS` of a question being spoken (not over a reply, nor after
        its turn began to be answered), prefill the words said so far, one at a time."""
        detector = self.detector
        if (
            not detector.speaking
            or detector.speech_ms < self._prefilled_ms + PREFILL_EVERY_MS
            or self._overlap is not None
            or self._pending is not None
            or (self._reply is not None and self._reply.running)
            or (self._prefilling is not None and not self._prefilling.done())
        ):
            return
        self._prefilled_ms = detector.speech_ms
        self._prefilling = asyncio.create_task(self._prefill(np.concatenate([self._unanswered, detector.utterance()])))

    async def _prefill(self, samples: np.ndarray) -> None:
        """Transcribe the speech so far and have the LLM evaluate the turn's prompt with it
        as the question, if it is idle. Its last word may be cut off mid-way: it is left out."""
        if self.pipeline.llm_lane.in_flight:  # the LLM would not take it: spare the transcription
            return
        speech = audio.DecodedAudio(samples, "pcm")
        try:
            with due_at(math.inf):  # behind any work someone waits for
                heard = await self.pipeline.draft(speech, language=self.options.language)
            words = heard.text.strip().rsplit(maxsplit=1)
            if len(words) < 2:
                return
            turn = await self.turns.prepare(
                self.user,
                self._request(TurnInput(text=words[0])),
                conversation_id=self.options.conversation_id,
                persona=self.options.persona,
            )
            self.pipeline.prefill_question(turn.request, words[0], turn.request.language or heard.language)
        except VoxgateError as exc:  # busy, or the conversation is gone: the turn will say so
            log.debug("no prefill: %s", exc)
        except Exception:  # only ever a head start: the turn goes on without it
            log.exception("prefilling the question failed")

    def _request(self, turn: TurnInput, **overrides) -> TurnInput:
        """`turn` with the session's options, and `overrides`, filled in."""
        options = self.options
        return replace(
            turn,
            **{
                "reply_as": options.reply_as,
                "voice_format": options.voice_format,
                "model": options.model,
                "voice": options.voice,
                "language": options.language,
                "system": options.system,
                **overrides,
            },
        )

    def _new_turn(self, turn: TurnInput, speech_end_at: float | None, **overrides) -> _Turn:
        return _Turn(self, self._request(turn, **overrides), speech_end_at)

    async def _start(self, turn: TurnInput, *, speech_end_at: float | None, **overrides) -> None:
        """A turn that needs no decision (typed, or a whole recording): answer now."""
        await self.interrupt()
        self._unanswered = np.zeros(0, np.float32)  # a spoken turn still unanswered was given up
        self._reply = self._new_turn(turn, speech_end_at, **overrides)
        self._reply.confirm()
