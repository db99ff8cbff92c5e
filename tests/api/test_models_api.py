"""Model management over HTTP: list, pull (NDJSON progress), import, create, load/unload,
idle unload, runtime defaults, delete; admin-only changes; voices."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, add_user, start_server, stop_server

from voxgate.catalog import CATALOG
from voxgate.config import Settings

SMALL_LLM = "smollm2-135m-instruct"  # 98 MB: the catalog model these tests pull and delete
DEFAULT_LLM = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture(scope="module")
def models_server(tmp_path_factory) -> Iterator[Server]:
    """A server with its own model cache (the prepared defaults linked in), so pulls and
    deletes here touch nothing else; idle models unload after 5 s."""
    workdir = tmp_path_factory.mktemp("models")
    cache = workdir / "cache"
    (cache / "models").mkdir(parents=True)
    settings = Settings()
    for name in (settings.stt.model, settings.llm.model, settings.tts.model, settings.turn.model):
        (cache / "models" / name).symlink_to(settings.models_dir / name)
    server = start_server(workdir, VOXGATE_CACHE_DIR=str(cache), VOXGATE_IDLE_UNLOAD_SECONDS="5")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def admin(models_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=models_server.url, headers=models_server.headers, timeout=600) as c:
        yield c


@pytest.fixture(scope="module")
def user(models_server) -> Iterator[httpx.Client]:
    _, key = add_user(models_server.env, "plain-user")
    with httpx.Client(base_url=models_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as c:
        yield c


def model(client: httpx.Client, name: str) -> dict:
    response = client.get(f"/v1/models/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_state(client: httpx.Client, name: str, state: str, seconds: float = 20) -> dict:
    deadline = time.monotonic() + seconds
    while (found := model(client, name))["state"] != state and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def test_list_shows_role_source_size_license_state_and_defaults(user):
    listed = {m["id"]: m for m in user.get("/v1/models").json()["data"]}
    qwen = listed[DEFAULT_LLM]
    assert qwen["object"] == "model" and qwen["role"] == "llm" and qwen["source"] == "catalog"
    assert qwen["state"] == "loaded" and qwen["default"] is True
    assert qwen["size_bytes"] == 491_400_064 and qwen["license"] == "Apache-2.0"
    assert listed["whisper-tiny.en"]["default"] and listed["hibari-en_US-heart"]["default"]
    assert listed["qwen2.5-coder-1.5b-instruct"]["state"] == "available"
    assert not listed["qwen2.5-coder-1.5b-instruct"]["default"]
    assert user.get("/v1/models/defaults").json() == {
        "stt": "whisper-tiny.en",
        "llm": DEFAULT_LLM,
        "tts": "hibari-en_US-heart",
        "turn": "smart-turn-v3.2",
    }


def test_changes_need_an_admin(user):
    for method, path, body in (
        ("POST", "/v1/models/pull", {"name": SMALL_LLM}),
        ("POST", "/v1/models/import", {"name": "x", "role": "llm", "path": "/tmp/x.gguf"}),
        ("POST", "/v1/models/create", {"name": "x", "base": DEFAULT_LLM}),
        ("DELETE", f"/v1/models/{DEFAULT_LLM}", None),
        ("POST", f"/v1/models/{DEFAULT_LLM}/unload", None),
        ("PUT", "/v1/models/defaults", {"llm": DEFAULT_LLM}),
    ):
        response = user.request(method, path, json=body)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["type"] == "permission_error"


def test_unknown_models_are_404(admin):
    assert admin.get("/v1/models/no-such-model").status_code == 404
    assert admin.post("/v1/models/pull", json={"name": "no-such-model"}).json()["error"]["code"] == "model_not_found"
    response = admin.post("/v1/chat", json={"text": "hi", "model": "no-such-model"})
    assert response.status_code == 404 and "no-such-model" in response.json()["error"]["message"]


def test_pull_streams_progress_then_the_model_answers_and_unloads_when_idle(admin):
    with admin.stream("POST", "/v1/models/pull", json={"name": SMALL_LLM}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events[-1] == {"status": "success", "name": SMALL_LLM}
    progress = [e["completed"] for e in events if "completed" in e]
    assert progress == sorted(progress) and progress[-1] == events[-2]["total"] == 98_362_432
    assert model(admin, SMALL_LLM)["state"] == "ready"

    # Named in a request, it loads on demand; the default stays as it was.
    reply = admin.post("/v1/chat", json={"text": "Say hello.", "model": SMALL_LLM, "max_tokens": 20})
    assert reply.status_code == 200, reply.text
    assert reply.json()["models"]["llm"] == SMALL_LLM and reply.json()["reply"]
    assert model(admin, SMALL_LLM)["state"] == "loaded"
    assert not model(admin, SMALL_LLM)["default"]
    assert wait_for_state(admin, SMALL_LLM, "ready")["state"] == "ready"  # idle unload after 5 s
    assert model(admin, DEFAULT_LLM)["state"] == "loaded"  # defaults stay loaded


def test_load_unload_and_switch_the_default_at_run_time(admin):
    assert admin.post(f"/v1/models/{SMALL_LLM}/load").json()["state"] == "loaded"
    switched = admin.put("/v1/models/defaults", json={"llm": SMALL_LLM})
    assert switched.status_code == 200 and switched.json()["llm"] == SMALL_LLM
    try:
        reply = admin.post("/v1/chat", json={"text": "Say hello.", "max_tokens": 20}).json()
        assert reply["models"]["llm"] == SMALL_LLM
        assert admin.get("/readyz").json()["models"]["llm"] == SMALL_LLM
        conflict = admin.delete(f"/v1/models/{SMALL_LLM}")
        assert conflict.status_code == 409 and "default" in conflict.json()["error"]["message"]
    finally:
        assert admin.put("/v1/models/defaults", json={"llm": DEFAULT_LLM}).status_code == 200
    # An explicit load restarts the 5 s idle clock, so the unload below is ours, not the idler's.
    assert admin.post(f"/v1/models/{SMALL_LLM}/load").json()["state"] == "loaded"
    assert admin.post(f"/v1/models/{SMALL_LLM}/unload").json()["state"] == "ready"
    assert admin.post(f"/v1/models/{SMALL_LLM}/unload").status_code == 409
    wrong_role = admin.put("/v1/models/defaults", json={"llm": SMALL_LLM, "tts": DEFAULT_LLM})
    assert wrong_role.status_code == 400 and wrong_role.json()["error"]["code"] == "wrong_model_role"
    assert admin.get("/v1/models/defaults").json()["llm"] == DEFAULT_LLM  # all or nothing
    default_unload = admin.post(f"/v1/models/{DEFAULT_LLM}/unload")
    assert default_unload.status_code == 409 and admin.get("/readyz").status_code == 200


def test_import_checks_the_file_and_its_checksum(admin, models_server, tmp_path):
    gguf = Settings().models_dir / DEFAULT_LLM / "model.gguf"
    digest = CATALOG[DEFAULT_LLM].files[0].sha256
    bad = admin.post("/v1/models/import", json={"name": "mine", "role": "llm", "path": str(gguf), "sha256": "0" * 64})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "checksum_mismatch"
    assert admin.get("/v1/models/mine").status_code == 404  # nothing half-imported
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    refused = admin.post("/v1/models/import", json={"name": "mine", "role": "llm", "path": str(not_gguf)})
    assert refused.status_code == 400 and "not a GGUF" in refused.json()["error"]["message"]

    imported = admin.post(
        "/v1/models/import", json={"name": "mine", "role": "llm", "path": str(gguf), "sha256": digest}
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["source"] == "imported" and imported.json()["sha256"] == {"model.gguf": digest}
    assert imported.json()["state"] == "ready" and imported.json()["size_bytes"] == gguf.stat().st_size
    assert admin.post("/v1/models/import", json={"name": "mine", "role": "llm", "path": str(gguf)}).status_code == 409

    # Usable by name, also by OpenAI clients.
    completion = admin.post(
        "/v1/chat/completions",
        json={
            "model": "mine",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 30,
        },
    )
    assert completion.status_code == 200 and completion.json()["model"] == "mine"
    assert "paris" in completion.json()["choices"][0]["message"]["content"].lower()

    assert admin.delete("/v1/models/mine").status_code == 204
    assert admin.get("/v1/models/mine").status_code == 404
    assert not (Path(models_server.env["VOXGATE_CACHE_DIR"]) / "models" / "mine").exists()


def test_create_a_custom_model_from_a_persona(admin):
    created = admin.post("/v1/models/create", json={"name": "terse", "base": DEFAULT_LLM, "persona": "concise"})
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "custom" and created.json()["base"] == DEFAULT_LLM
    assert created.json()["persona"]["max_tokens"] == 20

    reply = admin.post("/v1/chat", json={"text": "What is the capital of France?", "model": "terse"}).json()
    assert "paris" in reply["reply"].lower() and len(reply["reply"].split()) <= 4
    assert reply["models"]["llm"] == DEFAULT_LLM
    completion = admin.post(
        "/v1/chat/completions",
        json={"model": "terse", "messages": [{"role": "user", "content": "What is the capital of Italy?"}]},
    ).json()
    assert completion["model"] == "terse" and len(completion["choices"][0]["message"]["content"].split()) <= 4

    in_use = admin.delete(f"/v1/models/{DEFAULT_LLM}")
    assert in_use.status_code == 409
    assert admin.post("/v1/models/create", json={"name": "terse", "base": DEFAULT_LLM}).status_code == 409
    assert admin.post("/v1/models/create", json={"name": "x", "base": "whisper-tiny.en"}).status_code == 400
    assert admin.delete("/v1/models/terse").status_code == 204


def test_delete_frees_the_pulled_model(admin, models_server):
    assert admin.delete(f"/v1/models/{SMALL_LLM}").status_code == 204
    assert model(admin, SMALL_LLM)["state"] == "available"
    assert not (Path(models_server.env["VOXGATE_CACHE_DIR"]) / "models" / SMALL_LLM).exists()
    again = admin.delete(f"/v1/models/{SMALL_LLM}")
    assert again.status_code == 409


def test_voices_by_language(user):
    voices = user.get("/v1/voices").json()["data"]
    by_id = {v["id"]: v for v in voices}
    heart = by_id["hibari-en_US-heart"]
    described = (heart["engine"], heart["language"], heart["gender"], heart["name"])
    assert described == ("hibari", "en-us", "female", "heart")
    assert heart["default"] and all({"language", "gender", "engine"} <= v.keys() for v in voices)
    espeak_languages = {v["language"] for v in voices if v["engine"] == "espeak-ng"}
    assert {"fr-fr", "es"} <= espeak_languages and len(espeak_languages) > 50
