"""Streaming speech detection with the Silero VAD that faster-whisper bundles.

Audio arrives in pieces of any size; the detector scores each 32 ms frame and reports
when speech starts (enough voiced frames) and when it stops (a configurable stretch of
silence), keeping a little audio from before the start so the first word is not clipped.
"""

import numpy as np
from faster_whisper.vad import get_vad_model

FRAME = 512  # samples at 16 kHz: the frame size Silero VAD scores
FRAME_MS = FRAME / 16


class SpeechDetector:
    def __init__(self, *, threshold: float = 0.5, silence_ms: int = 700, min_speech_ms: int = 120,
                 preroll_ms: int = 300):
        self.threshold = threshold
        self._silence_frames = max(1, round(silence_ms / FRAME_MS))
        self._speech_frames = max(1, round(min_speech_ms / FRAME_MS))
        self._preroll_frames = round(preroll_ms / FRAME_MS)
        self._model = get_vad_model()  # loaded once per process by faster-whisper
        self._pending = np.zeros(0, np.float32)
        self._previous = np.zeros(FRAME, np.float32)  # context for the next frame's score
        self._frames: list[np.ndarray] = []  # pre-roll while silent, the utterance while speaking
        self._utterance = np.zeros(0, np.float32)  # the last finished one, until taken
        self._voiced = self._quiet = 0
        self.speaking = False

    def feed(self, samples: np.ndarray) -> list[str]:
        """Add 16 kHz float32 samples; returns the events they caused: "start", "end"."""
        self._pending = np.concatenate([self._pending, samples])
        whole = len(self._pending) // FRAME * FRAME
        if not whole:
            return []
        frames, self._pending = self._pending[:whole], self._pending[whole:]
        scores = self._model(np.concatenate([self._previous, frames]))[1:].reshape(-1)
        self._previous = frames[-FRAME:]
        events = []
        for frame, score in zip(frames.reshape(-1, FRAME), scores):
            self._frames.append(frame)
            if not self.speaking:
                self._voiced = self._voiced + 1 if score >= self.threshold else 0
                if self._voiced >= self._speech_frames:
                    self.speaking, self._quiet = True, 0
                    events.append("start")
                else:
                    del self._frames[: -self._preroll_frames - self._speech_frames]
            else:
                self._quiet = self._quiet + 1 if score < self.threshold - 0.15 else 0
                if self._quiet >= self._silence_frames:
                    self.speaking, self._voiced = False, 0
                    self._utterance, self._frames = np.concatenate(self._frames), []
                    events.append("end")
        return events

    def take_utterance(self) -> np.ndarray:
        """The audio of the utterance that just ended, pre-roll included."""
        utterance, self._utterance = self._utterance, np.zeros(0, np.float32)
        return utterance
