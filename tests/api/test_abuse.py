"""Requests that used to get a 500, tried as a hostile or careless client would: each now
gets a 4xx JSON error that says what was wrong, and the server goes on serving."""

import json

import numpy as np
import pytest

from voxgate import audio

SURROGATE = '"\\ud800 hi"'  # a lone surrogate, as a JSON escape: valid JSON, not valid text


def raw(client, method: str, path: str, body: str):
    return client.request(method, path, content=body, headers={"content-type": "application/json"})


def refused(response, status: int, code: str, says: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and says in error["message"], error


@pytest.mark.parametrize(
    "path, body, says",
    [
        ("/v1/chat", f'{{"text": {SURROGATE}}}', "lone surrogate"),
        ("/v1/chat/completions", f'{{"messages": [{{"role": "user", "content": {SURROGATE}}}]}}', "lone surrogate"),
        ("/v1/audio/speech", f'{{"input": {SURROGATE}}}', "unicode string"),  # Pydantic's own check there
    ],
)
def test_a_lone_surrogate_is_refused_before_any_model_runs(client, path, body, says):
    refused(raw(client, "POST", path, body), 422, "invalid_schema", says)


def test_a_nul_byte_is_refused_on_every_database(client):
    refused(raw(client, "POST", "/v1/conversations", '{"title": "a\\u0000b"}'), 422, "invalid_schema", "NUL")
    refused(raw(client, "POST", "/v1/chat", '{"text": "hi\\u0000"}'), 422, "invalid_schema", "NUL")


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac"])
def test_speech_with_nothing_to_say_is_a_400(client, fmt):
    refused(
        client.post("/v1/audio/speech", json={"input": "\u0001", "response_format": fmt}),
        400,
        "empty_text",
        "nothing to speak",
    )


def test_deeply_nested_json_is_a_400(client):
    body = '{"text": ' + "[" * 1000 + "]" * 1000 + "}"
    refused(raw(client, "POST", "/v1/chat", body), 400, "invalid_json", "nested too deeply")
    assert client.get("/healthz").status_code == 200


def test_a_persona_prompt_cannot_be_patched_to_null(client):
    name = f"abuse-{np.random.randint(1_000_000)}"
    assert client.post("/v1/personas", json={"name": name, "system_prompt": "Be brief."}).status_code == 201
    refused(client.patch(f"/v1/personas/{name}", json={"system_prompt": None}), 422, "invalid_schema", "null")
    kept = client.patch(f"/v1/personas/{name}", json={"temperature": 0.5})
    assert kept.status_code == 200 and kept.json()["system_prompt"] == "Be brief."


def test_an_offset_past_any_page_is_a_422(client):
    refused(client.get("/v1/conversations", params={"offset": 2**63}), 422, "invalid_schema", "offset")


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac"])
def test_an_empty_reply_still_encodes(fmt):
    """A reply with nothing to say is spoken as a moment of silence, in every format."""
    data = audio.encode(np.zeros(0, np.int16), 24_000, fmt)
    assert audio.decode(data, max_seconds=5).samples.size < 16_000 * 0.1


def test_the_server_still_answers_after_all_of_it(client):
    assert json.loads(client.get("/readyz").text)["status"] == "ready"
