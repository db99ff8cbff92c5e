"""Every accepted input format is detected from its bytes and transcribed."""

import pytest
from conftest import transcode

FORMATS = {
    "mp3": ("mp3", "libmp3lame", {}),
    "ogg-opus": ("ogg", "libopus", {"rate": 48000}),
    "webm-opus": ("webm", "libopus", {"rate": 48000}),
    "flac": ("flac", "flac", {}),
    "m4a-aac": ("ipod", "aac", {}),
    "wav-8bit": ("wav", "pcm_u8", {}),
    "wav-24bit": ("wav", "pcm_s24le", {}),
    "wav-float": ("wav", "pcm_f32le", {}),
    "wav-stereo-48k": ("wav", "pcm_s16le", {"rate": 48000, "layout": "stereo"}),
}


@pytest.mark.parametrize("name", FORMATS)
def test_format_is_transcribed(client, france_wav, name):
    container, codec, options = FORMATS[name]
    data = transcode(france_wav, container, codec, **options)
    # A neutral file name and content type: detection must come from the bytes.
    r = client.post(
        "/v1/chat",
        files={"audio": ("upload.bin", data, "application/octet-stream")},
        data={"reply_as": "text", "max_tokens": "16"},
    )
    assert r.status_code == 200, r.text
    transcript = r.json()["transcript"].lower()
    assert "capital" in transcript and "france" in transcript, transcript


def test_mp3_with_the_wrong_name_and_content_type(client, france_wav):
    mp3 = transcode(france_wav, "mp3", "libmp3lame")
    r = client.post("/v1/chat", files={"audio": ("question.wav", mp3, "audio/wav")}, data={"max_tokens": "16"})
    assert r.status_code == 200, r.text
    assert "france" in r.json()["transcript"].lower()
