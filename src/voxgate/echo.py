"""Is what the microphone hears our own reply coming back through the speakers?

The server knows every sample of the reply it sent. When speech shows up while a reply
plays, the heard audio is compared with the recent reply audio by normalized
cross-correlation over every lag: echo is a (scaled, delayed) copy of it and correlates
strongly at one lag, while a person talking over it does not. Scale does not matter, so
an echo at -12 dB or -30 dB is recognised alike; a person louder than the echo drowns the
correlation and counts as a real interruption.
"""

import numpy as np

RATE = 16_000
# How far the client's playback may trail the server's playback clock (which has each chunk
# play the moment it arrives): its output buffer, the speaker-to-microphone path, jitter.
PLAYBACK_LAG_SECONDS = 3.0


class EchoGuard:
    def __init__(self, *, keep_seconds: float = 20.0, threshold: float = 0.5):
        self.threshold = threshold
        self._keep = int(keep_seconds * RATE)
        self._sent = np.zeros(0, np.float32)

    def sent(self, samples: np.ndarray) -> None:
        """Remember reply audio (16 kHz float32) sent to the client; keeps the newest only."""
        self._sent = np.concatenate([self._sent, samples])[-self._keep :]

    def clear(self) -> None:
        self._sent = np.zeros(0, np.float32)

    def similarity(self, heard: np.ndarray, *, unplayed: float = 0.0) -> float:
        """The highest normalized correlation of `heard` with any stretch of sent audio the
        client may have played by now (0..1); the newest `unplayed` seconds it cannot have.
        Only that stretch is searched: a reply sent well ahead of its playback would
        otherwise make every check search its whole 20 s (~27 ms a check, against ~3)."""
        played = len(self._sent) - int(unplayed * RATE)
        recent = self._sent[max(0, played - len(heard) - int(PLAYBACK_LAG_SECONDS * RATE)) : max(0, played)]
        if len(heard) < RATE // 10 or not len(recent):
            return 0.0
        # Silence around the reply: the heard stretch may begin before the echo did (the
        # first words of a reply) or end after it.
        silence = np.zeros(len(heard), np.float32)
        ref = np.concatenate([silence, recent, silence])
        heard = heard - heard.mean()
        energy = float(np.dot(heard, heard))
        if energy <= 1e-9:
            return 0.0
        size = 1 << (len(ref) + len(heard)).bit_length()
        # Correlation at every lag at once, through the FFT.
        spectrum = np.fft.rfft(ref, size) * np.conj(np.fft.rfft(heard, size))
        corr = np.fft.irfft(spectrum, size)[: len(ref) - len(heard) + 1]
        # Energy of each stretch of `ref` the length of `heard` (a sliding sum of squares).
        squares = np.concatenate([[0.0], np.cumsum(ref.astype(np.float64) ** 2)])
        windows = squares[len(heard) :] - squares[: len(ref) - len(heard) + 1]
        score = np.abs(corr) / np.sqrt(np.maximum(windows, 1e-9) * energy)
        score[windows < 1e-6 * len(heard)] = 0.0  # silent stretches of the reply match nothing
        return float(score.max())

    def is_echo(self, heard: np.ndarray, *, unplayed: float = 0.0) -> bool:
        return self.similarity(heard, unplayed=unplayed) >= self.threshold
