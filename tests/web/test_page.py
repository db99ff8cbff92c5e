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
BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


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
        response = httpx.post(
            f"{web_server.url}/v1/audio/speech",
            headers=web_server.headers,
            timeout=120,
            json={"input": text, "response_format": "wav"},
        )
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
                    executable_path=str(CHROMIUM),
                    headless=True,
                    args=[
                        *BASE_ARGS,
                        "--use-fake-device-for-media-stream",
                        "--deny-permission-prompts",
                        f"--use-file-for-fake-audio-capture={path}%noloop",
                    ],
                )
            return browsers[text]

        yield launch
        for browser in browsers.values():
            browser.close()


VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}


@pytest.fixture
def open_page(chromium, web_server, web_user) -> Iterator:
    """open_page(microphone=..., says=..., viewport=..., quiet=True) -> a signed-in page in a
    fresh browser context, whose microphone says `says`. Uncaught script errors fail the test;
    on a `quiet` page (a normal session) so do console errors and failed requests."""
    contexts, errors, noise = [], [], []

    def open_(*, microphone: bool, says: str = QUESTION, viewport: str = "desktop", quiet: bool = True):
        context = chromium(says).new_context(**VIEWPORTS[viewport])
        contexts.append(context)
        if microphone:
            context.grant_permissions(["microphone"], origin=web_server.url)
        if quiet:
            context.on("console", lambda msg: msg.type == "error" and noise.append(f"console: {msg.text}"))
            context.on("requestfailed", lambda r: noise.append(f"failed: {r.method} {r.url} {r.failure}"))
            context.on("response", lambda r: r.status >= 400 and noise.append(f"{r.status}: {r.url}"))
        context.on("page", lambda page: page.on("pageerror", lambda exc: errors.append(str(exc))))
        page = context.new_page()
        response = page.goto(web_server.url)
        assert response.status == 200, "GET / failed: include web.router in create_app (src/voxgate/api/app.py)"
        sign_in(page, *web_user)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"script errors on the page: {errors}"
    assert not noise, f"a normal session logged errors or failed requests: {noise}"


def sign_in(page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Talk")).to_be_focused()


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


def api_get(page, path: str, method: str = "GET", body: dict | None = None) -> dict:
    """Call the API as the signed-in user, with the page's own token."""
    return page.evaluate(
        """async ([path, method, body]) => {
        const token = JSON.parse(localStorage.getItem("voxgate.session")).token;
        const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
        const response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
        return response.json();
    }""",
        [path, method, body],
    )


def chunks_played(page) -> int:
    return page.evaluate("window.voxgateStats.chunksPlayed")


# ---------------------------------------------------------------- tests


def ask_by_voice(page, question_wav) -> None:
    """Click to start recording, wait out the question, click to send."""
    mic = page.get_by_role("button", name="Talk")
    mic.click()  # a click starts recording; the next one sends
    expect(mic).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#talk")).to_have_attribute("data-state", "listening")
    page.wait_for_timeout(question_wav[1] * 1000 + 300)  # the whole question and its trailing silence
    mic.click()
    expect(mic).to_have_attribute("aria-pressed", "false")


def ask_in_writing(page, text: str) -> dict:
    """Type a question, send it, wait for the whole turn; returns the turn's figures."""
    answered = page.evaluate("window.voxgateStats.lastTurn")
    page.get_by_label("Type a message").fill(text)
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(
        "old => { const t = window.voxgateStats.lastTurn; return t && t !== old && t.models }",
        arg=answered,
        timeout=TURN_TIMEOUT,
    )
    expect(page.get_by_role("status")).to_contain_text("Answered", timeout=TURN_TIMEOUT)
    return page.evaluate("window.voxgateStats.lastTurn")


def conversation_list(page, viewport: str):
    """The conversation list, opened first where it is a drawer (phones)."""
    if viewport == "phone":
        page.get_by_role("button", name="Conversations").click()
    listed = page.locator("#conversations li")
    expect(page.locator("#sidebar")).to_be_visible()
    return listed


def open_settings(page):
    toggle = page.get_by_role("button", name="Settings")
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_voice_question_gets_a_spoken_streamed_reply(open_page, question_wav, viewport):
    page = open_page(microphone=True, viewport=viewport)
    mic = page.get_by_role("button", name="Talk")
    # The first screen holds the chat and the talk control; on a phone the list is a drawer.
    expect(mic).to_be_in_viewport()
    expect(page.get_by_label("Type a message")).to_be_in_viewport()
    if viewport == "phone":
        expect(page.locator("#sidebar")).to_be_hidden()
        expect(page.locator("#talk-state")).to_contain_text("Tap or hold")  # no Space key on a phone
    else:
        expect(page.locator("#sidebar")).to_be_visible()
        expect(page.locator("#talk-state")).to_contain_text("hold Space")
    assert page.evaluate("window.scrollY") == 0, "the page scrolled the header away"

    ask_by_voice(page, question_wav)
    said = page.locator("#messages li.user")
    expect(said).to_contain_text(re.compile(r"capital|france", re.I), timeout=TURN_TIMEOUT)
    expect(page.get_by_role("status")).to_contain_text("Answered", timeout=TURN_TIMEOUT)
    reply = page.locator("#messages li.assistant")
    stats = page.wait_for_function(
        "() => window.voxgateStats.chunksPlayed >= 1 && window.voxgateStats", timeout=30_000
    ).json_value()
    assert re.search(r"capital|france", stats["lastTranscript"], re.I), stats
    assert "paris" in stats["lastReply"].lower(), stats
    expect(reply.locator(".body")).to_have_text(stats["lastReply"])
    # Under the reply: the models that answered, the time to the first audio, the stage times.
    turn = stats["lastTurn"]
    meta = reply.locator(".meta")
    expect(meta).to_contain_text(turn["models"]["llm"])
    expect(meta).to_contain_text(turn["models"]["stt"])
    expect(meta).to_contain_text(re.compile(r"first audio \d+ ms after you stopped"))
    expect(meta).to_contain_text(re.compile(r"STT \d+ ms · LLM \d+ ms"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"page-{viewport}.png")

    reply.get_by_role("button", name="Replay this reply").click()
    page.wait_for_function("n => window.voxgateStats.chunksPlayed > n", arg=stats["chunksPlayed"], timeout=10_000)
    expect(page.locator("#talk")).to_have_attribute("data-state", "speaking")
    with page.expect_download() as info:
        reply.get_by_role("button", name="Download this reply").click()
    with wave.open(str(info.value.path())) as joined:  # the chunks joined into one valid WAV
        assert joined.getnframes() / joined.getframerate() > 0.5

    # The turn started a conversation: it is listed with its title and date, reopens with
    # its history, and deletes.
    conversation = conversation_list(page, viewport)
    expect(conversation).to_have_count(1)
    expect(conversation.locator(".title")).to_have_text(re.compile(r"capital|france", re.I))
    expect(conversation.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\d"))
    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("#messages li.user, #messages li.assistant")).to_have_count(0)
    conversation_list(page, viewport).locator(".open").click()
    expect(page.locator("#messages li.user, #messages li.assistant")).to_have_count(2)
    expect(reply.locator(".body")).to_have_text(stats["lastReply"])
    conversation = conversation_list(page, viewport)
    page.once("dialog", lambda dialog: dialog.accept())
    conversation.get_by_role("button", name=re.compile("^Delete")).click()
    expect(conversation).to_have_count(0)


def test_replay_plays_the_opened_conversations_reply(open_page):
    page = open_page(microphone=False)
    france = ask_in_writing(page, "What is the capital of France?")
    page.get_by_role("button", name="New conversation").click()
    ask_in_writing(page, "What is the capital of Italy?")
    listed = api_get(page, "/v1/conversations?limit=100")["data"]
    first = next(c for c in listed if "France" in c["title"])
    stored = api_get(page, f"/v1/conversations/{first['id']}")["messages"]
    assert france["models"] == stored[1]["models"]

    page.locator("#conversations li", has_text="France").locator(".open").click()
    expect(page.get_by_role("heading", name=first["title"])).to_be_visible()
    reply = page.locator("#messages li.assistant")
    expect(reply).to_have_count(1)
    played = chunks_played(page)
    # The test server stores no audio: the reply is spoken again, its own text in its own voice.
    with page.expect_request("**/v1/audio/speech") as spoken_again:
        reply.get_by_role("button", name="Replay this reply").click()
    assert spoken_again.value.post_data_json == {
        "input": stored[1]["text"],
        "voice": stored[1]["voice"],
        "response_format": "wav",
    }
    page.wait_for_function("n => window.voxgateStats.chunksPlayed > n", arg=played, timeout=10_000)
    replayed = page.evaluate("window.voxgateStats.lastReplay")
    assert replayed["messageId"] == stored[1]["id"] and replayed["conversationId"] == first["id"], replayed
    with page.expect_download() as info:
        reply.get_by_role("button", name="Download this reply").click()
    with wave.open(str(info.value.path())) as saved:
        assert saved.getnframes() / saved.getframerate() > 0.5

    # Rename it, and find it again by a word of the new title.
    page.once("dialog", lambda dialog: dialog.accept("Geography of France"))
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", name="Geography of France")).to_be_visible()
    page.get_by_label("Search conversations").fill("geography")
    expect(page.locator("#conversations li")).to_have_count(1)
    expect(page.locator("#conversations li .title")).to_have_text("Geography of France")
    page.get_by_label("Search conversations").fill("no such title")
    expect(page.locator("#conversations li")).to_have_count(0)
    expect(page.locator("#no-conversations")).to_be_visible()


def test_persona_belongs_to_the_conversation(open_page):
    page = open_page(microphone=False)
    default = api_get(page, "/v1/me")["default_persona"]
    ask_in_writing(page, "Hello!")
    conversation = api_get(page, "/v1/conversations?limit=1")["data"][0]
    open_settings(page)
    other = next(p["name"] for p in api_get(page, "/v1/personas") if p["name"] != default)
    page.get_by_label("Persona", exact=True).select_option(other)
    expect(page.get_by_role("status")).to_contain_text(f"now talks with the {other} persona")
    assert api_get(page, f"/v1/conversations/{conversation['id']}")["persona"] == other
    assert api_get(page, "/v1/me")["default_persona"] == default, "the account's default changed"

    try:
        page.get_by_role("button", name="Make default").click()
        expect(page.get_by_role("button", name="Make default")).to_be_disabled()
        assert api_get(page, "/v1/me")["default_persona"] == other

        # A persona of one's own: created and edited in the dialog, then chosen for the chat.
        page.get_by_role("button", name="New persona…").click()
        page.get_by_label("Persona name").fill("pirate")
        page.get_by_label("Instructions (system prompt)").fill("You are a pirate. Answer in one short sentence.")
        page.get_by_label("Temperature (0–2; empty: the server's)").fill("0")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("Created the pirate persona")
        expect(page.get_by_label("Persona", exact=True)).to_have_value("pirate")
        assert api_get(page, f"/v1/conversations/{conversation['id']}")["persona"] == "pirate"
        page.get_by_role("button", name="Edit persona…").click()
        expect(page.get_by_label("Persona name")).to_be_disabled()
        page.get_by_label("Instructions (system prompt)").fill("You are a polite pirate.")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("Saved the pirate persona")
        saved = api_get(page, "/v1/personas/pirate")
        assert saved["system_prompt"] == "You are a polite pirate." and saved["temperature"] == 0, saved
        page.get_by_label("Persona", exact=True).select_option(default)
        expect(page.get_by_role("button", name="Edit persona…")).to_be_disabled()  # built-in: read-only
    finally:
        api_get(page, "/v1/me/settings", "PUT", {"default_persona": default})


def test_picked_voice_and_model_are_used(open_page):
    page = open_page(microphone=False)
    open_settings(page)
    voices = api_get(page, "/v1/voices")["data"]
    joe = next(v for v in voices if "joe" in v["id"])
    assert not joe["default"]
    picker = page.get_by_label("Voice", exact=True)
    # Grouped by language; each voice says its gender and engine.
    expect(picker.locator("optgroup", has=page.locator(f"option[value='{joe['id']}']"))).to_have_attribute(
        "label", re.compile(joe["language"])
    )
    expect(picker.locator(f"option[value='{joe['id']}']")).to_contain_text(joe["engine"])
    picker.select_option(joe["id"])
    llm = api_get(page, "/v1/models/defaults")["llm"]
    expect(page.get_by_label("Model", exact=True).locator("option").first).to_contain_text(llm)

    turn = ask_in_writing(page, "Say hello.")
    assert turn["voice"] == joe["id"] and turn["models"]["llm"] == llm, turn
    conversation = api_get(page, "/v1/conversations?limit=1")["data"][0]
    assert api_get(page, f"/v1/conversations/{conversation['id']}")["messages"][1]["voice"] == joe["id"]
    page.reload()  # the choice is this browser's, kept
    open_settings(page)
    expect(page.get_by_label("Voice", exact=True)).to_have_value(joe["id"])


# Every visible text against the background it is drawn on (the first opaque one up the
# tree), as WCAG 2 computes contrast. Inactive (disabled) controls are exempt, as in WCAG.
LOW_CONTRAST = """() => {
    const rgb = (css) => css.match(/[\\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => [r, g, b].map((c) => c / 255)
        .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
        .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const color = getComputedStyle(el).backgroundColor;
            if (rgb(color)[3] !== 0) return rgb(color);
        }
        return [255, 255, 255];
    };
    const failures = [];
    for (const el of document.querySelectorAll("body *")) {
        const style = getComputedStyle(el);
        const ownText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
        if (!ownText || !el.checkVisibility({ visibilityProperty: true }) || el.closest(":disabled")) continue;
        const [fg, bg] = [luminance(rgb(style.color)), luminance(background(el))];
        const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
        const size = parseFloat(style.fontSize);
        const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
        if (ratio < (large ? 3 : 4.5)) failures.push(`${el.id || el.className || el.tagName}: ${ratio.toFixed(2)}`);
    }
    return failures;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_passes_wcag_aa(open_page, scheme):
    page = open_page(microphone=False)
    page.emulate_media(color_scheme=scheme)
    ask_in_writing(page, "Hello!")  # messages, their figures and buttons on screen
    open_settings(page)
    assert page.evaluate(LOW_CONTRAST) == []
    page.get_by_role("button", name="Sign out").click()  # the sign-in form, and its alert-free state
    assert page.evaluate(LOW_CONTRAST) == []


def test_stays_signed_in_across_tabs_and_reloads(open_page):
    page = open_page(microphone=False)
    page.reload()
    expect(page.get_by_role("button", name="Talk")).to_be_visible()
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.get_by_role("button", name="Talk")).to_be_visible()
    expect(other.get_by_label("Username")).to_be_hidden()
    other.get_by_role("button", name=re.compile("^Sign out")).click()
    expect(other.get_by_label("Username")).to_be_visible()
    expect(page.get_by_label("Username")).to_be_visible()  # signed out everywhere
    expect(page.get_by_role("alert")).to_contain_text("signed out in another tab")


def test_hands_free_answers_over_the_realtime_socket(open_page, web_server):
    page = open_page(microphone=True)
    socket = SocketLog(page)
    page.get_by_label("Hands-free").check()  # the fake microphone starts speaking now
    expect(page.locator("#messages li.user")).to_contain_text(re.compile(r"capital|france", re.I), timeout=TURN_TIMEOUT)
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
    for earlier, later in [
        ("session.ready", "speech.started"),
        ("speech.started", "speech.stopped"),
        ("speech.stopped", "transcript"),
        ("transcript", "audio"),
        ("audio", "done"),
    ]:
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
    figures = page.locator("#messages li.assistant .meta")
    expect(figures).to_contain_text(re.compile(r"first audio \d+ ms after you stopped"))
    expect(figures).to_contain_text(summary["models"]["llm"])
    expect(page.locator("#messages li.assistant").get_by_role("button", name="Replay this reply")).to_be_enabled()

    # A typed question goes over the same socket and continues the conversation.
    page.get_by_label("Type a message").fill("And what is the capital of Italy?")
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
    page.wait_for_function(
        "() => window.voxgateStats.lastTurn?.via === 'realtime' && window.voxgateStats.chunksPlayed >= 1",
        timeout=TURN_TIMEOUT,
    )
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
    expect(assistant.locator(".body")).to_have_text(interrupted["reply"])
    expect(assistant.locator(".note")).to_have_text(" (stopped)")
    turn = page.evaluate("window.voxgateStats.lastTurn")
    assert turn["stopped"] and turn["timings"] == interrupted["timings"], turn

    page.wait_for_timeout(3000)
    assert chunks_played(page) == played, "reply audio went on playing after Stop"
    assert not socket.messages("done"), "the stopped reply was finished anyway"


def test_escape_stops_a_streamed_reply(open_page):
    page = open_page(microphone=False, quiet=False)  # the stopped stream is a failed request
    before = api_get(page, "/v1/conversations?limit=100")["data"]
    page.get_by_label("Type a message").fill(STORY)
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
    meta = page.locator("#messages li.assistant .meta")
    expect(meta).to_contain_text(re.compile(r"first audio \d+ ms after sending"))

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
    page = open_page(microphone=False, quiet=False)
    alert = page.get_by_role("alert")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these bytes are not audio")
    page.locator("#file").set_input_files(not_audio)
    expect(alert).to_contain_text("Could not read the upload as audio")
    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(bytes(2 * 16_000))
    page.locator("#file").set_input_files(silence)
    expect(alert).to_have_text("I did not hear any words. Please try again, a little closer to the microphone.")
    expect(page.locator("#messages li.user, #messages li.assistant")).to_have_count(0)  # nothing was said

    page.context.set_offline(True)
    page.get_by_label("Type a message").fill("Hello?")
    page.get_by_role("button", name="Send").click()
    expect(alert).to_contain_text("reconnecting")
    # The question was not sent: it is not left in the chat, and is back in the box.
    expect(page.locator("#messages li.user")).to_have_count(0)
    expect(page.get_by_label("Type a message")).to_have_value("Hello?")
    page.context.set_offline(False)
    expect(page.get_by_role("alert")).to_be_hidden(timeout=15_000)
    expect(page.get_by_role("status")).to_contain_text("Reconnected")
