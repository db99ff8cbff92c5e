"""Smart Turn v3.2: prepared from pipecat's wheel, verified, and judging real speech.

The speech is the Piper voice's. Piper speaks any text as a whole sentence, with a
sentence's falling end, so a bare fragment ("What is the capital of") often sounds
finished to the model: in 15 runs, 2 to 5 of the 6 fragments scored below 0.5 (mean
0.52). A speaker who breaks off mid-sentence and hesitates ("What is the capital of,
um") is what the model must catch, and it does: 90 of 90 below 0.5 (mean 0.01), while
finished questions scored above 0.5 in 90 of 91 (mean 0.94).
"""

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from voxgate import model_files
from voxgate.audio import resample
from voxgate.catalog import CATALOG, Role
from voxgate.config import Settings
from voxgate.engines.piper import PiperTTS
from voxgate.engines.smart_turn import SmartTurn
from voxgate.registry import Registry

MODEL = "smart-turn-v3.2"
VOICE = "piper-en_US-joe-medium"
RATE = 16_000

FINISHED = (
    "What is the capital of France?",
    "Can you tell me how the weather will be tomorrow?",
    "I would like to book a table for two people tonight.",
    "How many legs does a spider have?",
    "Please turn off the lights in the kitchen.",
    "What time does the train to Berlin leave?",
)
BROKEN_OFF = (
    "What is the capital of",
    "Can you tell me how the",
    "I would like to book a table for",
    "How many legs does a",
    "Please turn off the lights in the",
    "What time does the train to",
)


def _prepared(name: str) -> Path:
    """The model's file in the cache, pulled first if needed (as `voxgate models pull` does)."""
    settings = Settings()
    Registry(settings).pull(name, lambda _: None)
    return model_files.resolve(name, CATALOG[name].role, settings.models_dir)[1]


@pytest.fixture(scope="module")
def smart_turn() -> SmartTurn:
    engine = SmartTurn(MODEL, _prepared(MODEL))
    engine.warm_up()
    return engine


@pytest.fixture(scope="module")
def speak():
    tts = PiperTTS(VOICE, _prepared(VOICE))

    def speak(text: str) -> np.ndarray:
        """`text` spoken as 16 kHz float32, cut where the voice ends plus 200 ms of silence:
        what the realtime session hands the model at a speaker's first pause."""
        chunks = list(tts.synthesize(text))
        pcm = np.concatenate([c.pcm for c in chunks]).astype(np.float32) / 32768
        samples = resample(pcm, chunks[0].sample_rate, RATE)
        voiced = np.nonzero(np.abs(samples) > 0.01)[0]
        return np.concatenate([samples[: voiced[-1] + 1], np.zeros(RATE // 5, np.float32)])

    return speak


def test_catalog_file_is_prepared_from_the_package_and_verified(tmp_path):
    model = CATALOG[MODEL]
    assert model.role == Role.TURN and model.packages == ("pipecat-ai==1.14.0",)
    model_files.install_packages(model_files.missing_packages(model))  # the cache may hold it without the package
    target = model_files.prepare(model, tmp_path)
    data = (target / "model.onnx").read_bytes()
    assert hashlib.sha256(data).hexdigest() == model.files[0].sha256
    assert len(data) == model.size_bytes
    assert model_files.resolve(MODEL, Role.TURN, tmp_path) == (MODEL, target / "model.onnx")
    (features,) = onnxruntime.InferenceSession(str(target / "model.onnx")).get_inputs()
    assert (features.name, features.shape[1:]) == ("input_features", [80, 800])


def test_turn_model_is_a_default_that_loads():
    registry = Registry(Settings())
    assert registry.defaults[Role.TURN] == MODEL
    assert registry.info(MODEL).role == Role.TURN
    _prepared(MODEL)
    with registry.use_turn() as engine:
        assert engine.name == MODEL
        assert 0.0 <= engine.completion(np.zeros(RATE, np.float32)) <= 1.0


def test_finished_questions_sound_finished(smart_turn, speak):
    scores = [smart_turn.completion(speak(text)) for text in FINISHED]
    assert sum(s > 0.5 for s in scores) >= 5, dict(zip(FINISHED, scores, strict=True))


def test_questions_broken_off_mid_sentence_sound_unfinished(smart_turn, speak):
    scores = [smart_turn.completion(speak(text + ", um")) for text in BROKEN_OFF]
    assert sum(s < 0.5 for s in scores) >= 5, dict(zip(BROKEN_OFF, scores, strict=True))


def test_only_the_last_eight_seconds_count(smart_turn, speak):
    question = speak(FINISHED[0])
    noise = np.random.default_rng(0).normal(0, 0.05, 10 * RATE).astype(np.float32)
    assert smart_turn.completion(np.concatenate([noise, question])) == pytest.approx(
        smart_turn.completion(np.concatenate([noise[-(8 * RATE - question.size) :], question])), abs=1e-6
    )
