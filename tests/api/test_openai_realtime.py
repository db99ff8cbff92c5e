"""OpenAI's Realtime API on /v1/realtime: the official `openai` SDK, changed only in its base
URL and key, and a plain-websockets client written from the protocol (so no test leans on
one SDK's leniency). The shared server decodes greedily, so the content checks are stable."""

import asyncio
import base64
import json

import numpy as np
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import connect

from voxgate import audio

pytestmark = pytest.mark.parametrize("server", ["sqlite"], indirect=True)
TIMEOUT = 120  # s for one reply on 2 cores; a hang fails instead of waiting forever


def sdk(server, key: str | None = None) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{server.url}/v1", api_key=key or server.key)


def pcm24(wav: bytes, silence: float = 1.5) -> bytes:
    """A spoken question as the API's input: 24 kHz pcm16, with silence after it to end the turn."""
    samples = audio.resample(audio.decode(wav, max_seconds=60).samples, 16_000, 24_000)
    padded = np.concatenate([np.zeros(12_000), samples, np.zeros(int(24_000 * silence))])
    return (np.clip(padded, -1, 1) * 32767).astype("<i2").tobytes()


async def until(receive, kinds: set[str], seen: list) -> object:
    """Receive events into `seen` until one of `kinds` arrives; returns it."""

    async def loop():
        while True:
            event = await receive()
            seen.append(event)
            if event.type in kinds:
                return event

    return await asyncio.wait_for(loop(), TIMEOUT)


async def say(conn, text: str) -> None:
    """Add a typed user message to the conversation."""
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )


def kinds(events) -> list[str]:
    return [event.type for event in events]


def test_a_spoken_question_with_server_vad_is_heard_answered_in_audio_and_stored(server, piper_speak, client):
    question = pcm24(piper_speak("What is the capital of France?"))

    async def talk():
        async with sdk(server).realtime.connect(model="gpt-realtime") as conn:
            seen: list = []
            await until(conn.recv, {"session.created"}, seen)
            await conn.session.update(
                session={
                    "type": "realtime",
                    "output_modalities": ["audio"],
                    "instructions": "Answer in one short sentence.",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 600},
                        },
                        "output": {"voice": "alloy"},
                    },
                }
            )
            updated = await until(conn.recv, {"session.updated"}, seen)
            for start in range(0, len(question), 4800):  # 100 ms appends, sent at once: the server paces them
                await conn.input_audio_buffer.append(audio=base64.b64encode(question[start : start + 4800]).decode())
            await until(conn.recv, {"response.done"}, seen)
            return updated, seen

    updated, events = asyncio.run(talk())
    assert updated.session.audio.input.turn_detection.silence_duration_ms == 600
    order = kinds(events)
    for earlier, later in [
        ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"),
        ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed"),
        ("input_audio_buffer.committed", "response.created"),
        ("response.created", "response.output_item.added"),
        ("response.output_item.added", "response.output_audio.delta"),
        ("response.output_audio.delta", "response.output_audio.done"),
        ("response.output_audio_transcript.done", "response.done"),
    ]:
        assert order.index(earlier) < order.index(later), order
    heard = next(e for e in events if e.type == "conversation.item.input_audio_transcription.completed")
    assert "france" in heard.transcript.lower()
    said = next(e for e in events if e.type == "response.output_audio_transcript.done").transcript
    assert "paris" in said.lower()
    assert "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta").strip() == said
    pcm = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
    assert len(pcm) / 2 / 24_000 > 0.5  # seconds of 24 kHz speech
    done = events[-1].response
    assert done.status == "completed" and done.usage.output_tokens > 0
    stored = client.get(f"/v1/conversations/{done.conversation_id}").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"] and stored[1]["text"] == said


def test_a_text_item_and_response_create_answer_in_text_with_its_instructions(server):
    async def ask():
        async with sdk(server).realtime.connect(model="gpt-realtime") as conn:
            seen: list = []
            await until(conn.recv, {"session.created"}, seen)
            await say(conn, "What is the capital of Italy?")
            await until(conn.recv, {"conversation.item.done"}, seen)
            await conn.response.create(
                response={"output_modalities": ["text"], "instructions": "Answer with one word."}
            )
            await until(conn.recv, {"response.done"}, seen)
            return seen

    events = asyncio.run(ask())
    text = next(e for e in events if e.type == "response.output_text.done").text
    assert "rome" in text.lower()
    assert "response.output_audio.delta" not in kinds(events)
    assert events[-1].response.status == "completed" and events[-1].response.output[0].content[0].text == text


def test_cancel_stops_a_reply_and_truncate_cuts_the_stored_one_to_what_was_played(server, client):
    async def interrupt():
        async with sdk(server).realtime.connect(model="gpt-realtime") as conn:
            seen: list = []
            await until(conn.recv, {"session.created"}, seen)
            await say(conn, "Tell me a long story about a dragon.")
            await conn.response.create()
            first_audio = await until(conn.recv, {"response.output_audio.delta"}, seen)
            await conn.response.cancel()
            done = await until(conn.recv, {"response.done"}, seen)
            await conn.conversation.item.truncate(item_id=first_audio.item_id, content_index=0, audio_end_ms=50)
            truncated = await until(conn.recv, {"conversation.item.truncated", "error"}, seen)
            return first_audio, done, truncated, seen

    first_audio, done, truncated, events = asyncio.run(interrupt())
    assert done.response.status == "cancelled" and done.response.status_details.reason == "client_cancelled"
    assert truncated.type == "conversation.item.truncated" and truncated.audio_end_ms == 50
    streamed = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
    stored = client.get(f"/v1/conversations/{done.response.conversation_id}").json()["messages"][-1]["text"]
    assert stored and streamed.strip().startswith(stored) and len(stored) < len(streamed.strip())


def test_bad_events_get_an_error_and_the_session_goes_on(server):
    async def misbehave():
        async with sdk(server).realtime.connect(model="gpt-realtime") as conn:
            seen: list = []
            await until(conn.recv, {"session.created"}, seen)
            errors = []
            for event in (
                {"type": "dance", "event_id": "evt_1"},
                {"type": "input_audio_buffer.append", "audio": "not base64!"},
                {"type": "session.update", "session": {"type": "realtime", "tools": [{"type": "function"}]}},
                {"type": "response.cancel"},
                {"type": "response.create"},
            ):
                await conn.send(event)
                errors.append(await until(conn.recv, {"error"}, seen))
            await say(conn, "Say hi.")
            await conn.response.create(response={"output_modalities": ["text"]})
            return errors, await until(conn.recv, {"response.done"}, seen)

    errors, done = asyncio.run(misbehave())
    assert [e.error.code for e in errors] == [
        "unsupported_event",
        "invalid_value",
        "invalid_value",
        "response_cancel_not_active",
        "no_user_input",
    ]
    assert errors[0].error.event_id == "evt_1" and "session.update" in errors[0].error.message
    assert errors[2].error.param == "tools"
    assert done.response.status == "completed"


@pytest.mark.parametrize("key", ["vg_not-a-key", ""])
def test_a_missing_or_wrong_key_is_refused(server, key):
    async def attempt():
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with connect(
            f"{server.url.replace('http', 'ws')}/v1/realtime?model=gpt-realtime",
            additional_headers=headers,
            open_timeout=10,
        ) as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await asyncio.wait_for(ws.wait_closed(), 10)
            return error, ws.close_code

    error, code = asyncio.run(attempt())
    assert error["type"] == "error" and error["error"]["type"] == "authentication_error" and code == 1008


def test_a_client_written_from_the_protocol_commits_audio_itself(server, piper_speak):
    """No SDK: raw events, turn detection off, the buffer committed by hand."""
    question = pcm24(piper_speak("What is the capital of Spain?"), silence=0.3)

    async def talk():
        async with connect(
            f"{server.url.replace('http', 'ws')}/v1/realtime?model=gpt-realtime",
            additional_headers={"Authorization": f"Bearer {server.key}"},
            open_timeout=10,
        ) as ws:

            async def receive():
                return json.loads(await ws.recv(), object_hook=lambda d: type("Event", (), d))

            seen: list = []
            await until(receive, {"session.created"}, seen)
            await ws.send(
                json.dumps(
                    {
                        "type": "session.update",
                        "session": {
                            "type": "realtime",
                            "output_modalities": ["text"],
                            "audio": {"input": {"turn_detection": None}},
                        },
                    }
                )
            )
            await until(receive, {"session.updated"}, seen)
            for start in range(0, len(question), 9600):
                await ws.send(
                    json.dumps(
                        {
                            "type": "input_audio_buffer.append",
                            "audio": base64.b64encode(question[start : start + 9600]).decode(),
                        }
                    )
                )
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await ws.send(json.dumps({"type": "response.create"}))
            await until(receive, {"response.done"}, seen)
            return seen

    events = asyncio.run(talk())
    order = kinds(events)
    assert "input_audio_buffer.speech_started" not in order  # nobody but the client ends its turns
    assert order[order.index("input_audio_buffer.committed") :][:3] == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert len({e.event_id for e in events}) == len(events)
    response_id = next(e for e in events if e.type == "response.created").response.id
    assert all(e.response_id == response_id for e in events if e.type.startswith("response.output_text"))
    heard = next(e for e in events if e.type == "conversation.item.input_audio_transcription.completed")
    assert "spain" in heard.transcript.lower()
    assert "madrid" in next(e for e in events if e.type == "response.output_text.done").text.lower()
