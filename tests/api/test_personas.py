"""Personas change how the assistant answers; users manage their own."""

from conftest import words


def test_builtins_are_listed(client):
    names = {p["name"] for p in client.get("/v1/personas").json()}
    assert {"assistant", "formal", "casual", "humorous", "concise"} <= names


def test_same_question_two_personas_answer_differently(client):
    question = "What is the capital of France?"
    concise = client.post("/v1/chat", json={"text": question, "persona": "concise"}).json()["reply"]
    r = client.post(
        "/v1/personas",
        json={
            "name": "francais",
            "system_prompt": "You only speak French. Translate every answer into French before replying. "
            "Answer in one French sentence.",
            "language": "fr",
        },
    )
    assert r.status_code == 201, r.text
    french = client.post("/v1/chat", json={"text": question, "persona": "francais"}).json()["reply"]
    assert len(words(concise)) <= 3 and "paris" in concise.lower()
    french_words = {"la", "le", "est", "capitale", "de", "france"}
    assert len(french_words & set(words(french))) >= 2, french
    assert "paris" in french.lower()


def test_own_persona_crud_and_default(client):
    body = {"name": "pirate", "system_prompt": "Talk like a pirate.", "temperature": 0.5}
    assert client.post("/v1/personas", json=body).status_code == 201
    assert client.post("/v1/personas", json=body).status_code == 409
    assert client.post("/v1/personas", json={**body, "name": "formal"}).status_code == 409
    patched = client.patch("/v1/personas/pirate", json={"max_tokens": 30})
    assert patched.status_code == 200 and patched.json()["max_tokens"] == 30
    assert client.patch("/v1/personas/formal", json={"max_tokens": 30}).status_code == 409

    assert client.put("/v1/me/settings", json={"default_persona": "pirate"}).json()["default_persona"] == "pirate"
    r = client.post("/v1/chat", json={"text": "Hello!"}).json()
    assert r["persona"] == "pirate"
    assert client.put("/v1/me/settings", json={"default_persona": "missing"}).status_code == 404
    client.put("/v1/me/settings", json={"default_persona": "assistant"})
    assert client.delete("/v1/personas/pirate").status_code == 204
    assert client.get("/v1/personas/pirate").status_code == 404
    assert client.delete("/v1/personas/concise").status_code == 409
