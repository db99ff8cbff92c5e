"""llama.cpp in-process: the `speculative` preset's pair (Qwen2.5-Coder 1.5B drafted by the
0.5B) answers exactly as the 1.5B alone does at temperature 0: drafting changes speed only."""

import pytest

from voxgate import model_files
from voxgate.catalog import Role
from voxgate.config import PRESETS, Settings
from voxgate.engines.base import ChatMessage, ChatRequest
from voxgate.engines.llamacpp import LlamaCppLLM

MODEL, DRAFT = PRESETS["speculative"]
QUESTIONS = ("What is the capital of France?", "Name three planets.")


def _path(name: str):
    return model_files.resolve(name, Role.LLM, Settings().models_dir)[1]


def _answers(llm: LlamaCppLLM) -> list[str]:
    return [
        llm.generate(ChatRequest((ChatMessage("user", q),), max_tokens=40, temperature=0.0)).text for q in QUESTIONS
    ]


@pytest.fixture(scope="module")
def plain_answers() -> list[str]:
    return _answers(LlamaCppLLM(MODEL, _path(MODEL), threads=1, context=1024, slots=1))


def test_the_drafted_model_answers_as_the_model_alone(plain_answers):
    drafted = LlamaCppLLM(MODEL, _path(MODEL), threads=1, context=1024, slots=1, draft=_path(DRAFT))
    assert _answers(drafted) == plain_answers
    assert "paris" in plain_answers[0].lower()


def test_the_preset_names_the_pair_and_an_explicit_model_wins():
    speculative = Settings(preset="speculative").llm
    assert (speculative.model, speculative.draft_model) == (MODEL, DRAFT)
    assert Settings(preset="speculative", llm={"model": "my.gguf"}).llm.model == "my.gguf"
    assert Settings(preset="speculative", llm={"draft_model": None}).llm.draft_model is None
    assert Settings().llm.draft_model is None
