"""Streaming speech detection with the Silero VAD that faster-whisper bundles.

Audio arrives in pieces of any size; the detector scores each 32 ms frame and reports:
- "start": enough voiced frames, an utterance began (a little audio from before is kept,
  so the first word is not clipped);
- "pause": the first short silence of an utterance (its audio so far is `at_pause`); the
  session decides there whether the turn is over, and starts on the answer in case it is;
- "resume": speech again after a pause: the turn was not over;
- "end": a long silence; the utterance is finished whatever anyone decided;
- "overflow": the utterance grew past its bound; it is dropped and detection starts afresh.
"""

import numpy as np
from faster_whisper.vad import get_vad_model

FRAME = 512  # samples at 16 kHz: the frame size Silero VAD scores
FRAME_MS = FRAME / 16
RATE = 16_000


class SpeechDetector:
    def __init__(
        self,
        *,
        threshold: float = 0.5,
        pause_ms: int = 200,
        relook_ms: int | None = None,
        end_ms: int = 2000,
        min_speech_ms: int = 120,
        # Silero said "start" up to ~700 ms into a question's first word ("What do bees
        # make?" heard "do bees make."; 17 of 288 turns of bench/realtime.py began over 350 ms
        # late): that much audio from before the start is kept.
        preroll_ms: int = 800,
        max_seconds: float = 60.0,
    ):
        self.threshold = threshold
        self._pause_frames = max(1, round(pause_ms / FRAME_MS))
        # A second look at a pause that went on: "relook" once, between "pause" and "end".
        self._relook_frames = max(self._pause_frames + 1, round(relook_ms / FRAME_MS)) if relook_ms else None
        self._end_frames = max(self._pause_frames, round(end_ms / FRAME_MS))
        self._speech_frames = max(1, round(min_speech_ms / FRAME_MS))
        self._preroll_frames = round(preroll_ms / FRAME_MS)
        self._max_frames = round(max_seconds * 1000 / FRAME_MS)
        self._model = get_vad_model()  # loaded once per process by faster-whisper
        self._pending = np.zeros(0, np.float32)
        self._previous = np.zeros(FRAME, np.float32)  # context for the next frame's score
        self._frames: list[np.ndarray] = []  # pre-roll while silent, the utterance while speaking
        self._voiced = self._quiet = 0
        self._lead = 0  # frames of pre-roll before the current utterance's speech
        self._paused = False
        self.voiced_frames = 0  # frames of speech in the current utterance
        self.at_pause = np.zeros(0, np.float32)  # the utterance as it was at its latest pause
        self.speaking = False

    @property
    def quiet_ms(self) -> float:
        """How long the current utterance has been silent."""
        return self._quiet * FRAME_MS

    @property
    def speech_ms(self) -> float:
        return self.voiced_frames * FRAME_MS

    def utterance(self, preroll_ms: float | None = None) -> np.ndarray:
        """The current utterance so far with its pre-roll, or with only `preroll_ms` of it (a copy)."""
        frames = self._frames
        if preroll_ms is not None:
            frames = frames[max(0, self._lead - round(preroll_ms / FRAME_MS)) :]
        return np.concatenate(frames) if frames else np.zeros(0, np.float32)

    def finish(self) -> None:
        """End the current utterance now (the turn is over): what comes next is new speech."""
        self._reset()

    def _reset(self) -> None:
        self.speaking = self._paused = False
        self._voiced = self._quiet = self.voiced_frames = self._lead = 0
        self._frames = []

    def feed(self, samples: np.ndarray) -> list[str]:
        """Add 16 kHz float32 samples; returns the events they caused, in order."""
        self._pending = np.concatenate([self._pending, samples])
        whole = len(self._pending) // FRAME * FRAME
        if not whole:
            return []
        frames, self._pending = self._pending[:whole], self._pending[whole:]
        scores = self._model(np.concatenate([self._previous, frames]))[1:].reshape(-1)
        self._previous = frames[-FRAME:]
        events = []
        for frame, score in zip(frames.reshape(-1, FRAME), scores, strict=True):
            self._frames.append(frame)
            if not self.speaking:
                self._voiced = self._voiced + 1 if score >= self.threshold else 0
                if self._voiced >= self._speech_frames:
                    self.speaking, self._quiet, self.voiced_frames = True, 0, self._voiced
                    self._lead = len(self._frames) - self._voiced
                    events.append("start")
                else:
                    del self._frames[: -self._preroll_frames - self._speech_frames]
                continue
            if score < self.threshold - 0.15:
                self._quiet += 1
            else:
                self._quiet = 0
                self.voiced_frames += 1
                if self._paused:
                    self._paused = False
                    events.append("resume")
            if self._quiet == self._pause_frames:
                self._paused = True
                self.at_pause = np.concatenate(self._frames)
                events.append("pause")
            if self._quiet == self._relook_frames and self._quiet < self._end_frames:
                events.append("relook")
            if self._quiet >= self._end_frames:
                events.append("end")
                self._reset()
            elif len(self._frames) > self._max_frames:
                events.append("overflow")
                self._reset()
        return events
