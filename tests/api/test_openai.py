"""The official `openai` client works against voxgate unmodified."""

import pytest
from conftest import words
from openai import OpenAI


@pytest.fixture(scope="module")
def openai_client(server):
    # A voxgate API key is what the client sends as its OpenAI API key.
    return OpenAI(base_url=f"{server.url}/v1", api_key=server.key, timeout=120)


def test_chat_completion(openai_client):
    completion = openai_client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=40
    )
    assert "paris" in completion.choices[0].message.content.lower()
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens > 0


def test_streamed_chat_completion(openai_client):
    stream = openai_client.chat.completions.create(
        model="default",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        stream=True,
    )
    deltas = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([d for d in deltas if d]) > 2  # it really arrived in pieces
    assert "paris" in "".join(deltas).lower()


def test_transcription_formats(openai_client, france_wav):
    text = openai_client.audio.transcriptions.create(model="whisper-1", file=("q.wav", france_wav))
    assert "france" in text.text.lower()
    verbose = openai_client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", france_wav), response_format="verbose_json"
    )
    assert verbose.language == "en" and verbose.duration > 1
    srt = openai_client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", france_wav), response_format="srt"
    )
    assert srt.startswith("1\n00:00:0") and "-->" in srt
    vtt = openai_client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", france_wav), response_format="vtt"
    )
    assert vtt.startswith("WEBVTT")


@pytest.mark.parametrize(("fmt", "magic"), [("wav", b"RIFF"), ("mp3", b"ID3"), ("opus", b"OggS"), ("flac", b"fLaC")])
def test_speech_round_trip(openai_client, fmt, magic):
    sentence = "The quick brown fox jumps over the lazy dog."
    audio = openai_client.audio.speech.create(model="tts-1", voice="alloy", input=sentence, response_format=fmt)
    data = audio.read()
    assert data.startswith(magic) or (fmt == "mp3" and data[:2] == b"\xff\xfb")
    heard = openai_client.audio.transcriptions.create(model="whisper-1", file=(f"s.{fmt}", data)).text
    # Piper's synthesis varies run to run and Whisper tiny sometimes hears "lizzy": 4 of 5 words.
    assert len({"quick", "brown", "fox", "lazy", "dog"} & set(words(heard))) >= 4, heard


def test_speed_changes_duration(openai_client):
    def seconds(speed: float) -> float:
        pcm = openai_client.audio.speech.create(
            model="tts-1", voice="alloy", input="This is a test of speed.", response_format="pcm", speed=speed
        ).read()
        return len(pcm) / 2 / 24000  # the default voice's rate

    assert seconds(2.0) < 0.75 * seconds(1.0)


def test_models_list(openai_client):
    models = {m.id: m for m in openai_client.models.list().data}
    assert {"whisper-tiny.en", "qwen2.5-coder-0.5b-instruct", "piper-en_US-joe-medium"} <= models.keys()
    qwen = models["qwen2.5-coder-0.5b-instruct"].model_extra
    assert qwen["default"] is True and qwen["state"] == "loaded" and qwen["role"] == "llm"


def test_wrong_api_key_is_refused(server):
    import openai

    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{server.url}/v1", api_key="vg_not-a-real-key").models.list()


def test_empty_speech_input_is_a_clear_error(openai_client):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        openai_client.audio.speech.create(model="tts-1", voice="alloy", input="   ")
    assert "empty" in str(info.value)


def test_a_follow_up_turn_reuses_the_cached_conversation_prefix(openai_client):
    history = [
        {"role": "system", "content": "You are a helpful assistant. " * 20},
        {"role": "user", "content": "Name three rivers in Europe."},
    ]
    first = openai_client.chat.completions.create(model="default", messages=history, max_tokens=40, temperature=0)
    follow_up = history + [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "Which of them is the longest?"},
    ]
    second = openai_client.chat.completions.create(model="default", messages=follow_up, max_tokens=40)
    # Turn N evaluates about the new tokens only: the earlier ones come from llama.cpp's cache.
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens * 0.9
