"""The registry's loaded-model cache, with fake engines: one load per model however many
threads ask at once, and an engine that lacks its role's interface is refused at load."""

import threading
import time

import pytest

from voxgate.catalog import Role
from voxgate.config import Settings, SpeechToTextSettings
from voxgate.engines.base import ChatResult
from voxgate.registry import Registry


class FakeLLM:
    name = "fake-llm"

    def generate(self, request, on_delta=None) -> ChatResult:
        return ChatResult("ok", "stop")

    def warm_up(self) -> None:
        pass


class NotAnLLM:
    """Has a name and warms up, but cannot answer."""

    name = "fake-llm"

    def warm_up(self) -> None:
        pass


class SlowRegistry(Registry):
    """Opening an engine takes a while, as reading weights does; every open is counted."""

    def __init__(self, settings: Settings, engine: type):
        super().__init__(settings)
        self.engine, self.opened = engine, 0

    def _open(self, role: Role, name: str):
        self.opened += 1
        time.sleep(0.2)
        return self.engine()


def test_threads_asking_at_once_load_a_model_once(tmp_path):
    registry = SlowRegistry(Settings(data_dir=tmp_path), FakeLLM)
    engines = []

    def ask() -> None:
        with registry.use_llm() as llm:
            engines.append(llm)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert registry.opened == 1
    assert len(engines) == 8 and len({id(e) for e in engines}) == 1
    assert registry.loaded() == [registry.defaults[Role.LLM]]


def test_an_engine_without_its_roles_interface_is_refused(tmp_path):
    registry = SlowRegistry(Settings(data_dir=tmp_path), NotAnLLM)
    with pytest.raises(TypeError, match="NotAnLLM does not implement ChatModel"), registry.use_llm():
        pass
    assert registry.loaded() == []


@pytest.mark.parametrize(
    ("stt", "expected"),
    [
        ({}, "whisper-base"),
        ({"second_opinion": ""}, None),  # turned off
        ({"model": "whisper-base"}, None),  # the default itself
        ({"backend": "openai", "url": "http://stt.example", "model": "whisper-1"}, None),  # speech heard remotely
    ],
)
def test_the_second_opinion_is_another_local_stt(tmp_path, stt, expected):
    registry = Registry(Settings(data_dir=tmp_path, stt=SpeechToTextSettings(**stt)))
    assert registry.second_opinion == expected


def test_the_second_opinion_follows_the_default_stt(tmp_path):
    registry = Registry(Settings(data_dir=tmp_path))
    registry.defaults[Role.STT] = "whisper-base"  # switched at run time (PUT /v1/models/defaults)
    assert registry.second_opinion is None
