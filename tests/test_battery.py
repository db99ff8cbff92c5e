"""The battery's verdicts: right, heard, and well-formed for a voice."""

from voxgate.battery import BATTERY, Item, score

CAPITAL = Item("fact", ("What is the capital of France?",), ("paris",))
ONE_WORD = Item("instruction", ("Answer in one word: what colour is grass?",), ("green",), max_words=2)
MOON = Item("fact", ("What is the Moon?",), ("satellite",), avoid=("is a planet",))


def test_right_means_an_expected_word_and_no_wrong_claim():
    assert score(CAPITAL, "The capital of France is Paris.", 1.0, None).right
    assert not score(CAPITAL, "It is Parisian in style.", 1.0, None).right  # whole words only
    assert score(MOON, "The Moon is Earth's natural satellite.", 1.0, None).right
    assert not score(MOON, "The Moon is a planet and a satellite.", 1.0, None).right


def test_well_formed_means_short_and_speakable():
    assert score(CAPITAL, "Paris. It is big. It is old.", 1.0, None).well_formed
    assert not score(CAPITAL, "Paris. It is big. It is old. It is lovely.", 1.0, None).well_formed
    assert not score(CAPITAL, "**Paris** is the capital.", 1.0, None).well_formed
    assert not score(CAPITAL, "See https://example.org for Paris.", 1.0, None).well_formed
    assert not score(CAPITAL, "Cities:\n- Paris\n- Lyon", 1.0, None).well_formed
    assert score(ONE_WORD, "Green.", 1.0, None).well_formed
    assert not score(ONE_WORD, "Grass is green.", 1.0, None).well_formed


def test_heard_compares_the_words_as_spoken():
    two = Item("arithmetic", ("What is two plus two?",), ("four",), spoken=True)
    assert score(two, "Four.", 1.0, "what is 2 plus 2").heard is True
    assert score(two, "Four.", 1.0, "what is to plus two").heard is False
    assert score(two, "Four.", 1.0, None).heard is None


def test_the_battery_covers_every_kind_with_forty_questions_or_more():
    kinds = {item.kind for item in BATTERY}
    assert len(BATTERY) >= 40 and kinds == {"fact", "arithmetic", "explanation", "follow-up", "memory", "instruction"}
    assert any(item.spoken for item in BATTERY) and any(len(item.turns) > 1 for item in BATTERY)
