"""Speech to text on a remote OpenAI-compatible server (OpenAI, faster-whisper servers, another voxgate)."""

import httpx
import numpy as np

from voxgate import audio
from voxgate.engines.base import Segment, Transcription
from voxgate.engines.remote import Remote
from voxgate.languages import language_code


class OpenAISTT:
    def __init__(self, name: str, url: str, api_key: str | None, timeout: float, retries: int):
        self.name = name
        self._remote = Remote("STT", "openai", url, api_key, timeout=timeout, retries=retries)

    def transcribe(
        self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None, temperature: float = 0.0
    ) -> Transcription:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
        wav = audio.encode(pcm, audio.STT_SAMPLE_RATE, "wav")
        form = {"model": self.name, "response_format": "verbose_json", "temperature": str(temperature)}
        if language:
            form["language"] = language
        if prompt:
            form["prompt"] = prompt
        duration = len(samples) / audio.STT_SAMPLE_RATE
        response = self._remote.call(
            "POST", "audio/transcriptions", files={"file": ("audio.wav", wav, "audio/wav")}, data=form, accept=(400,)
        )
        if response.status_code == 400:
            if not _no_speech(response):
                raise self._remote.answered(response)
            return Transcription(text="", language=language or "", duration=duration)
        with self._remote.parsing("an OpenAI verbose_json transcription"):
            body = response.json()
            segments = tuple(
                Segment(float(s["start"]), float(s["end"]), s["text"].strip()) for s in body.get("segments") or ()
            )
            # OpenAI names the language ("english"), other servers give its code.
            return Transcription(
                text=body["text"].strip(),
                language=language_code(body.get("language") or language or ""),
                duration=float(body.get("duration") or duration),
                segments=segments,
            )

    def warm_up(self) -> None:
        """Only checks that the backend answers: a transcription there would cost the user."""
        self._remote.warm_up(lambda: self._remote.call("GET", "models"))


def _no_speech(response: httpx.Response) -> bool:
    """Whether a 400 is another voxgate's "no speech" (OpenAI answers an empty text instead)."""
    try:
        return response.json()["error"]["code"] == "no_speech"
    except (ValueError, KeyError, TypeError):
        return False
