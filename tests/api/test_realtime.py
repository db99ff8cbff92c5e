"""The realtime WebSocket: VAD turns from streamed PCM, text turns, auth (turn-taking and
barge-in: test_turn_taking.py)."""

import json
import time
from contextlib import contextmanager

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from voxgate import audio


def pcm16(wav: bytes, seconds_of_silence: float = 1.5) -> bytes:
    samples = (audio.decode(wav, max_seconds=60).samples * 32767).astype("<i2")
    silence = np.zeros(int(16000 * seconds_of_silence), "<i2")
    return np.concatenate([silence[:8000], samples, silence]).tobytes()


def stream_audio(ws, data: bytes, chunk_ms: int = 100) -> None:
    """Send like a microphone: small chunks in real time."""
    step = 16000 * 2 * chunk_ms // 1000
    for i in range(0, len(data), step):
        ws.send(data[i : i + step])
        time.sleep(chunk_ms / 1000)


def receive_until(ws, kinds: set[str], timeout: float = 60) -> list[dict]:
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
        messages.append(message)
        if message["type"] in kinds:
            return messages
    raise AssertionError(f"no {kinds} in {messages}")


@contextmanager
def open_session(server, **options):
    """A started session, authenticated the way browsers can: with a subprotocol."""
    with connect(
        f"{server.url.replace('http', 'ws')}/v1/realtime",
        subprotocols=["voxgate", f"bearer.{server.key}"],
        open_timeout=10,
    ) as ws:
        ws.send(json.dumps({"type": "session.start", **options}))
        assert json.loads(ws.recv(timeout=10))["type"] == "session.ready"
        yield ws


def test_spoken_question_is_detected_answered_and_stored(server, client, piper_speak):
    # A natural voice: espeak's robotic one was heard right or not depending on the silence
    # before it (10 / 20 questions heard exactly either way, different ones).
    with open_session(server, reply_as="voice") as ws:
        stream_audio(ws, pcm16(piper_speak("What is the capital of France?")))
        messages = receive_until(ws, {"done", "error"})
    kinds = [m["type"] for m in messages]
    assert kinds[:2] == ["speech.started", "speech.stopped"] and kinds[-1] == "done", kinds
    transcript = next(m for m in messages if m["type"] == "transcript")
    assert "france" in transcript["text"].lower()
    assert any(m["type"] == "audio" for m in messages)
    done = messages[-1]
    assert "paris" in done["reply"].lower()
    stored = client.get(f"/v1/conversations/{done['conversation_id']}").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] and stored[1]["text"] == done["reply"]


def test_pcm_at_48khz_is_resampled(server, piper_speak):
    wav48 = audio.encode(
        (
            audio.resample(
                audio.decode(piper_speak("What is the capital of France?"), max_seconds=60).samples, 16000, 48000
            )
            * 32767
        ).astype(np.int16),
        48000,
        "wav",
    )
    samples = np.frombuffer(wav48[44:], "<i2")
    data = np.concatenate([np.zeros(24000, "<i2"), samples, np.zeros(72000, "<i2")]).tobytes()
    with open_session(server, reply_as="text", sample_rate=48000) as ws:
        stream_audio(ws, data, chunk_ms=100 // 3)
        messages = receive_until(ws, {"done", "error"})
    assert "france" in next(m for m in messages if m["type"] == "transcript")["text"].lower()


def test_text_turns_continue_the_same_conversation(server):
    with open_session(server, reply_as="text") as ws:
        ws.send(json.dumps({"type": "input.text", "text": "My favourite colour is green."}))
        first = receive_until(ws, {"done"})[-1]
        ws.send(json.dumps({"type": "input.text", "text": "What is my favourite colour?"}))
        second = receive_until(ws, {"done"})[-1]
    assert second["conversation_id"] == first["conversation_id"]
    assert "green" in second["reply"].lower()


def test_two_sessions_at_once_each_get_their_own_answer(server):
    import concurrent.futures

    def ask(question: str) -> str:
        with open_session(server, reply_as="text") as ws:
            ws.send(json.dumps({"type": "input.text", "text": question}))
            return receive_until(ws, {"done"})[-1]["reply"].lower()

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        france, italy = pool.map(ask, ["What is the capital of France?", "What is the capital of Italy?"])
    assert "paris" in france and "rome" in italy


@pytest.mark.parametrize(
    "first",
    [
        {"type": "session.start"},
        {"type": "session.start", "token": "vg_not-a-key"},
    ],
)
def test_without_a_valid_token_the_socket_is_closed(server, first):
    with connect(f"{server.url.replace('http', 'ws')}/v1/realtime", open_timeout=10) as ws:
        ws.send(json.dumps(first))
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and error["error"]["type"] == "authentication_error"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1008


def test_token_in_the_first_message_works_and_bad_messages_are_errors(server):
    with connect(f"{server.url.replace('http', 'ws')}/v1/realtime", open_timeout=10) as ws:
        ws.send(json.dumps({"type": "session.start", "token": server.key, "reply_as": "text"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "session.ready"
        ws.send("not json")
        assert json.loads(ws.recv(timeout=10))["type"] == "error"
        ws.send(json.dumps({"type": "dance"}))
        assert "dance" in json.loads(ws.recv(timeout=10))["error"]["message"]


def test_a_binary_first_message_gets_an_error_before_the_close(server):
    with connect(f"{server.url.replace('http', 'ws')}/v1/realtime", open_timeout=10) as ws:
        ws.send(b"\x00\x01" * 160)
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and "session.start" in error["error"]["message"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)


def test_an_odd_length_frame_is_an_error_and_the_session_goes_on(server):
    with open_session(server, reply_as="text") as ws:
        ws.send(b"\x00\x01\x02")  # not whole 16-bit samples
        error = json.loads(ws.recv(timeout=10))
        assert error["type"] == "error" and "16-bit" in error["error"]["message"]
        ws.send(json.dumps({"type": "input.text", "text": "What is the capital of France?"}))
        done = receive_until(ws, {"done"})[-1]
        assert "paris" in done["reply"].lower()


def test_audio_sent_faster_than_real_time_is_paced_to_it(server, piper_speak):
    with open_session(server, reply_as="text") as ws:
        ws.send(np.zeros(16000 * 3, "<i2").tobytes())  # one frame of 3 s: no microphone sends that
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == "frame_too_long"

        data = np.zeros(16000 * 6, "<i2").tobytes() + pcm16(piper_speak("What is the capital of France?"))
        speech_ends = len(data) / 32000 - 1.5  # pcm16() appends 1.5 s of silence
        began = time.monotonic()
        for start in range(0, len(data), 3200):  # 100 ms frames, all at once
            ws.send(data[start : start + 3200])
        receive_until(ws, {"speech.stopped"})
        heard_after = time.monotonic() - began
        done = receive_until(ws, {"done", "error"})[-1]
    # The server read the audio no faster than real time, less the allowed 2 s burst.
    assert heard_after >= speech_ends - 2.0 - 0.2, heard_after
    assert "paris" in done["reply"].lower()
