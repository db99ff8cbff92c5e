"""Streamed turns over SSE: text while generating, audio per clause before the reply ends."""

import base64
import json

import httpx
from conftest import silence_wav


def events(response: httpx.Response) -> list[tuple[str, dict]]:
    """Parse a text/event-stream body into (event, data) pairs."""
    parsed, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            parsed.append((name, json.loads(line.removeprefix("data: "))))
    return parsed


def stream_chat(client: httpx.Client, **kwargs) -> list[tuple[str, dict]]:
    with client.stream("POST", "/v1/chat", **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return events(response)


def test_voice_turn_streams_transcript_text_audio_then_done(client, france_wav):
    received = stream_chat(client, files={"audio": ("q.wav", france_wav)}, data={"reply_as": "voice", "stream": "true"})
    kinds = [kind for kind, _ in received]
    assert kinds[0] == "transcript" and kinds[-1] == "done"
    assert "france" in received[0][1]["text"].lower()
    done = received[-1][1]
    text = "".join(data["delta"] for kind, data in received if kind == "text")
    assert text.strip() == done["reply"] and "paris" in done["reply"].lower()
    audio = [data for kind, data in received if kind == "audio"]
    assert audio and [a["index"] for a in audio] == list(range(len(audio)))
    assert all(base64.b64decode(a["audio"])[:4] == b"RIFF" and a["sample_rate"] == 24000 for a in audio)
    assert " ".join(a["text"] for a in audio).split() == done["reply"].split()  # every word spoken once
    timings = done["timings"]
    assert 0 < timings["first_text"] <= timings["first_audio"] <= timings["total"]
    stored = client.get(f"/v1/conversations/{done['conversation_id']}").json()["messages"]
    assert stored[-1]["id"] == done["message_id"] and stored[-1]["text"] == done["reply"]


def test_first_audio_arrives_before_the_llm_finishes(client):
    received = stream_chat(
        client,
        json={"text": "Describe Paris in four sentences.", "reply_as": "voice", "stream": True, "max_tokens": 150},
    )
    kinds = [kind for kind, _ in received]
    first_audio = kinds.index("audio")
    assert "text" in kinds[first_audio + 1 :], "audio should start while text is still being generated"
    done = received[-1][1]["timings"]
    assert done["first_audio"] < done["llm"]


def test_text_only_stream_has_no_audio(client):
    received = stream_chat(client, json={"text": "What is the capital of France?", "stream": True})
    assert {kind for kind, _ in received} == {"text", "done"}


def test_errors_before_the_stream_are_plain_json(client):
    r = client.post("/v1/chat", files={"audio": ("s.wav", silence_wav(2.0))}, data={"stream": "true"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_speech"


def test_a_client_that_leaves_mid_stream_leaves_no_half_turn(client):
    before = len(client.get("/v1/conversations", params={"limit": 100}).json()["data"])
    with client.stream(
        "POST", "/v1/chat", json={"text": "Tell me a long story about a dragon.", "reply_as": "voice", "stream": True}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: text"):
                break  # hang up after the first words
    assert client.get("/readyz").status_code == 200
    ok = client.post("/v1/chat", json={"text": "What is the capital of France?"})
    assert ok.status_code == 200  # the model was freed for the next request
    after = client.get("/v1/conversations", params={"limit": 100}).json()["data"]
    assert len(after) == before + 1  # only the completed turn


def test_speech_streams_long_text_as_wav(client):
    text = "This is the first sentence. Here comes a second one. And a third, to make it long."
    with client.stream("POST", "/v1/audio/speech", json={"input": text, "response_format": "wav"}) as r:
        assert r.status_code == 200 and "content-length" not in r.headers
        body = b"".join(r.iter_bytes())
    assert body[:4] == b"RIFF"
    heard = client.post("/v1/audio/transcriptions", files={"file": ("s.wav", body)}).json()["text"].lower()
    assert "first sentence" in heard and "third" in heard
