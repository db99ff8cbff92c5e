"""Text to speech with espeak-ng: a robotic but intelligible voice for ~100 languages.

It speaks where no Piper voice is installed. libespeak-ng and its data come from the
`espeakng-loader` wheel, so no system package is needed; the few calls voxgate makes are
bound here with ctypes (the PyPI wrappers run the espeak-ng program or build against the
system library instead). The library keeps one global state and is not thread-safe:
it is initialized once and every call into it holds `_lock`.
"""

import ctypes
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import espeakng_loader
import numpy as np

from voxgate.engines.base import SpeechChunk
from voxgate.errors import NotFound

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # samples go to the callback, inside espeak_Synth
_INITIALIZE_DONT_EXIT = 0x8000  # fail with an error instead of exit() when the data is missing
_RATE = 1  # espeak_PARAMETER: words per minute
_RATE_NORMAL, _RATE_MIN, _RATE_MAX = 175, 80, 450
_POS_CHARACTER = 1
# ENDPAUSE: a sentence's pause at the end, so the pieces of a spoken reply do not run together.
_CHARS_UTF8, _ENDPAUSE = 0x1, 0x1000
_GENDERS = {1: "male", 2: "female"}

# Whisper codes whose voice by espeak's priorities is not the one wanted: it prefers
# British English for "en", and "zh" ties Mandarin with Mandarin read as Pinyin.
_WHISPER_TO_ESPEAK = {"en": "en-us", "zh": "cmn"}


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated code)*, then a NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class EspeakVoice:
    id: str  # what EspeakTTS and espeak_language take and give: the language code, e.g. "fr-fr"
    language: str  # e.g. "fr-fr", "en-us", "cmn"
    name: str  # e.g. "French (France)"
    gender: str | None


@dataclass(frozen=True)
class _Entry:
    """A voice as espeak-ng lists it: its file and every (priority, language code) it
    serves; for a language espeak-ng prefers the voice with the lowest priority."""

    file: str  # e.g. "roa/fr"
    name: str
    gender: str | None
    languages: tuple[tuple[int, str], ...]


class _Espeak:
    """The process's one initialized libespeak-ng. Use only while holding `_lock`."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = espeakng_loader.get_data_path()
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak-ng could not be initialized with its data in {data}")
        self._lib = lib
        self._pcm: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)  # espeak keeps only the pointer: hold the object
        lib.espeak_SetSynthCallback(self._callback)
        self._current: str | None = None
        self.voices = self._list_voices()

    def _collect(self, wav, count: int, events) -> int:
        if count > 0:
            self._pcm.append(np.frombuffer(ctypes.string_at(wav, count * 2), dtype=np.int16))
        return 0  # go on

    def _list_voices(self) -> list[_Entry]:
        voices, found, i = [], self._lib.espeak_ListVoices(None), 0
        while found[i]:  # a NULL-terminated array
            v = found[i].contents
            i += 1
            languages, at = [], v.languages
            while priority := ctypes.string_at(at, 1)[0]:
                code = ctypes.string_at(at + 1)
                languages.append((priority, code.decode().lower()))
                at += len(code) + 2
            name, gender = v.name.decode().strip(), _GENDERS.get(v.gender)
            voices.append(_Entry(v.identifier.decode(), name, gender, tuple(languages)))
        return voices

    def synthesize(self, file: str, text: str, rate: int) -> np.ndarray:
        if file != self._current:  # a switch reloads the language's dictionary
            if self._lib.espeak_SetVoiceByName(file.encode()) != 0:
                raise RuntimeError(f"espeak-ng could not load voice {file}")
            self._current = file
        self._lib.espeak_SetParameter(_RATE, rate, 0)
        data = text.encode()
        self._pcm = []
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        if status != 0:
            raise RuntimeError(f"espeak-ng failed to synthesize (status {status})")
        return np.concatenate(self._pcm) if self._pcm else np.zeros(0, dtype=np.int16)


_lock = threading.Lock()
_instance: _Espeak | None = None


def _espeak() -> _Espeak:
    """The initialized library; the caller holds `_lock`."""
    global _instance
    if _instance is None:
        _instance = _Espeak()
    return _instance


def _entries() -> list[_Entry]:
    with _lock:
        return _espeak().voices


def _find(code: str) -> _Entry | None:
    """The voice espeak-ng prefers for a language `code` it lists, else its preferred voice
    for a dialect of it ("chr" finds "chr-us-qaaa-x-west")."""
    code, entries = code.lower(), _entries()
    exact = [(p, i) for i, e in enumerate(entries) for p, lang in e.languages if lang == code]
    dialects = [(p, i) for i, e in enumerate(entries) for p, lang in e.languages if lang.startswith(code + "-")]
    return entries[min(exact or dialects)[1]] if exact or dialects else None


@functools.cache
def espeak_voices() -> tuple[EspeakVoice, ...]:
    """One voice per language code that some voice is made for, with the voice EspeakTTS
    speaks it with; sorted by code. Computed once: the library's voices never change."""
    codes = sorted({e.languages[0][1] for e in _entries()})
    return tuple(EspeakVoice(code, code, e.name, e.gender) for code in codes if (e := _find(code)))


def espeak_language(whisper_language: str) -> str | None:
    """The espeak-ng language code to speak a Whisper language (ISO 639-1, e.g. "fr" ->
    "fr-fr", "zh" -> "cmn", "en" -> "en-us"), or None when espeak-ng has no voice for it."""
    code = whisper_language.lower()
    voice = _find(_WHISPER_TO_ESPEAK.get(code, code))
    return voice.languages[0][1] if voice else None


class EspeakTTS:
    """`language` is any language code espeak-ng knows: "fr", "fr-fr", "zh", "cmn"..."""

    def __init__(self, language: str):
        voice = _find(language)
        if voice is None:
            raise NotFound(f"espeak-ng has no voice for language {language!r}")
        self.name = f"espeak-ng:{language}"
        self._file = voice.file
        with _lock:
            self.sample_rate: int = _espeak().sample_rate

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[SpeechChunk]:
        # One chunk for the whole text: espeak-ng speaks hundreds of times faster than real
        # time, and one call keeps its intonation across clauses and sentences.
        rate = min(max(round(_RATE_NORMAL * speed), _RATE_MIN), _RATE_MAX)
        with _lock:
            pcm = _espeak().synthesize(self._file, text, rate)
        if pcm.size:
            yield SpeechChunk(pcm=pcm, sample_rate=self.sample_rate)

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello."):
            pass
