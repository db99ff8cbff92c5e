"""The fast tier: the whole app in this process (Starlette's TestClient, httpx underneath)
with fake engines, so turns, streaming, the realtime session and the persona/model/request
precedence are checked in seconds, without model files. The real-model tier (marked
`real`) checks the same paths end to end."""

import base64
import io
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from voxgate.api.app import create_app
from voxgate.catalog import Role
from voxgate.config import Settings, SpeechToTextSettings
from voxgate.engines.base import ChatMessage, ChatRequest, ChatResult, Readings, SpeechChunk, Transcription
from voxgate.registry import Registry
from voxgate.scheduler import current_deadline

RATE = 16_000


class FakeSTT:
    name = "fake-stt"

    def __init__(self) -> None:
        self.deadlines: list[float] = []  # when each transcription was due (scheduler deadline)
        self.seconds: list[float] = []  # how much audio each one heard

    def transcribe(self, samples, *, language=None, prompt=None, temperature=0.0) -> Transcription:
        self.deadlines.append(current_deadline())
        self.seconds.append(len(samples) / RATE)
        return Transcription("what did I say", language or "en", len(samples) / RATE)

    def warm_up(self) -> None:
        pass


class FakeLLM:
    """Repeats the question and counts the messages it was given; records every request."""

    name = "fake-llm"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []
        self.prefilled: list[tuple[ChatMessage, ...]] = []

    def prefill(self, messages: tuple[ChatMessage, ...]) -> None:
        self.prefilled.append(messages)

    def generate(self, request: ChatRequest, on_delta=None) -> ChatResult:
        self.requests.append(request)
        question = request.messages[-1].content
        text = f"You said {question.rstrip('.?!')}. I was given {len(request.messages)} messages."
        for word in text.split(" "):
            if on_delta is not None and on_delta(word + " "):
                return ChatResult("", "cancelled")
        return ChatResult(text, "stop", 10, len(text.split()))

    def warm_up(self) -> None:
        pass


class FakeTTS:
    """A tenth of a second of a tone per sentence."""

    name = "fake-tts"
    sample_rate = RATE

    def __init__(self) -> None:
        self.deadlines: list[float] = []  # when each piece was due (scheduler deadline)

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[SpeechChunk]:
        self.deadlines.append(current_deadline())
        tone = np.sin(np.arange(RATE // 10) * 2 * np.pi * 440 / RATE) * 8000
        yield SpeechChunk(tone.astype(np.int16), RATE)

    def warm_up(self) -> None:
        pass


class FakeTurn:
    """Hears a turn as finished only once half a second of silence follows the words, as
    the real model often does for a short question (bench: 0.41 at the pause, 0.93 later)."""

    name = "fake-turn"

    def completion(self, samples) -> float:
        tail = np.asarray(samples[-RATE // 2 :], np.float32)
        return 1.0 if len(tail) == RATE // 2 and np.sqrt(np.mean(tail**2)) < 0.005 else 0.0

    def warm_up(self) -> None:
        pass


class FakeRegistry(Registry):
    """The catalog's default names, fake engines behind them."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.fakes = {Role.STT: FakeSTT(), Role.LLM: FakeLLM(), Role.TTS: FakeTTS(), Role.TURN: FakeTurn()}

    def _open(self, role: Role, name: str):
        return self.fakes[role]


def settings_in(tmp_path, **fields) -> Settings:
    # Its own cache: a custom model made here must not land among the real models.
    return Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", auth="off", seed=7, **fields)


@pytest.fixture
def app(tmp_path):
    app = create_app(settings_in(tmp_path, store_audio=True))
    app.state.models = FakeRegistry(app.state.settings)
    return app


@contextmanager
def serving(app) -> Iterator[TestClient]:
    with TestClient(app) as client:  # runs the lifespan: database, pipeline, model loading
        deadline = time.monotonic() + 10  # the fakes load at once, but in the background
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/readyz").text
            time.sleep(0.01)
        yield client


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with serving(app) as client:
        yield client


def llm(app) -> FakeLLM:
    return app.state.models.fakes[Role.LLM]


def test_a_text_turn_is_answered_stored_and_continued(client, app):
    first = client.post("/v1/chat", json={"text": "Hello there."})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["reply"] == "You said Hello there. I was given 2 messages."  # system + question
    assert body["models"]["llm"] == app.state.models.defaults[Role.LLM]
    assert llm(app).requests[-1].seed == 7  # the configured seed reaches the engine

    second = client.post("/v1/chat", json={"text": "Again.", "conversation_id": body["conversation_id"]})
    assert second.json()["reply"].endswith("I was given 4 messages.")  # the first turn is history
    stored = client.get(f"/v1/conversations/{body['conversation_id']}").json()["messages"]
    assert [m["text"] for m in stored] == ["Hello there.", body["reply"], "Again.", second.json()["reply"]]


def test_a_voice_turn_answers_with_audio(client):
    speech = io.BytesIO()
    with wave.open(speech, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.random.default_rng(0).normal(0, 3000, RATE)).astype(np.int16).tobytes())
    r = client.post("/v1/chat", files={"audio": ("q.wav", speech.getvalue())}, data={"reply_as": "voice"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"
    assert r.headers["x-voxgate-transcript"] == "what%20did%20I%20say"
    with wave.open(io.BytesIO(r.content)) as reply:
        assert reply.getframerate() == RATE and reply.getnframes() >= RATE // 10


def test_sse_sends_text_audio_then_done(client):
    with client.stream("POST", "/v1/chat", json={"text": "Hi.", "reply_as": "voice", "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in r.iter_lines() if line.startswith("event: ")]
    assert events[0] == "text" and "audio" in events and events[-1] == "done", events
    assert events.index("audio") < events.index("done")


@pytest.mark.parametrize(
    ("request_fields", "conversation_persona", "expected"),
    [
        ({}, None, {"max_tokens": 20}),  # the conversation's persona: concise says 20 tokens
        ({"max_tokens": 7}, None, {"max_tokens": 7}),  # the request wins over the persona
        ({"persona": "assistant"}, None, {"max_tokens": None}),  # a persona named in the request wins
        ({}, "assistant", {"max_tokens": None}),
    ],
)
def test_request_persona_and_conversation_precedence(client, app, request_fields, conversation_persona, expected):
    conversation = client.post("/v1/conversations", json={"persona": conversation_persona or "concise"}).json()
    r = client.post("/v1/chat", json={"text": "Hi.", "conversation_id": conversation["id"], **request_fields})
    assert r.status_code == 200, r.text
    sent = llm(app).requests[-1]
    if expected["max_tokens"] is None:
        assert sent.max_tokens == app.state.settings.max_tokens
    else:
        assert sent.max_tokens == expected["max_tokens"]


def test_a_custom_model_brings_its_persona_and_the_request_overrides_it(client, app):
    made = client.post(
        "/v1/models/create",
        json={
            "name": "pirate",
            "base": app.state.models.defaults[Role.LLM],
            "system": "Talk like a pirate.",
            "temperature": 1.1,
        },
    )
    assert made.status_code == 201, made.text
    client.post("/v1/chat", json={"text": "Hi.", "model": "pirate"})
    sent = llm(app).requests[-1]
    assert sent.messages[0].content.startswith("Talk like a pirate.") and sent.temperature == 1.1
    client.post("/v1/chat", json={"text": "Hi.", "model": "pirate", "temperature": 0.2})
    assert llm(app).requests[-1].temperature == 0.2


def test_realtime_session_answers_typed_input(client):
    with client.websocket_connect("/v1/realtime", subprotocols=["voxgate"]) as ws:
        ws.send_json({"type": "session.start", "reply_as": "voice", "input_format": "pcm16", "sample_rate": RATE})
        assert ws.receive_json()["type"] == "session.ready"
        ws.send_json({"type": "input.text", "text": "Hello."})
        kinds, audio = [], b""
        while (message := ws.receive_json())["type"] != "done":
            kinds.append(message["type"])
            if message["type"] == "audio":
                audio += base64.b64decode(message["audio"])
    assert "text" in kinds and "audio" in kinds, kinds
    assert audio[:4] == b"RIFF"
    assert message["reply"] == "You said Hello. I was given 2 messages."


SILENCE = bytes(2 * RATE // 50)  # 20 ms of pcm16


def question_frames() -> list[bytes]:
    """The recorded question (hibari "heart"), pcm16, in 20 ms frames."""
    with wave.open(str(Path(__file__).parent / "data" / "question.wav")) as clip:
        speech = clip.readframes(clip.getnframes())
    return [speech[i : i + len(SILENCE)] for i in range(0, len(speech), len(SILENCE))]


def receive_until(ws, kind: str = "done") -> list[dict]:
    """The session's messages up to and including the first of `kind`."""
    log = [ws.receive_json()]
    while log[-1]["type"] != kind:
        log.append(ws.receive_json())
    return log


def ask_aloud(client, reply_as: str, then_type: str | None = None) -> tuple[list[str], dict]:
    """Speak the recorded question on the realtime socket, then 1.5 s of silence (and, if
    given, type a message): the event types up to `done`, and `done`."""
    with client.websocket_connect("/v1/realtime", subprotocols=["voxgate"]) as ws:
        ws.send_json(
            {
                "type": "session.start",
                "reply_as": reply_as,
                "input_format": "pcm16",
                "sample_rate": RATE,
                "max_silence_ms": 5000,
            }
        )
        assert ws.receive_json()["type"] == "session.ready"
        for frame in [SILENCE] * 15 + question_frames() + [SILENCE] * 75:
            ws.send_bytes(frame)
        if then_type:
            ws.send_json({"type": "input.text", "text": then_type})
        *before, done = receive_until(ws)
    return [m["type"] for m in before], done


def test_a_turn_the_model_doubts_at_the_pause_ends_at_its_second_look(client):
    """1.5 s of silence follows the question, far short of max_silence_ms: only the second
    look (relook_ms) can end the turn before the typed message that comes next."""
    kinds, done = ask_aloud(client, "text", then_type="And now?")
    assert kinds[:2] == ["speech.started", "speech.stopped"] and "transcript" in kinds, kinds
    assert done["transcript"] == "what did I say"


def test_a_spoken_turns_first_audio_work_is_due_when_the_user_stopped_talking(client, app):
    """Its STT and its first clause's voice share one deadline, the end of the speech, so
    they go before the work of anyone who stopped talking later."""
    kinds, done = ask_aloud(client, "voice")
    assert kinds.count("audio") == 2, kinds  # "You said what did I say." + "I was given 2 messages."
    heard, spoken = app.state.models.fakes[Role.STT].deadlines, app.state.models.fakes[Role.TTS].deadlines
    assert spoken[0] == heard[0]


def test_the_words_of_a_question_still_being_spoken_are_prefilled(client, app):
    """Past a second of speech, the words heard so far (less the last, which may be cut off)
    are evaluated into the LLM's cache as the question of the prompt the turn will have."""
    with client.websocket_connect("/v1/realtime", subprotocols=["voxgate"]) as ws:
        start_text_session(ws)
        for frame in [SILENCE] * 15 + question_frames() * 2 + [SILENCE] * 75:  # 1.6 s of speech
            ws.send_bytes(frame)
        receive_until(ws)
    fake = llm(app)
    asked = fake.requests[-1].messages
    assert fake.prefilled[0] == (*asked[:-1], ChatMessage("user", "what did I")), fake.prefilled
    assert asked[-1] == ChatMessage("user", "what did I say")


def answer_slowly(app, monkeypatch) -> None:
    """0.2 s a word: the reply is still going when the user talks again."""
    model, answer = llm(app), llm(app).generate

    def slowly(request: ChatRequest, on_delta=None) -> ChatResult:
        return answer(request, lambda text: time.sleep(0.2) or bool(on_delta and on_delta(text)))

    monkeypatch.setattr(model, "generate", slowly)


def start_text_session(ws) -> None:
    ws.send_json({"type": "session.start", "reply_as": "text", "input_format": "pcm16", "sample_rate": RATE})
    assert ws.receive_json()["type"] == "session.ready"


@pytest.mark.parametrize("went_on_seconds", [0.0, 30.0])
def test_speech_right_after_a_reply_began_continues_the_turn_else_interrupts(client, app, monkeypatch, went_on_seconds):
    """The turn ends at a pause, its reply begins, and the user talks on. Had they had time
    to hear the reply (`WENT_ON_SECONDS`, made 0 or 30 s here), they interrupted it: it is
    stored as far as it went. If not, the turn had ended too soon: the reply is dropped, and
    the next is to both utterances heard as one."""
    monkeypatch.setattr("voxgate.realtime.WENT_ON_SECONDS", went_on_seconds)
    answer_slowly(app, monkeypatch)
    frames = question_frames()
    with client.websocket_connect("/v1/realtime", subprotocols=["voxgate"]) as ws:
        start_text_session(ws)
        for frame in [SILENCE] * 15 + frames + [SILENCE] * 50:
            ws.send_bytes(frame)
        log = receive_until(ws, "text")  # the reply to the first has begun
        for frame in frames + [SILENCE] * 75:
            ws.send_bytes(frame)
        log += receive_until(ws)
    message = log.pop()
    kinds = [m["type"] for m in log]
    assert kinds.count("speech.stopped") == 2, kinds
    stored = client.get(f"/v1/conversations/{message['conversation_id']}").json()["messages"]
    heard = app.state.models.fakes[Role.STT].seconds
    if went_on_seconds:
        assert "interrupted" not in kinds, kinds
        assert [m["role"] for m in stored] == ["user", "assistant"]
        assert heard[-1] > 2 * heard[0] - 0.5  # both questions in one
    else:
        interrupted = next(m for m in log if m["type"] == "interrupted")
        assert interrupted["reply"] and message["reply"].startswith(interrupted["reply"].split()[0])
        assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
        assert heard[-1] < heard[0] + 0.5  # the second question alone


def test_a_typed_question_talked_over_at_once_is_interrupted_not_dropped(client, app, monkeypatch):
    """Only a spoken turn can have ended too soon: a typed one talked over as its reply
    begins is interrupted and stored as far as it went, and the speech is a turn of its own."""
    monkeypatch.setattr("voxgate.realtime.WENT_ON_SECONDS", 30.0)
    answer_slowly(app, monkeypatch)
    with client.websocket_connect("/v1/realtime", subprotocols=["voxgate"]) as ws:
        start_text_session(ws)
        ws.send_json({"type": "input.text", "text": "Hello."})
        assert ws.receive_json()["type"] == "text"  # the reply began
        for frame in [SILENCE] * 5 + question_frames() + [SILENCE] * 75:
            ws.send_bytes(frame)
        log = receive_until(ws)
    interrupted = [m for m in log if m["type"] == "interrupted"]
    assert interrupted, [m["type"] for m in log]
    stored = client.get(f"/v1/conversations/{log[-1]['conversation_id']}").json()["messages"]
    assert [m["text"] for m in stored[:2]] == ["Hello.", interrupted[0]["reply"]]
    assert [m["text"] for m in stored[2:]] == ["what did I say", log[-1]["reply"]]


class HearsWords(FakeSTT):
    """Hears short speech as words: unsure ("In a month.", as Whisper tiny hears some hummed
    "mm-hmm"s) or sure ("Stop.")."""

    def __init__(self, sure: bool) -> None:
        super().__init__()
        self.sure = sure

    def alternatives(self, samples, *, language=None, prompt=None) -> Readings:
        return Readings(("Stop.",) if self.sure else ("In a month.",), self.sure, language="en")


class HearsAcknowledgement(FakeSTT):
    name = "fake-second-opinion"

    def __init__(self) -> None:
        super().__init__()
        self.asked_in: list[str | None] = []  # the language of each request

    def alternatives(self, samples, *, language=None, prompt=None) -> Readings:
        self.asked_in.append(language)
        return Readings(("Mm-hmm.",))


class DoubtingRegistry(FakeRegistry):
    """The default STT hears words; the second opinion, an acknowledgement."""

    def __init__(self, settings: Settings, sure: bool):
        super().__init__(settings)
        self.fakes[Role.STT] = HearsWords(sure)
        self.second = HearsAcknowledgement()

    def _open(self, role: Role, name: str):
        return self.second if name == self.second_opinion else super()._open(role, name)


@pytest.mark.parametrize(
    ("sure", "second_opinion", "interrupted"),
    [(False, "whisper-base", False), (True, "whisper-base", True), (False, "", True)],
)
def test_short_speech_heard_unsure_as_words_is_heard_again_by_the_second_opinion(
    tmp_path, monkeypatch, sure, second_opinion, interrupted
):
    """Short speech over a reply: words the STT is sure of interrupt; words it doubts are
    heard again by the second-opinion model, whose "Mm-hmm." lets the reply go on. Without
    a second opinion, the doubted words interrupt. The session names no language: the second
    opinion hears in the default model's, not one it would guess from a lone hum."""
    app = create_app(settings_in(tmp_path, stt=SpeechToTextSettings(second_opinion=second_opinion)))
    registry = app.state.models = DoubtingRegistry(app.state.settings, sure)
    answer_slowly(app, monkeypatch)
    with serving(app) as client, client.websocket_connect("/v1/realtime", subprotocols=["voxgate"]) as ws:
        start_text_session(ws)
        ws.send_json({"type": "input.text", "text": "Hello."})
        assert ws.receive_json()["type"] == "text"  # the reply began
        for frame in [SILENCE] * 5 + question_frames() + [SILENCE] * 50:  # 0.8 s of speech: short
            ws.send_bytes(frame)
        log = receive_until(ws)
    kinds = [m["type"] for m in log]
    assert ("interrupted" in kinds) is interrupted, kinds
    assert registry.second.asked_in == (["en"] if not sure and second_opinion else [])
    if not interrupted:
        assert log[-1]["reply"] == "You said Hello. I was given 2 messages."


class UnpulledSecondOpinion(DoubtingRegistry):
    def _open(self, role: Role, name: str):
        if name == self.second_opinion:
            raise FileNotFoundError(f"{name} is not in the cache")
        return super()._open(role, name)


def test_a_second_opinion_that_cannot_load_leaves_the_default_models_verdict(tmp_path, monkeypatch):
    """Not pulled: the server still gets ready, and doubted words over a reply interrupt it
    as they would without a second opinion; the session goes on to answer them."""
    app = create_app(settings_in(tmp_path))
    app.state.models = UnpulledSecondOpinion(app.state.settings, sure=False)
    answer_slowly(app, monkeypatch)
    with serving(app) as client, client.websocket_connect("/v1/realtime", subprotocols=["voxgate"]) as ws:
        start_text_session(ws)
        ws.send_json({"type": "input.text", "text": "Hello."})
        assert ws.receive_json()["type"] == "text"
        for frame in [SILENCE] * 5 + question_frames() + [SILENCE] * 50:
            ws.send_bytes(frame)
        log = receive_until(ws)
    kinds = [m["type"] for m in log]
    assert "interrupted" in kinds and "error" not in kinds, kinds
    assert log[-1]["transcript"] == "what did I say"
