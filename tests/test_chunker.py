"""The sentence chunker between LLM and TTS: early pieces, never a broken word or number."""

import pytest

from voxgate.chunker import SentenceChunker, speakable


def chunk(text: str, step: int = 3, **options) -> list[str]:
    """Feed `text` in small deltas, as an LLM streams it (the first-piece rule tested apart)."""
    chunker = SentenceChunker(**{"first_chars": None, **options})
    pieces = [p for i in range(0, len(text), step) for p in chunker.push(text[i : i + step])]
    return pieces + chunker.flush()


def test_sentences_are_cut_as_soon_as_they_end():
    chunker = SentenceChunker()
    # The voice starts without waiting for the next token (a whole decoding step).
    assert chunker.push("Paris is the capital of France.") == ["Paris is the capital of France."]
    assert chunker.push(" It has 2.") == []  # "2." may go on "2.1": the next character decides
    assert chunker.push("1 million people!") == ["It has 2.1 million people!"]
    assert chunker.push("!") == []  # nothing left to say
    assert chunker.push(' He said "go.') == []  # its closing quote belongs to it
    assert chunker.push('"') == []
    assert chunker.flush() == ['He said "go."']


@pytest.mark.parametrize(
    "text",
    [
        "Pi is about 3.14 and e is about 2.72 today.",
        "Dr. Smith met Mr. Jones, e.g. at St. Paul's on Sunday.",
        "It was written by J. R. R. Tolkien in England.",
    ],
)
def test_numbers_abbreviations_and_initials_do_not_end_sentences(text):
    assert chunk(text) == [text]


def test_list_items_are_cut_per_line_not_after_the_marker():
    assert chunk("Steps:\n1. Boil water.\n2. Add pasta.\n3. Wait") == [
        "Steps:",
        "1. Boil water.",
        "2. Add pasta.",
        "3. Wait",
    ]


def test_long_clauses_are_cut_at_commas_short_ones_are_not():
    text = "If you travel to France in the spring, you will find mild weather, and few crowds."
    assert chunk(text) == ["If you travel to France in the spring,", "you will find mild weather, and few crowds."]


def test_text_without_punctuation_is_flushed_on_a_length_bound_between_words():
    text = " ".join(f"word{i}" for i in range(60))
    pieces = chunk(text, max_chars=50)
    assert all(len(p) <= 50 for p in pieces[:-1])
    assert " ".join(pieces) == text  # nothing lost, no word cut


def test_question_and_exclamation_marks_and_quotes():
    assert chunk('Really? Yes! He said "stop." Then left.') == ["Really?", "Yes!", 'He said "stop."', "Then left."]


def test_first_piece_is_cut_early_to_start_speaking_sooner():
    text = "Paris is a beautiful city with a rich history and cultural heritage. It has museums."
    pieces = chunk(text, first_chars=48)
    assert pieces[0] == "Paris is a beautiful city with a rich history"
    assert pieces[1:] == ["and cultural heritage.", "It has museums."]
    assert chunk("Well, Paris is lovely.", first_chars=48)[0] == "Well,"


def test_japanese_sentences_are_cut_without_a_following_space():
    chunker = SentenceChunker()
    assert chunker.push("東京は日本の首都です。") == []  # a closing quote may still come
    assert chunker.push("人口は") == ["東京は日本の首都です。"]
    assert chunker.push("約千四百万人です！「本当？」") == ["人口は約千四百万人です！"]
    assert chunker.push("と聞いた。") == ["「本当？」"]
    assert chunker.flush() == ["と聞いた。"]


def test_japanese_and_chinese_clauses_are_cut_at_their_commas():
    assert chunk("はい、東京です。", first_chars=48)[0] == "はい、"
    text = "今日はとても良い天気なので近くの大きな公園まで歩いて行きましたが、友達と、お弁当を食べました。"
    assert chunk(text) == [
        "今日はとても良い天気なので近くの大きな公園まで歩いて行きましたが、",
        "友達と、お弁当を食べました。",
    ]
    assert chunk("北京是中国的首都，也是一个历史悠久的城市。它有很多名胜古迹！", clause_chars=5) == [
        "北京是中国的首都，",
        "也是一个历史悠久的城市。",
        "它有很多名胜古迹！",
    ]


def test_unpunctuated_japanese_is_cut_between_characters_at_the_length_bound_never_inside_a_latin_word():
    text = "これはPythonのコードです" * 12
    pieces = chunk(text, max_chars=40)
    assert len(pieces) > 3 and all(len(p) <= 40 for p in pieces)
    assert "".join(pieces) == text  # nothing lost
    assert sum(p.count("Python") for p in pieces) == text.count("Python")  # no Latin word broken


def test_text_for_a_voice_is_cut_into_bounded_pieces_in_order():
    from voxgate.chunker import spoken_pieces

    endless = " ".join(f"word{i}" for i in range(800))  # no punctuation at all
    pieces = spoken_pieces(endless)
    assert max(map(len, pieces)) <= 160 and " ".join(pieces) == endless
    assert spoken_pieces("Hello there. How are you?") == ["Hello there.", "How are you?"]
    assert spoken_pieces("\u0001") == []


def test_speakable_drops_markdown_but_keeps_words():
    assert speakable("**Paris** is the `capital`.\n# Notes\n> quoted") == "Paris is the capital . Notes quoted"
