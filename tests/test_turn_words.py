"""What the words of an utterance say about turn-taking: unfinished sentences and
back-channels (pure functions; the end-to-end behaviour is in api/test_turn_taking.py)."""

import pytest

from voxgate.realtime import ends_unfinished, is_backchannel


@pytest.mark.parametrize("text", ["What is the capital of", "Tell me about the", "I want tea and", "Well, um"])
def test_sentences_stopping_on_a_function_word_are_unfinished(text):
    assert ends_unfinished(text)


@pytest.mark.parametrize("text", ["What is the capital of France?", "Tell me a joke.", "What is that?", ""])
def test_finished_sentences_are_not(text):
    assert not ends_unfinished(text)


@pytest.mark.parametrize(
    "text", ["Mm-hmm.", "Okay.", "Yeah, right.", "Uh-huh", "I see.", "Wow.", "In Mm-hmm.", "And then, Mm-hmm."]
)
def test_acknowledgements_are_backchannels(text):
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text", ["Stop.", "Wait, what?", "Okay, but what about Mars?", "No.", "And what?", "And then?", "In"]
)
def test_requests_are_not(text):
    assert not is_backchannel(text)
