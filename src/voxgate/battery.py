"""The answer battery: questions whose replies voxgate must get right, short and speakable.

`voxgate eval` sends them to a running server (any model it can answer with, local or
remote) and scores each model on what a listener notices: is the answer right, was the
spoken question heard, does the reply keep to the length rule with nothing a voice cannot
say, and how long it took. Greedy decoding (temperature 0), so a run can be repeated.
"""

import re
import statistics
import time
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Item:
    """The last of `turns` is scored; earlier turns set up the conversation."""

    kind: str
    turns: tuple[str, ...]
    expect: tuple[str, ...]  # the reply is right if it contains any of these (whole words)
    spoken: bool = False  # asked as speech, synthesized by the server's own voice
    max_words: int | None = None  # an instruction on length ("in one word")
    avoid: tuple[str, ...] = ()  # wrong if any of these appear


def _ask(
    *turns: str,
    expect: str | tuple[str, ...],
    kind: str,
    spoken: bool = False,
    max_words: int | None = None,
    avoid: tuple[str, ...] = (),
) -> Item:
    return Item(kind, turns, (expect,) if isinstance(expect, str) else expect, spoken, max_words, avoid)


BATTERY: tuple[Item, ...] = (
    # Facts.
    _ask("What is the capital of France?", expect="paris", kind="fact", spoken=True),
    _ask("What is the capital of Japan?", expect="tokyo", kind="fact", spoken=True),
    _ask("How many legs does a spider have?", expect=("eight", "8"), kind="fact", spoken=True),
    _ask("What is the largest planet in our solar system?", expect="jupiter", kind="fact", spoken=True),
    _ask("Who wrote Romeo and Juliet?", expect="shakespeare", kind="fact", spoken=True),
    _ask("What do bees make?", expect="honey", kind="fact", spoken=True),
    _ask("What is frozen water called?", expect="ice", kind="fact", spoken=True),
    _ask("How many days are in a week?", expect=("seven", "7"), kind="fact", spoken=True),
    _ask("What is the boiling point of water in Celsius?", expect=("100", "hundred"), kind="fact", spoken=True),
    _ask("Which ocean is the largest?", expect="pacific", kind="fact"),
    _ask("What is the chemical symbol for gold?", expect="au", kind="fact"),
    _ask("How many continents are there?", expect=("seven", "7"), kind="fact"),
    _ask("What is the Moon?", expect="satellite", kind="fact", avoid=("is a planet", "only planet")),
    _ask("In which country are the pyramids of Giza?", expect="egypt", kind="fact"),
    _ask("What gas do plants take in from the air?", expect=("carbon", "co2"), kind="fact"),
    _ask("What is the tallest mountain on Earth?", expect="everest", kind="fact"),
    # Arithmetic.
    _ask("What is two plus two?", expect=("four", "4"), kind="arithmetic", spoken=True),
    _ask("What is seven times eight?", expect=("56", "fifty-six", "fifty six"), kind="arithmetic", spoken=True),
    _ask("What is ten minus three?", expect=("seven", "7"), kind="arithmetic"),
    _ask("What is half of one hundred?", expect=("50", "fifty"), kind="arithmetic"),
    _ask("What is 12 divided by 4?", expect=("3", "three"), kind="arithmetic"),
    _ask(
        "How many minutes are in two hours?", expect=("120", "hundred and twenty", "hundred twenty"), kind="arithmetic"
    ),
    # Short explanations.
    _ask("Why is the sky blue?", expect=("scatter", "scattering", "scattered"), kind="explanation", spoken=True),
    _ask(
        "How does a car engine work?",
        expect=("fuel", "combustion", "gasoline", "petrol"),
        kind="explanation",
        avoid=("electrical energy",),
    ),
    _ask("Why do we have seasons?", expect=("tilt", "tilted", "axis"), kind="explanation"),
    _ask("What does the heart do?", expect=("blood", "pumps", "pump"), kind="explanation"),
    _ask("Why does ice float on water?", expect=("dense", "density", "lighter"), kind="explanation"),
    _ask(
        "What causes rain?",
        expect=("condense", "condenses", "condensation", "clouds", "vapor", "vapour"),
        kind="explanation",
    ),
    # Follow-ups that need the conversation.
    _ask(
        "What is the capital of Italy?", "And how many people live there?", expect=("million", "rome"), kind="follow-up"
    ),
    _ask("Tell me about the planet Mars.", "How many moons does it have?", expect=("two", "2"), kind="follow-up"),
    _ask("Who painted the Mona Lisa?", "When was he born?", expect="1452", kind="follow-up"),
    _ask("What is the capital of Germany?", "What river flows through it?", expect="spree", kind="follow-up"),
    _ask(
        "Think of the number seven.",
        "Add three to that number. What do you get?",
        expect=("ten", "10"),
        kind="follow-up",
    ),
    # Remembering what the user said.
    _ask("My name is Ada.", "What is my name?", expect="ada", kind="memory"),
    _ask("I live in Lisbon.", "Which city do I live in?", expect="lisbon", kind="memory"),
    _ask("My favourite colour is green.", "What is my favourite colour?", expect="green", kind="memory"),
    _ask("I have two cats and a dog.", "How many pets do I have?", expect=("three", "3"), kind="memory"),
    # Instructions.
    _ask("Answer in one word: what colour is grass?", expect="green", kind="instruction", max_words=2),
    _ask(
        "Answer with just a number: how many wheels does a bicycle have?",
        expect=("2", "two"),
        kind="instruction",
        max_words=2,
    ),
    _ask("Answer yes or no: is the sun a star?", expect="yes", kind="instruction", max_words=3),
    _ask("In one word, what animal says moo?", expect=("cow", "cows"), kind="instruction", max_words=2),
    _ask("Say only the opposite of hot.", expect="cold", kind="instruction", max_words=3),
    _ask("Name one primary colour, nothing else.", expect=("red", "blue", "yellow"), kind="instruction", max_words=3),
)

MAX_SENTENCES = 3  # what the default system prompt asks for
# Things a voice reads badly: markdown, list markers, code and links.
_UNSPEAKABLE = re.compile(r"[*#`_|<>\[\]{}]|^\s*(?:[-•]|\d+\.)\s|https?://|www\.", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", text.lower())


def contains(text: str, phrase: str) -> bool:
    """`phrase` in `text` as whole words."""
    return re.search(rf"\b{re.escape(phrase.lower())}\b", " ".join(words(text))) is not None


_NUMBERS = "zero one two three four five six seven eight nine ten eleven twelve".split()


def _said(text: str) -> list[str]:
    """The words as spoken: Whisper writes "2 plus 2" for "two plus two"."""
    return [_NUMBERS[int(w)] if w.isdigit() and int(w) < len(_NUMBERS) else w for w in words(text)]


@dataclass
class Score:
    """One reply's verdicts."""

    item: Item
    reply: str
    seconds: float
    heard: bool | None  # None: asked as text
    right: bool
    well_formed: bool


def score(item: Item, reply: str, seconds: float, transcript: str | None) -> Score:
    right = any(contains(reply, e) for e in item.expect) and not any(contains(reply, a) for a in item.avoid)
    if item.max_words is not None:
        short = len(words(reply)) <= item.max_words
    else:
        short = len(_SENTENCE_END.findall(reply.strip() + " ")) <= MAX_SENTENCES
    heard = None if transcript is None else _said(transcript) == _said(item.turns[-1])
    return Score(item, reply, seconds, heard, right, short and not _UNSPEAKABLE.search(reply))


@dataclass
class Report:
    model: str
    scores: list[Score] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        s = self.scores
        spoken = [x for x in s if x.heard is not None]
        times = [x.seconds for x in s]
        return {
            "model": self.model,
            "right": sum(x.right for x in s),
            "asked": len(s),
            "heard": sum(bool(x.heard) for x in spoken),
            "spoken": len(spoken),
            "well_formed": sum(x.well_formed for x in s),
            "errors": len(self.errors),
            "median_s": round(statistics.median(times), 2) if times else None,
            "p95_s": round(sorted(times)[int(0.95 * (len(times) - 1))], 2) if times else None,
        }


def run(client: httpx.Client, model: str | None, *, items: tuple[Item, ...] = BATTERY, on_score=None) -> Report:
    """Ask every item of the battery with `model` (None: the server's default LLM)."""
    report = Report(model or "default")
    for item in items:
        try:
            conversation = None
            for i, question in enumerate(item.turns):
                last = i == len(item.turns) - 1
                fields = {"model": model, "temperature": 0, "conversation_id": conversation}
                fields = {k: v for k, v in fields.items() if v is not None}
                started = time.perf_counter()
                if item.spoken and last:
                    speech = client.post("/v1/audio/speech", json={"input": question, "response_format": "wav"})
                    speech.raise_for_status()
                    started = time.perf_counter()  # the question's synthesis is not the answer's time
                    response = client.post(
                        "/v1/chat",
                        files={"audio": ("question.wav", speech.content)},
                        data={k: str(v) for k, v in fields.items()},
                    )
                else:
                    response = client.post("/v1/chat", json={"text": question, **fields})
                response.raise_for_status()
                answer = response.json()
                conversation = answer["conversation_id"]
            scored = score(item, answer["reply"], time.perf_counter() - started, answer.get("transcript"))
            report.scores.append(scored)
            if on_score:
                on_score(scored)
        except httpx.HTTPError as exc:
            detail = exc.response.text[:200] if isinstance(exc, httpx.HTTPStatusError) else str(exc)
            report.errors.append(f"{item.turns[-1]!r}: {detail}")
    return report
