"""Conversations remember turns, give the LLM their context, and stay private."""

from urllib.parse import unquote

import httpx
import pytest
from conftest import add_user, words


def test_two_turn_voice_conversation_remembers_the_name(client, piper_speak):
    first = client.post(
        "/v1/chat",
        files={"audio": ("1.wav", piper_speak("My name is Ada."))},
        data={"reply_as": "voice", "temperature": "0"},
    )  # greedy: no sampled misspelling
    assert first.status_code == 200, first.text
    conversation = first.headers["x-voxgate-conversation"]
    second = client.post(
        "/v1/chat",
        files={"audio": ("2.wav", piper_speak("What is my name?"))},
        data={"reply_as": "voice", "conversation_id": conversation, "temperature": "0"},
    )
    assert second.status_code == 200, second.text
    assert second.headers["x-voxgate-conversation"] == conversation
    assert "ada" in words(unquote(second.headers["x-voxgate-reply"]))

    stored = client.get(f"/v1/conversations/{conversation}").json()
    messages = stored["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert "ada" in words(messages[0]["transcript"])
    assert messages[1]["models"]["llm"] == "qwen2.5-coder-0.5b-instruct"
    assert messages[1]["timings"]["stt"] > 0
    assert messages[1]["voice"] == first.headers["x-voxgate-voice"] and messages[0]["voice"] is None
    # Audio storage is on for the test servers: both sides of a turn can be fetched.
    for message in messages[:2]:
        assert message["has_audio"]
        audio = client.get(f"/v1/conversations/{conversation}/messages/{message['id']}/audio")
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"


def test_without_context_the_name_is_unknown(client):
    r = client.post("/v1/chat", json={"text": "What is my name?", "max_tokens": 40})
    assert "ada" not in words(r.json()["reply"])  # a word: "Canada" is no memory of Ada


def test_crud_and_paging(client):
    created = [client.post("/v1/conversations", json={"title": f"topic {i}"}).json() for i in range(3)]
    assert all(c["id"] for c in created)
    page = client.get("/v1/conversations", params={"limit": 2}).json()
    assert [c["title"] for c in page["data"]] == ["topic 2", "topic 1"]  # newest first
    rest = client.get("/v1/conversations", params={"limit": 2, "offset": 2}).json()["data"]
    assert rest[0]["title"] == "topic 0"
    client.post("/v1/conversations", json={"title": "Topic_100% done"})
    found = client.get("/v1/conversations", params={"q": "TOPIC 1"}).json()["data"]
    assert [c["title"] for c in found] == ["topic 1"]
    found = client.get("/v1/conversations", params={"q": "_100%"}).json()["data"]  # LIKE wildcards are literal
    assert [c["title"] for c in found] == ["Topic_100% done"]

    cid = created[0]["id"]
    patched = client.patch(f"/v1/conversations/{cid}", json={"title": "renamed", "persona": "concise"})
    assert patched.status_code == 200 and patched.json()["persona"] == "concise"
    r = client.post("/v1/chat", json={"text": "What is the capital of France?", "conversation_id": cid})
    assert r.json()["persona"] == "concise"  # the conversation's persona applies
    assert client.patch(f"/v1/conversations/{cid}", json={"persona": "no-such-persona"}).status_code == 404

    assert client.delete(f"/v1/conversations/{cid}").status_code == 204
    assert client.get(f"/v1/conversations/{cid}").status_code == 404
    assert client.post("/v1/chat", json={"text": "hi", "conversation_id": cid}).status_code == 404


def test_audio_is_a_404_when_none_was_stored(client):
    r = client.post("/v1/chat", json={"text": "Say hi."}).json()
    audio = client.get(f"/v1/conversations/{r['conversation_id']}/messages/{r['message_id']}/audio")
    assert audio.status_code == 404


def test_a_user_sees_only_their_own(server, client):
    own = client.post("/v1/chat", json={"text": "Remember the number seven."}).json()
    _, key = add_user(server.env, f"mallory-{own['conversation_id'][:8]}")
    mallory = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    cid, mid = own["conversation_id"], own["message_id"]
    # Another user's ids answer exactly like ids that never existed.
    for path in (f"/v1/conversations/{cid}", f"/v1/conversations/{'0' * 32}"):
        r = mallory.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert mallory.get(f"/v1/conversations/{cid}/messages/{mid}/audio").status_code == 404
    assert mallory.patch(f"/v1/conversations/{cid}", json={"title": "mine now"}).status_code == 404
    assert mallory.delete(f"/v1/conversations/{cid}").status_code == 404
    assert mallory.post("/v1/chat", json={"text": "What number?", "conversation_id": cid}).status_code == 404
    assert mallory.get("/v1/conversations").json()["data"] == []
    assert client.get(f"/v1/conversations/{cid}").status_code == 200


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": 1000}, {"offset": -1}])
def test_bad_paging_is_422(client, bad):
    assert client.get("/v1/conversations", params=bad).status_code == 422
