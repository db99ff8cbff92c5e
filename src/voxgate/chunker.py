"""Cut a stream of LLM text into pieces a voice can start speaking before the reply ends.

A piece ends at a sentence end (. ! ? followed by a space, or ending the text so far after
a word), at a line break, at a clause mark (, ; :) once the piece is long enough to sound
natural, or, for text without punctuation, at the last space before a length bound. It never
cuts inside a word, after an abbreviation ("Dr.", "e.g."), inside a number ("3.5") or after a
list marker ("1.").
Japanese and Chinese put no space after punctuation or between words: their text is cut
after 。！？ (and a closing quote), after 、，；： and, unpunctuated, between two of its
characters at the length bound.
"""

import re

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e approx no fig inc ltd co mt jan feb mar apr jun jul aug sep sept "
    "oct nov dec".split()
)
_CJK_CLOSERS = re.escape("」』）】〉》”’\"')]")  # closing quotes and brackets stay with their sentence
# A sentence ends before a space or, when the text so far ends on punctuation after a word
# (not a digit: "3." may go on "3.5"), right there: waiting for the next token would cost a
# whole decoding step before the voice can start.
_SENTENCE_END = re.compile(
    rf"[.!?…]+[\"')\]]*(?=\s)|(?<=[^\W\d_])[.!?…]+$|[。！？]+[{_CJK_CLOSERS}]*(?=[^{_CJK_CLOSERS}])"
)
_CLAUSE_END = re.compile(r"[,;:—]+(?=\s)|[、，；：]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")  # kana, Han


def _ends_with_abbreviation(text: str) -> bool:
    """True when the final '.' of `text` belongs to an abbreviation, an initial or a list number."""
    word = text.rsplit(None, 1)[-1].rstrip(".").lower() if text.strip() else ""
    if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return True
    # "1." at the start of a line is a list marker, not the end of a sentence.
    line = text.rsplit("\n", 1)[-1].strip()
    return line.rstrip(".").isdigit()


def _open_quote(text: str) -> bool:
    return text.count('"') % 2 == 1 or text.count("(") > text.count(")") or text.count("“") > text.count("”")


def _last_break(text: str, limit: int) -> int | None:
    """The last place before `limit` to cut between words: a space, or between two CJK characters."""
    for i in range(limit - 1, 0, -1):
        if text[i] == " " or (_CJK.match(text, i - 1) and _CJK.match(text, i)):
            return i
    return None  # one endless word: wait for its end


class SentenceChunker:
    """`first_chars` bounds only the first piece: the listener waits for it, so it is cut
    sooner (at any clause mark, or between words) to start the voice early. None: no
    special first piece."""

    def __init__(self, *, clause_chars: int = 30, max_chars: int = 160, first_chars: int | None = 48):
        self.clause_chars = clause_chars
        self.max_chars = max_chars
        self.first_chars = first_chars
        self._buffer = ""
        self._started = False

    def push(self, delta: str) -> list[str]:
        """Add generated text; return the pieces that are now complete."""
        self._buffer += delta
        pieces = []
        while (piece := self._next_piece()) is not None:
            pieces.append(piece)
        return pieces

    def flush(self) -> list[str]:
        """The rest, at the end of the reply."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if any(char.isalnum() for char in rest) else []

    def _next_piece(self) -> str | None:
        buffer = self._buffer
        cut = None
        for match in _SENTENCE_END.finditer(buffer):
            if match.group().startswith(".") and _ends_with_abbreviation(buffer[: match.start() + 1]):
                continue
            if match.end() == len(buffer) and _open_quote(buffer):
                continue  # 'He said "stop.': its closing quote belongs to it
            cut = match.end()
            break
        newline = buffer.find("\n")
        if newline > 0 and buffer[:newline].strip() and (cut is None or newline < cut):
            cut = newline
        first_chars = None if self._started else self.first_chars
        clause_chars, max_chars = (1, first_chars) if first_chars is not None else (self.clause_chars, self.max_chars)
        if cut is None:
            for match in _CLAUSE_END.finditer(buffer):
                if match.end() >= clause_chars:
                    cut = match.end()
                    break
        if cut is None and len(buffer) > max_chars:
            cut = _last_break(buffer, max_chars)
        if cut is None:
            return None
        piece, self._buffer = buffer[:cut].strip(), buffer[cut:].lstrip()
        if not any(char.isalnum() for char in piece):  # a quote or "!" left after a cut: nothing to say
            return self._next_piece()
        self._started = True
        return piece


_MARKDOWN = re.compile(r"[*_`#>|]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def speakable(text: str) -> str:
    """Text as a voice should read it: markdown emphasis, code ticks, headings and control
    characters removed."""
    return " ".join(_MARKDOWN.sub(" ", _CONTROL.sub(" ", text)).split())


def spoken_pieces(text: str) -> list[str]:
    """`text` as a voice reads it, cut into sentences and, past `SentenceChunker.max_chars`,
    at clause marks or spaces: an engine is never handed one endless sentence (800
    unpunctuated words took Piper's memory from 1.9 to 8 GB)."""
    chunker = SentenceChunker(first_chars=None, clause_chars=SentenceChunker().max_chars)
    return [*chunker.push(speakable(text) + " "), *chunker.flush()]
