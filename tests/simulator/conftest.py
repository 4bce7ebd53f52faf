"""A fresh simulator per test (starting one takes milliseconds) and an SDK client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from proxy.simulator import SimConfig, SimulatorHandle, start_in_thread


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    handle = start_in_thread(config=SimConfig(stall_s=1.0))
    yield handle
    handle.stop()


@pytest.fixture
def client(sim: SimulatorHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.url, api_key="k", max_retries=0, timeout=10) as c:
        yield c
