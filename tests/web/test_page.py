"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real
server with the default models. Chromium's fake microphone speaks an espeak-ng question.

No browser is downloaded: Playwright only drives /usr/bin/chromium (`make test` installs it).
"""

import re
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import add_user, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
QUESTION = "What is the capital of France?"
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
def question_wav(tmp_path_factory) -> tuple[Path, float]:
    """The question spoken by espeak-ng as 48 kHz 16-bit mono PCM (what Chromium's fake
    capture device reads best) with silence around it; returns (path, seconds)."""
    if not shutil.which("espeak-ng"):
        pytest.fail("espeak-ng is missing: `make test` installs Debian's espeak-ng package")
    folder = tmp_path_factory.mktemp("question")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(folder / "espeak.wav"), QUESTION], check=True)
    with wave.open(str(folder / "espeak.wav")) as src:
        rate = src.getframerate()
        speech = np.frombuffer(src.readframes(src.getnframes()), dtype=np.int16).astype(np.float32)
    out_rate = 48_000
    resampled = np.interp(np.arange(0, len(speech), rate / out_rate), np.arange(len(speech)), speech)
    samples = np.concatenate([np.zeros(int(0.7 * out_rate)), resampled, np.zeros(int(1.0 * out_rate))])
    path = folder / "question.wav"
    with wave.open(str(path), "wb") as dst:
        dst.setnchannels(1)
        dst.setsampwidth(2)
        dst.setframerate(out_rate)
        dst.writeframes(samples.astype(np.int16).tobytes())
    return path, len(samples) / out_rate


@pytest.fixture(scope="module")
def browser(question_wav):
    """Chromium whose fake microphone says the question once (%noloop) from the moment a
    page opens it. Permission prompts are denied; a context grants the microphone itself."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `make test` installs the test extra")
    path, _ = question_wav
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=[*BASE_ARGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts",
                  f"--use-file-for-fake-audio-capture={path}%noloop"],
        )
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser, web_server, web_user) -> Iterator:
    """open_page(microphone=...) -> a signed-in page in a fresh browser context. Uncaught
    script errors fail the test."""
    contexts, errors = [], []

    def open_(*, microphone: bool):
        context = browser.new_context()
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


def test_hands_free_sends_when_the_speaker_pauses(open_page):
    page = open_page(microphone=True)
    page.get_by_label("Hands-free").check()  # the fake microphone starts speaking now
    expect(page.locator("#messages li.user")).to_contain_text(re.compile(r"capital|france", re.I),
                                                               timeout=TURN_TIMEOUT)
    expect(page.get_by_role("status")).to_contain_text("Answered", timeout=TURN_TIMEOUT)
    expect(page.locator("#messages li.assistant")).not_to_be_empty()
    page.get_by_label("Hands-free").uncheck()
    expect(page.locator("#level")).to_have_js_property("value", 0)  # the microphone is released


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
