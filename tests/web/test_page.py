"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real
server with the default models. Chromium's fake microphone speaks a question in the Piper
voice: push-to-talk sends it to POST /v1/chat, hands-free streams it over /v1/realtime.

No browser is downloaded: Playwright only drives /usr/bin/chromium (`make test` installs it).
"""

import json
import re
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import add_user, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
QUESTION = "What is the capital of France?"
STORY = "Tell me a long story about a dragon."  # an answer long enough to stop halfway
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TURN_TIMEOUT = 180_000  # ms: a voice turn on 2 CPU cores, with room for a slow machine
# Quiet and predictable: no updates, sync or other traffic, no GPU in containers.
BASE_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def web_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("web"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def web_user(web_server) -> tuple[str, str]:
    """(username, password) of a fresh account, to sign in through the form."""
    password, _ = add_user(web_server.env, "webuser")
    return "webuser", password


@pytest.fixture(scope="module")
def spoken(web_server, tmp_path_factory) -> Callable[[str], tuple[Path, float]]:
    """spoken(text) -> (path, seconds): the text in the Piper voice (natural: Whisper and the
    end-of-turn model hear a person), as 48 kHz 16-bit mono PCM (what Chromium's fake capture
    device reads best) with silence around it. The trailing second of silence ends the turn."""
    folder = tmp_path_factory.mktemp("spoken")
    made: dict[str, tuple[Path, float]] = {}

    def speak(text: str) -> tuple[Path, float]:
        if text in made:
            return made[text]
        response = httpx.post(f"{web_server.url}/v1/audio/speech", headers=web_server.headers, timeout=120,
                              json={"input": text, "response_format": "wav"})
        assert response.status_code == 200, response.text
        path = folder / f"{len(made)}.wav"
        path.write_bytes(response.content)
        with wave.open(str(path)) as src:
            rate = src.getframerate()
            speech = np.frombuffer(src.readframes(src.getnframes()), dtype=np.int16).astype(np.float32)
        out_rate = 48_000
        resampled = np.interp(np.arange(0, len(speech), rate / out_rate), np.arange(len(speech)), speech)
        samples = np.concatenate([np.zeros(int(0.7 * out_rate)), resampled, np.zeros(int(1.0 * out_rate))])
        with wave.open(str(path), "wb") as dst:
            dst.setnchannels(1)
            dst.setsampwidth(2)
            dst.setframerate(out_rate)
            dst.writeframes(samples.astype(np.int16).tobytes())
        made[text] = path, len(samples) / out_rate
        return made[text]

    return speak


@pytest.fixture(scope="module")
def question_wav(spoken) -> tuple[Path, float]:
    return spoken(QUESTION)


@pytest.fixture(scope="module")
def chromium(spoken) -> Iterator[Callable[[str], object]]:
    """chromium(text) -> a Chromium whose fake microphone says `text` once (%noloop: then
    silence, so the question is not asked again) from the moment a page opens it. Permission
    prompts are denied; a context grants the microphone itself. One browser per text."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `make test` installs the test extra")
    with sync_playwright() as p:
        browsers = {}

        def launch(text: str):
            if text not in browsers:
                path, _ = spoken(text)
                browsers[text] = p.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True,
                    args=[*BASE_ARGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts",
                          f"--use-file-for-fake-audio-capture={path}%noloop"],
                )
            return browsers[text]

        yield launch
        for browser in browsers.values():
            browser.close()


@pytest.fixture
def open_page(chromium, web_server, web_user) -> Iterator:
    """open_page(microphone=..., says=...) -> a signed-in page in a fresh browser context,
    whose microphone says `says`. Uncaught script errors fail the test."""
    contexts, errors = [], []

    def open_(*, microphone: bool, says: str = QUESTION):
        context = chromium(says).new_context()
        contexts.append(context)
        if microphone:
            context.grant_permissions(["microphone"], origin=web_server.url)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        response = page.goto(web_server.url)
        assert response.status == 200, "GET / failed: include web.router in create_app (src/voxgate/api/app.py)"
        page.get_by_label("Username").fill(web_user[0])
        page.get_by_label("Password").fill(web_user[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Talk")).to_be_focused()
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


class SocketLog:
    """Every frame the page sends and receives on its WebSockets, with the time it passed."""

    def __init__(self, page):
        self.page = page
        self.urls: list[str] = []
        self.closed = 0
        self.sent: list[tuple[float, str | bytes]] = []
        self.received: list[tuple[float, dict]] = []
        page.on("websocket", self._opened)

    def _opened(self, ws) -> None:
        self.urls.append(ws.url)
        ws.on("framesent", lambda payload: self.sent.append((time.monotonic(), payload)))
        ws.on("framereceived", lambda payload: self.received.append((time.monotonic(), json.loads(payload))))
        ws.on("close", lambda _: setattr(self, "closed", self.closed + 1))

    def messages(self, kind: str) -> list[dict]:
        return [m for _, m in self.received if m["type"] == kind]

    def sent_json(self) -> list[dict]:
        return [json.loads(p) for _, p in self.sent if isinstance(p, str)]

    def when(self, kind: str) -> float:
        return next(t for t, m in self.received if m["type"] == kind)

    def wait_for(self, kind: str, count: int = 1, timeout: float = TURN_TIMEOUT / 1000) -> dict:
        """The `count`th message of `kind`; the page's events are delivered while it waits."""
        deadline = time.monotonic() + timeout
        while len(self.messages(kind)) < count:
            assert time.monotonic() < deadline, f"no {kind} within {timeout} s: {[m['type'] for _, m in self.received]}"
            self.page.wait_for_timeout(200)
        return self.messages(kind)[count - 1]


def api_get(page, path: str) -> dict:
    """GET an API path as the signed-in user, with the page's own token."""
    return page.evaluate("""async (path) => {
        const token = sessionStorage.getItem("voxgate.token");
        const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
        return response.json();
    }""", path)


def chunks_played(page) -> int:
    return page.evaluate("window.voxgateStats.chunksPlayed")


# ---------------------------------------------------------------- tests


def test_voice_question_gets_a_spoken_streamed_reply(open_page, question_wav):
    page = open_page(microphone=True)
    mic = page.get_by_role("button", name="Talk")
    mic.click()  # a click starts recording; the next one sends
    expect(mic).to_have_attribute("aria-pressed", "true")
    page.wait_for_timeout(question_wav[1] * 1000 + 300)  # the whole question and its trailing silence
    mic.click()
    expect(mic).to_have_attribute("aria-pressed", "false")

    said = page.locator("#messages li.user")
    expect(said).to_contain_text(re.compile(r"capital|france", re.I), timeout=TURN_TIMEOUT)
    expect(page.get_by_role("status")).to_contain_text("Answered", timeout=TURN_TIMEOUT)
    reply = page.locator("#messages li.assistant").inner_text()
    stats = page.wait_for_function("() => window.voxgateStats.chunksPlayed >= 1 && window.voxgateStats",
                                   timeout=30_000).json_value()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "page.png", full_page=True)

    assert re.search(r"capital|france", stats["lastTranscript"], re.I), stats
    assert reply.removeprefix("voxgate:").strip(), "the reply is empty"
    assert stats["lastReply"] and stats["lastReply"] in reply
    assert "paris" in reply.lower(), reply
    replay = page.get_by_role("button", name="Replay")
    expect(replay).to_be_enabled()
    replay.click()
    page.wait_for_function("n => window.voxgateStats.chunksPlayed > n", arg=stats["chunksPlayed"], timeout=10_000)
    download = page.get_by_role("link", name="Download reply")
    expect(download).to_be_visible()
    with page.expect_download() as info:
        download.click()
    with wave.open(str(info.value.path())) as joined:  # the chunks joined into one valid WAV
        assert joined.getnframes() / joined.getframerate() > 0.5

    # The turn started a conversation: it is listed, reopens with its history, and deletes.
    conversation = page.locator("#conversations li")
    expect(conversation).to_have_count(1)
    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#messages li")).to_have_count(0)
    conversation.get_by_role("button").first.click()
    expect(page.locator("#messages li")).to_have_count(2)
    expect(page.locator("#messages li.assistant")).to_contain_text(stats["lastReply"])
    page.once("dialog", lambda dialog: dialog.accept())
    conversation.get_by_role("button", name=re.compile("^Delete")).click()
    expect(conversation).to_have_count(0)


def test_hands_free_answers_over_the_realtime_socket(open_page, web_server):
    page = open_page(microphone=True)
    socket = SocketLog(page)
    page.get_by_label("Hands-free").check()  # the fake microphone starts speaking now
    expect(page.locator("#messages li.user")).to_contain_text(re.compile(r"capital|france", re.I),
                                                               timeout=TURN_TIMEOUT)
    expect(page.get_by_role("status")).to_contain_text("Answered", timeout=TURN_TIMEOUT)
    reply = page.locator("#messages li.assistant").inner_text()
    assert "paris" in reply.lower(), reply
    stats = page.evaluate("window.voxgateStats")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "page-hands-free.png", full_page=True)

    # The turn went over the realtime socket: PCM16 frames of 20 ms at the context's rate.
    assert socket.urls == [web_server.url.replace("http", "ws") + "/v1/realtime"]
    start = socket.sent_json()[0]
    assert start["type"] == "session.start" and start["input_format"] == "pcm16", start
    assert start["reply_as"] == "voice" and start["voice_format"] == "wav", start
    frames = [payload for _, payload in socket.sent if isinstance(payload, bytes)]
    assert frames and {len(f) for f in frames} == {2 * round(start["sample_rate"] * 0.02)}, start
    kinds = [m["type"] for _, m in socket.received]
    for earlier, later in [("session.ready", "speech.started"), ("speech.started", "speech.stopped"),
                           ("speech.stopped", "transcript"), ("transcript", "audio"), ("audio", "done")]:
        assert kinds.index(earlier) < kinds.index(later), kinds
    # The microphone streamed on while the reply played: the server decides about barge-in.
    first_audio, done = socket.when("audio"), socket.when("done")
    assert any(first_audio < t < done for t, p in socket.sent if isinstance(p, bytes))

    assert re.search(r"capital|france", stats["lastTranscript"], re.I), stats
    assert stats["chunksPlayed"] >= 1 and stats["lastReply"] in reply, stats
    turn, summary = stats["lastTurn"], socket.messages("done")[0]
    assert turn["via"] == "realtime" and not turn["stopped"], turn
    assert 0 < turn["speechToAudioMs"] < TURN_TIMEOUT, turn
    assert turn["timings"] == summary["timings"] and turn["models"] == summary["models"], (turn, summary)
    figures = page.locator("#turn-stats")
    expect(figures).to_contain_text(re.compile(r"first audio \d+ ms after you stopped"))
    expect(figures).to_contain_text(summary["models"]["llm"])
    expect(page.get_by_role("button", name="Replay")).to_be_enabled()

    # A typed question goes over the same socket and continues the conversation.
    page.get_by_label("Or type").fill("And what is the capital of Italy?")
    page.get_by_role("button", name="Send").click()
    follow_up = socket.wait_for("done", 2)
    assert {"type": "input.text", "text": "And what is the capital of Italy?"} in socket.sent_json()
    assert follow_up["conversation_id"] == summary["conversation_id"]
    expect(page.locator("#messages li.assistant")).to_have_count(2)
    assert len(socket.urls) == 1
    stored = api_get(page, f"/v1/conversations/{summary['conversation_id']}")
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"] * 2, stored

    page.get_by_label("Hands-free").uncheck()
    expect(page.locator("#level")).to_have_js_property("value", 0)  # the microphone is released
    for _ in range(50):  # the page's events are delivered while it waits
        if socket.closed:
            break
        page.wait_for_timeout(100)
    assert socket.closed == 1, "hands-free off did not close the socket"


def test_stop_ends_a_hands_free_reply_at_once(open_page):
    page = open_page(microphone=True, says=STORY)
    socket = SocketLog(page)
    page.get_by_label("Hands-free").check()
    page.wait_for_function("() => window.voxgateStats.lastTurn?.via === 'realtime'"
                           " && window.voxgateStats.chunksPlayed >= 1", timeout=TURN_TIMEOUT)
    stop = page.get_by_role("button", name="Stop")
    stop.click()
    played = chunks_played(page)
    assistant = page.locator("#messages li.assistant")
    expect(assistant).to_contain_text("(stopped)")
    expect(page.get_by_role("status")).to_contain_text("Stopped")
    expect(stop).to_be_disabled()  # nothing plays any more
    assert {"type": "response.cancel"} in socket.sent_json()
    # The microphone was streaming while the reply played (and still is).
    first_audio = socket.when("audio")
    assert any(t > first_audio for t, p in socket.sent if isinstance(p, bytes))

    # The server keeps what was heard: the clauses that had begun to play.
    interrupted = socket.wait_for("interrupted", timeout=30)
    streamed = "".join(m["delta"] for m in socket.messages("text"))
    assert interrupted["reply"] and len(interrupted["reply"]) < len(streamed), (interrupted, streamed)
    stored = api_get(page, f"/v1/conversations/{interrupted['conversation_id']}")["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"], stored
    assert re.search(r"dragon", stored[0]["transcript"], re.I), stored
    assert stored[1]["text"] == interrupted["reply"] and stored[1]["timings"]["interrupted"] is True, stored
    expect(assistant).to_have_text(f"voxgate: {interrupted['reply']} (stopped)")
    turn = page.evaluate("window.voxgateStats.lastTurn")
    assert turn["stopped"] and turn["timings"] == interrupted["timings"], turn

    page.wait_for_timeout(3000)
    assert chunks_played(page) == played, "reply audio went on playing after Stop"
    assert not socket.messages("done"), "the stopped reply was finished anyway"


def test_escape_stops_a_streamed_reply(open_page):
    page = open_page(microphone=False)
    before = api_get(page, "/v1/conversations?limit=100")["data"]
    page.get_by_label("Or type").fill(STORY)
    page.get_by_role("button", name="Send").click()
    page.wait_for_function("() => window.voxgateStats.chunksPlayed >= 1", timeout=TURN_TIMEOUT)
    page.keyboard.press("Escape")
    played = chunks_played(page)
    expect(page.locator("#messages li.assistant")).to_contain_text("(stopped)")
    expect(page.get_by_role("status")).to_contain_text("Stopped")
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()  # ready for the next question
    turn = page.evaluate("window.voxgateStats.lastTurn")
    assert turn["via"] == "sse" and turn["stopped"] and turn["speechToAudioMs"] > 0, turn
    expect(page.locator("#turn-stats")).to_contain_text(re.compile(r"first audio \d+ ms after sending"))

    page.wait_for_timeout(3000)
    assert chunks_played(page) == played, "reply audio went on playing after Esc"
    # The server stopped with the connection and stored nothing of the turn.
    assert api_get(page, "/v1/conversations?limit=100")["data"] == before
    assert not page.get_by_role("alert").is_visible()


def test_denied_microphone_is_explained(open_page):
    page = open_page(microphone=False)  # the browser denies the prompt
    page.get_by_role("button", name="Talk").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Microphone access was denied")
    expect(page.get_by_role("button", name="Talk")).to_have_attribute("aria-pressed", "false")
    page.get_by_label("Hands-free").click()  # not check(): the page unchecks it again at once
    expect(page.get_by_label("Hands-free")).not_to_be_checked()
    expect(alert).to_contain_text("Microphone access was denied")


def test_server_errors_and_lost_connection_are_shown(open_page, tmp_path):
    page = open_page(microphone=False)
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these bytes are not audio")
    page.locator("#file").set_input_files(not_audio)
    expect(page.get_by_role("alert")).to_contain_text("could not read the upload as audio")

    page.context.set_offline(True)
    page.get_by_label("Or type").fill("Hello?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("reconnecting")
    page.context.set_offline(False)
    expect(page.get_by_role("alert")).to_be_hidden(timeout=15_000)
    expect(page.get_by_role("status")).to_contain_text("Reconnected")
