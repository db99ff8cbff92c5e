"""Whisper: a short question is heard through a window fitted to it, as well as through
the 30 s one; silence is heard as nothing; what the model imagines after the speech's end
is dropped; long audio takes faster-whisper's own path."""

from pathlib import Path

import numpy as np
import pytest
from conftest import words
from faster_whisper.tokenizer import Tokenizer
from piper import PiperVoice, SynthesisConfig

from voxgate import model_files
from voxgate.audio import decode, resample
from voxgate.catalog import CATALOG
from voxgate.config import Settings
from voxgate.engines.base import Segment
from voxgate.engines.whisper import (
    ALTERNATIVE_READINGS,
    FITTED_MAX_SECONDS,
    RATE,
    WhisperSTT,
    _segments,
    _until_restart,
)
from voxgate.realtime import _BACKCHANNEL_PROMPT, acknowledges, is_backchannel

QUESTIONS = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Please turn off the lights in the kitchen.",
)
SHORT = ("Okay.", "Right.", "Stop.")  # in a fitted window each was heard over and over
HUMMED = "Uh-huh."  # tiny.en is unsure what this is
HUMMED_APART = "Mm hmm."  # whisper-base, guessing its language, used to hear "Amen now."
OBJECTION = "Oh no."  # sure, though its punctuation is not
UNFINISHED = "Who wrote Romeo and Juliet?"  # its first 1.2 s never end in a fitted window
HUM_HEARD_AS_WORDS = Path(__file__).parents[1] / "data" / "mm-hmm-heard-as-words.wav"


def _path(name: str) -> Path:
    settings = Settings()
    return model_files.resolve(name, CATALOG[name].role, settings.models_dir)[1]


@pytest.fixture(scope="module")
def stt() -> WhisperSTT:
    engine = WhisperSTT("whisper-tiny.en", _path("whisper-tiny.en"), workers=1)
    engine.warm_up()
    return engine


@pytest.fixture(scope="module")
def second_opinion() -> WhisperSTT:
    return WhisperSTT("whisper-base", _path("whisper-base"), workers=1)


@pytest.fixture(scope="module")
def spoken() -> dict[str, np.ndarray]:
    """The questions in Piper's voice, without its random variation (noise scales 0), so
    every run hears the same audio."""
    voice = PiperVoice.load(_path("piper-en_US-joe-medium"))
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    said = {}
    for text in (*QUESTIONS, *SHORT, HUMMED, HUMMED_APART, OBJECTION, UNFINISHED):
        chunks = list(voice.synthesize(text, syn_config=steady))
        pcm = np.concatenate([c.audio_int16_array for c in chunks]).astype(np.float32) / 32768
        speech = resample(pcm, chunks[0].sample_rate, RATE)
        said[text] = np.concatenate([np.zeros(RATE // 4, np.float32), speech, np.zeros(RATE // 5, np.float32)])
    return said


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_short_question_is_heard_word_for_word(stt, spoken, question):
    heard = stt.transcribe(spoken[question])
    assert words(heard.text) == words(question)
    assert heard.language == "en" and heard.segments and heard.segments[0].start < heard.segments[-1].end


@pytest.mark.parametrize("word", SHORT)
def test_a_single_word_is_heard_once(stt, spoken, word):
    assert words(stt.transcribe(spoken[word]).text) == words(word)


def _decodes(engine: WhisperSTT, monkeypatch) -> list[int]:
    """The beam size of each decode the engine runs from now on."""
    model, beams = engine._model.model, []

    class Counting:
        def __getattr__(self, name):
            return getattr(model, name)

        def generate(self, features, prompts, **options):
            beams.append(options.get("beam_size", 1))
            return model.generate(features, prompts, **options)

    monkeypatch.setattr(engine._model, "model", Counting())
    return beams


def test_warming_up_really_decodes_greedily_and_with_the_beam(monkeypatch):
    """Else the first question pays for a cold decoder (~40 ms more for whisper-tiny here)."""
    engine = WhisperSTT("whisper-tiny.en", _path("whisper-tiny.en"), workers=1)
    beams = _decodes(engine, monkeypatch)
    engine.warm_up()
    assert sorted(beams) == [1, ALTERNATIVE_READINGS]


def test_a_draft_of_speech_cut_off_mid_word_is_one_quick_decode(stt, spoken, monkeypatch):
    """A transcript of it is heard again in the 30 s window (~500 ms); a draft is not."""
    cut_off = spoken[UNFINISHED][RATE // 4 : RATE // 4 + RATE * 6 // 5]  # its first 1.2 s alone
    decodes = _decodes(stt, monkeypatch)
    stt.transcribe(cut_off)
    assert len(decodes) > 1  # the fitted transcript was not trusted
    decodes.clear()
    assert words(stt.draft(cut_off).text)[:2] == ["who", "wrote"]
    assert len(decodes) == 1


def test_silence_is_heard_as_nothing(stt):
    assert stt.transcribe(np.zeros(2 * RATE, np.float32)).text == ""
    assert stt.alternatives(np.zeros(RATE, np.float32)).texts == ()


def test_a_sure_reading_stands_alone_and_an_unsure_one_comes_with_its_close_rivals(stt, spoken):
    """How speech over a reply is heard: "Oh no." must not also read as something else
    (its rival "Oh no" differs only in a comma); a hummed acknowledgement the model is unsure
    of is judged by every reading close to its best."""
    readings = stt.alternatives(spoken[OBJECTION], prompt=_BACKCHANNEL_PROMPT)
    assert readings.sure and len(readings.texts) == 1 and words(readings.texts[0]) == words(OBJECTION), readings
    readings = stt.alternatives(spoken[HUMMED], prompt=_BACKCHANNEL_PROMPT)
    assert not readings.sure and len(readings.texts) >= 2 and all(map(is_backchannel, readings.texts)), readings
    assert readings.language == "en"  # an English-only model's, though none was asked for


def test_a_hum_heard_as_words_alone_is_not_sure(stt, second_opinion):
    """A Piper "Mm-hmm." as the server heard it over a reply (bench/realtime.py): whisper-tiny
    hears "In a month." with no acknowledgement close, once sure enough to stop the reply.
    It is unsure, so the second opinion is asked, and hears it right in the same language."""
    hum = decode(HUM_HEARD_AS_WORDS.read_bytes(), max_seconds=5).samples
    readings = stt.alternatives(hum, prompt=_BACKCHANNEL_PROMPT)
    assert not readings.sure and not acknowledges(readings), readings
    assert acknowledges(second_opinion.alternatives(hum, language=readings.language, prompt=_BACKCHANNEL_PROMPT))


def test_a_multilingual_model_asked_in_no_language_detects_one_and_still_gives_rivals(spoken, second_opinion):
    """whisper-base, the second opinion, as a session without a language asks it: it hears
    a hum in the language it detects, with the same beam of readings as in a given one."""
    readings = second_opinion.alternatives(spoken[HUMMED_APART], prompt=_BACKCHANNEL_PROMPT)
    assert readings.language == "en" and acknowledges(readings), readings
    assert readings == second_opinion.alternatives(spoken[HUMMED_APART], language="en", prompt=_BACKCHANNEL_PROMPT)


def test_speech_after_a_long_silence_takes_the_long_path(stt, spoken):
    question = QUESTIONS[0]
    late = np.concatenate([np.zeros(int(FITTED_MAX_SECONDS * RATE), np.float32), spoken[question]])
    heard = stt.transcribe(late)
    assert words(heard.text) == words(question) and heard.segments[0].start > FITTED_MAX_SECONDS - 1


def test_a_continuation_the_model_imagines_is_dropped(stt):
    tok = Tokenizer(stt._model.hf_tokenizer, False, task="transcribe", language="en")
    at = lambda seconds: tok.timestamp_begin + round(seconds / 0.02)  # noqa: E731
    said = tok.encode(" How many hours are in a day?")
    # The question, then the same again starting where the speech ends, then more after it.
    tokens = [at(0.0), *said, at(1.9), at(1.9), *said, at(2.0), at(2.5), *tok.encode(" Yes."), at(2.8), tok.eot]
    segments, whole = _segments(tokens, tok, speech_seconds=2.0, cut_off=False)
    assert [s.text for s in segments] == ["How many hours are in a day?"] and whole
    # Two real segments are both kept.
    tokens = [at(0.0), *tok.encode(" Stop."), at(0.6), at(0.7), *said, at(2.4), tok.eot]
    segments, whole = _segments(tokens, tok, speech_seconds=2.5, cut_off=False)
    assert [s.text for s in segments] == ["Stop.", "How many hours are in a day?"] and whole


def test_a_question_the_model_goes_on_after_is_whole_however_the_tokens_end(stt):
    """Heard in the benchmark with the question's first word lost: the question, its end, and
    a continuation the length bound cut off. It is whole: no need for the 30 s window."""
    tok = Tokenizer(stt._model.hf_tokenizer, False, task="transcribe", language="en")
    at = lambda seconds: tok.timestamp_begin + round(seconds / 0.02)  # noqa: E731
    tokens = [at(0.0), *tok.encode(" is the largest planet."), at(1.52), at(1.52), *tok.encode(" Any")]
    segments, whole = _segments(tokens, tok, speech_seconds=1.74, cut_off=True)
    assert [s.text for s in segments] == ["is the largest planet."] and whole
    # Starting over at the very end, cut off: dropped, the rest whole.
    tokens = [at(0.0), *tok.encode(" is the opposite of hot."), at(1.2), at(1.2), *tok.encode(" Is the")]
    segments, whole = _segments(tokens, tok, speech_seconds=1.84, cut_off=True)
    assert [s.text for s in segments] == ["is the opposite of hot."] and whole
    # A loop the length bound cut off is not whole.
    tokens = [at(0.0), *tok.encode(" Stop... Stop... Stop... Stop")]
    assert _segments(tokens, tok, speech_seconds=1.07, cut_off=True)[1] is False


def test_text_the_model_ended_without_a_timestamp_is_whole(stt):
    """Piper's long question, heard in the fitted window: 30 tokens of a bound of 60, then the
    end of text with no closing timestamp. Whole, not heard again in the 30 s window (~500 ms)."""
    tok = Tokenizer(stt._model.hf_tokenizer, False, task="transcribe", language="en")
    said = " My name is Ada and I live near the sea. What should I cook tonight with fish, lemons and rice?"
    tokens = [tok.timestamp_begin, *tok.encode(said)]
    segments, whole = _segments(tokens, tok, speech_seconds=6.5, cut_off=False)
    assert [s.text for s in segments] == [said.strip()] and whole
    assert _segments(tokens, tok, speech_seconds=6.5, cut_off=True)[1] is False
    # Ended mid-sentence, it is not whole: the 30 s window heard the rest.
    stopped = [tok.timestamp_begin, *tok.encode(said.removesuffix(" rice?"))]
    assert _segments(stopped, tok, speech_seconds=6.5, cut_off=False)[1] is False


def test_a_transcript_cut_off_while_starting_over_keeps_what_came_before():
    """Piper's questions ending at their last sample were heard "...France? What is the" in
    about half the runs (its voice varies from run to run, so here the loop is given)."""
    looped = (Segment(0.0, 1.7, "What is the capital of France? What is the"),)
    assert [s.text for s in _until_restart(looped, anywhere=True)] == ["What is the capital of France?"]
    assert _until_restart((Segment(0.0, 1.7, "Tell me more about the history of Rome and"),), anywhere=True) is None
    # Ended by the model after the first word of the restart (one benchmark run in two, "How
    # many days"): kept, not heard again in the 30 s window (~500 ms).
    begun = (Segment(0.0, 2.0, "How many days are in a week? How"),)
    assert [s.text for s in _until_restart(begun, anywhere=False)] == ["How many days are in a week?"]
    assert _until_restart((Segment(0.0, 2.0, "How many days are in a week? Mostly"),), anywhere=False) is None
    # A second question that starts as the first did is a question, unless the transcript ran on.
    two = (Segment(0.0, 3.0, "What is the capital of France? What is the capital of Spain?"),)
    assert _until_restart(two, anywhere=False) is None
