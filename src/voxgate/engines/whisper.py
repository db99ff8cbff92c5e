"""Speech to text with faster-whisper (CTranslate2, int8 on CPU).

Whisper encodes 30 s of audio however short the speech, and faster-whisper always pads
to that window. CTranslate2 also takes a shorter one: a spoken question of a few seconds
then costs about a quarter, as accurately heard (bench/stt.py measures both ways on the
same clips). So an English model encodes speech of `FITTED_MIN_SECONDS` to `FITTED_MAX_SECONDS` in
a window fitted to it, decoded with timestamps, which is how the model says where the
speech ends (without them it repeats itself to fill the window). Longer audio, and multilingual models
(a robotic French reply was heard worse fitted; nothing natural to measure them with here),
take faster-whisper's own path.
"""

import re
from dataclasses import replace
from pathlib import Path

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.vad import SpeechTimestampsMap, VadOptions, collect_chunks, get_speech_timestamps

from voxgate.engines.base import Readings, Segment, Transcription

RATE = 16_000
FITTED_MAX_SECONDS = 20.0
# Less speech than this (as the VAD cuts it, with up to 0.4 s of its edges) is heard in the
# 30 s window. In a fitted one Piper's lone words looped ("Really... Really...", "okay okay
# okay") and "Go on." was heard "Go 1" (0.55-0.95 s); short questions were heard right.
# It counts speech, not audio: silence before it varies with the VAD and the client.
FITTED_MIN_SECONDS = 1.2
# ~4 words a second is fast speech, ~1.3 tokens a word, and a pair of timestamps a sentence.
_MAX_TOKENS_PER_SECOND = 8
_TAIL_FRAMES = 100  # 1 s of silence after the speech: room for the model to place the end
_SECONDS_PER_TIMESTAMP = 0.02
_LAST_WORD_SECONDS = 0.3  # less speech than this left cannot hold another segment
# The silence faster-whisper's `vad_filter` cuts, so both paths hear the same speech.
_VAD = VadOptions(min_silence_duration_ms=160)
ALTERNATIVE_READINGS = 5
# Readings are compared by mean log-probability a token. A best reading above `SURE_ABOVE`
# is sure. Below `RIVALS_BELOW`, readings within `ALTERNATIVE_WITHIN` of it were heard too;
# between the two it stands alone, unsure. Piper's hummed acknowledgements misheard as words
# ("In a month.", "Ow.") scored -0.46 to -0.98 offline, with the acknowledgement 0.07 to 0.42
# behind; as the server heard them in bench/realtime.py, "In a month." scored -0.24 to -0.38
# too, with no acknowledgement close. Short interruptions scored -0.02 to -0.35 (14 of 78
# below -0.2: "No, no.", "Why?", "Hey."; "Hey." with "Okay." 0.4 to 2 behind).
SURE_ABOVE = -0.2
RIVALS_BELOW = -0.4
ALTERNATIVE_WITHIN = 0.5


class WhisperSTT:
    def __init__(self, name: str, path: Path, *, workers: int):
        """One thread per transcription (the CPU budget runs `workers` of them at once)."""
        self.name = name
        self._model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=1, num_workers=workers)
        self.multilingual = self._model.model.is_multilingual

    def transcribe(
        self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None, temperature: float = 0.0
    ) -> Transcription:
        if not self.multilingual:
            language = "en"
            if len(samples) <= FITTED_MAX_SECONDS * RATE:
                heard, trusted = self._fitted(samples, prompt, temperature, shortest=FITTED_MIN_SECONDS)
                if trusted:
                    return heard
        # VAD drops silence before decoding: Whisper otherwise "hears" text in noise.
        segments, info = self._model.transcribe(
            samples,
            language=language,
            initial_prompt=prompt,
            temperature=temperature,
            beam_size=1,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        found = tuple(Segment(s.start, s.end, s.text.strip()) for s in segments)
        return Transcription(_joined(found), info.language, info.duration, found)

    def draft(self, samples: np.ndarray, *, language: str | None = None) -> Transcription:
        """English speech heard once in a window fitted to it, trusted or not: speech cut off
        mid-word often leaves the fitted transcript unfinished, and hearing it again in the
        30 s window took ~550 ms instead of ~70 (3 of 20 Piper takes of a question's first
        second)."""
        if self.multilingual or len(samples) > FITTED_MAX_SECONDS * RATE:
            return self.transcribe(samples, language=language)
        return self._fitted(samples, None, 0.0)[0]

    def _fitted(
        self, samples: np.ndarray, prompt: str | None, temperature: float, *, shortest: float = 0.0
    ) -> tuple[Transcription, bool]:
        """English speech heard in a window fitted to it, and whether that can be trusted (not
        when it is under `shortest` seconds, or its transcript repeats itself or never ended:
        then the 30 s window must decide)."""
        duration = len(samples) / RATE
        speech_chunks = get_speech_timestamps(samples, _VAD)
        if not speech_chunks:
            return Transcription("", "en", duration), True
        speech = collect_chunks(samples, speech_chunks)[0][0]
        seconds = len(speech) / RATE
        if seconds < shortest:
            return Transcription("", "en", duration), False
        features = np.pad(self._model.feature_extractor(speech), ((0, 0), (0, _TAIL_FRAMES)))
        tokenizer = self._tokenizer("en")
        sampling = {"sampling_topk": 0, "sampling_temperature": temperature} if temperature else {}
        result = self._decode(features, _opening(tokenizer, prompt), seconds, beam_size=1, **sampling)
        tokens = result.sequences_ids[0]
        segments, whole = _segments(tokens, tokenizer, seconds, cut_off=len(tokens) >= _most_tokens(seconds))
        to_original = SpeechTimestampsMap(speech_chunks, RATE)
        found = tuple(
            Segment(to_original.get_original_time(s.start), to_original.get_original_time(s.end, is_end=True), s.text)
            for s in segments
        )
        # A transcript the length bound cut off looped; one the model ended may have begun to.
        if (restarted := _until_restart(found, anywhere=not whole)) is not None:
            found = restarted
        text = _joined(found)
        # Not to be trusted: one that never stopped (and not by starting over), or loops.
        trusted = (whole or restarted is not None) and not _repeats_itself(text)
        return Transcription(text, "en", duration, found), trusted

    def alternatives(self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None) -> Readings:
        """Short speech in the 30 s window, decoded with a beam of `ALTERNATIVE_READINGS`: the
        best reading, and when it scores under `RIVALS_BELOW`, the others close to it. Whisper
        often hears a hummed "mm-hmm" as words ("in a month"), unsure, with the acknowledgement
        close behind. A multilingual model given no language detects one first (its own
        transcription path, greedy, hears one reading: whisper-base hears steady Piper
        "Mm-hmm."s as "M-M-M.")."""
        speech_chunks = get_speech_timestamps(samples, _VAD)
        if not speech_chunks:
            return Readings()
        speech = collect_chunks(samples, speech_chunks)[0][0]
        features = pad_or_trim(self._model.feature_extractor(speech))
        if self.multilingual and language is None:
            language = self._model.detect_language(features=features)[0]
        tokenizer = self._tokenizer(language)
        result = self._decode(
            features,
            [*_opening(tokenizer, prompt), tokenizer.no_timestamps],
            len(speech) / RATE,
            beam_size=ALTERNATIVE_READINGS,
            num_hypotheses=ALTERNATIVE_READINGS,
            return_scores=True,
        )
        best = result.scores[0]
        floor = best - ALTERNATIVE_WITHIN if best <= RIVALS_BELOW else best
        close = (
            tokenizer.decode(ids).strip()
            for ids, score in zip(result.sequences_ids, result.scores, strict=True)
            if score >= floor
        )
        texts = tuple(dict.fromkeys(text for text in close if text))
        return Readings(texts, best > SURE_ABOVE, tokenizer.language_code)

    def _tokenizer(self, language: str | None) -> Tokenizer:
        return Tokenizer(
            self._model.hf_tokenizer,
            self.multilingual,
            task="transcribe",
            language=language if self.multilingual else "en",
        )

    def _decode(
        self, features: np.ndarray, start: list[int], seconds: float, **options
    ) -> ctranslate2.models.WhisperGenerationResult:
        """Decode `seconds` of speech, as mel `features`, after the `start` tokens."""
        return self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], dtype=np.float32)),
            [start],
            suppress_blank=True,
            suppress_tokens=[-1],
            max_length=len(start) + _most_tokens(seconds),
            **options,
        )[0]

    def warm_up(self) -> None:
        # A second of a chirp, decoded greedily and with the beam, straight to the model (the
        # VAD would drop it as not speech): the first question is then not a cold decode
        # (whisper-tiny's first transcription ~140 -> ~70 ms). A fitted window costs ~90 ms
        # here; the 30 s one took ~1 s and warmed no better.
        t = np.linspace(0, 1, RATE, dtype=np.float32)
        chirp = 0.1 * np.sin(2 * np.pi * (200 + 400 * t) * t)
        features = np.pad(self._model.feature_extractor(chirp), ((0, 0), (0, _TAIL_FRAMES)))
        tokenizer = self._tokenizer("en")
        start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self._decode(features, start, 0.2, beam_size=1)
        self._decode(features, start, 0.2, beam_size=ALTERNATIVE_READINGS, num_hypotheses=ALTERNATIVE_READINGS)


def _opening(tokenizer: Tokenizer, prompt: str | None) -> list[int]:
    """The tokens that start a transcript: the prompt as text said before, then the task."""
    previous = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())] if prompt else []
    return previous + list(tokenizer.sot_sequence)


def _most_tokens(seconds: float) -> int:
    """The length bound of a transcript of `seconds` of speech: text and timestamps."""
    return int(_MAX_TOKENS_PER_SECOND * seconds) + 8


def _segments(
    tokens: list[int], tokenizer: Tokenizer, speech_seconds: float, *, cut_off: bool
) -> tuple[list[Segment], bool]:
    """Text between timestamp tokens, and whether that is the whole transcript. A window
    longer than its speech invites the model to go on: a segment it starts in the speech's
    last moments, or one that starts the one before over again, is such a continuation and
    ends the transcript, whole. Text still open when the tokens run out is whole if the model
    ended it after a sentence ("...lemons and rice?" with no closing timestamp, for a long
    question); not if the length bound `cut_off` it, or the model stopped mid-sentence
    ("...lemons and", where the 30 s window heard "rice")."""
    segments: list[Segment] = []
    text: list[int] = []
    begin = 0.0

    def goes_on(said: str) -> bool:
        return begin > speech_seconds - _LAST_WORD_SECONDS or bool(segments and _restarts(said, segments[-1].text))

    for token in tokens:
        if token < tokenizer.eot:
            text.append(token)
            continue
        if token < tokenizer.timestamp_begin:
            continue  # end of text and other special tokens
        moment = (token - tokenizer.timestamp_begin) * _SECONDS_PER_TIMESTAMP
        if text:
            said = tokenizer.decode(text).strip()
            if goes_on(said):
                return [s for s in segments if s.text], True
            segments.append(Segment(begin, min(moment, speech_seconds), said))
            text = []
        begin = moment
    if text:
        said = tokenizer.decode(text).strip()
        if goes_on(said):
            return [s for s in segments if s.text], True
        segments.append(Segment(begin, speech_seconds, said))
    return [s for s in segments if s.text], not text or (not cut_off and said.endswith((".", "?", "!")))


def _restarts(text: str, previous: str) -> bool:
    """'What is' after 'What is the largest planet?': the previous segment said again."""
    said, before = _words(text), _words(previous)
    return bool(said) and before[: len(said)] == said


def _until_restart(segments: tuple[Segment, ...], *, anywhere: bool) -> tuple[Segment, ...] | None:
    """The transcript up to where it starts over: its opening begun again at its end ('How
    many days are in a week? How', heard so though the model ended it there) or, `anywhere`
    (a transcript that ran on), its first words again ('What is the capital of France? What
    is the'); None if it does not. Only at the end otherwise: a person may well ask "What is
    the capital of France? What is the capital of Spain?"."""
    opening = _words(segments[0].text)[:3] if segments else []
    if len(opening) < 2:
        return None
    if anywhere:
        again = re.compile(r"\b" + r"\W+".join(map(re.escape, opening)) + r"\b", re.IGNORECASE)
        for i, segment in enumerate(segments):
            if match := next((m for m in again.finditer(segment.text) if i or m.start() > 0), None):
                kept = segment.text[: match.start()].rstrip(" ,")
                return segments[:i] + ((replace(segment, text=kept),) if kept else ())
    *before, last = segments
    tail = re.search(r"[.!?]\s+([^.!?]+)$", last.text)
    if tail and (said := _words(tail.group(1))) and said == opening[: len(said)]:
        return (*before, replace(last, text=last.text[: tail.start(1)].rstrip()))
    return None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _repeats_itself(text: str) -> bool:
    """'Okay okay okay okay': a loop, not what was said."""
    words = _words(text)
    return len(words) >= 3 and len(set(words)) * 2 <= len(words)


def _joined(segments: tuple[Segment, ...]) -> str:
    return " ".join(s.text for s in segments if s.text)
