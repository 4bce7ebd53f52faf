"""Real servers on 127.0.0.1: the simulated upstream and the proxy, each under its own loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from servers import UPSTREAM_KEY

from proxy import serving
from proxy.settings import load_settings
from proxy.simulator import SimConfig, SimulatorHandle, start_in_thread


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    handle = start_in_thread(config=SimConfig(require_key=UPSTREAM_KEY))
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def _reset_sim(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").configure(
            fault=None, fault_count=None, ttft_ms=0.0, token_ms=0.0, stall_s=30.0
        )


ProxyFactory = Callable[..., serving.ProxyHandle]


@pytest.fixture(scope="module")
def start_proxy(sim: SimulatorHandle) -> Iterator[ProxyFactory]:
    """Start a proxy in front of the simulator; keyword arguments override settings."""
    started: list[serving.ProxyHandle] = []

    def factory(extra_guards: dict[str, Any] | None = None, telemetry: Any = None,
                **overrides: Any) -> serving.ProxyHandle:
        overrides.setdefault("upstream_url", sim.url)
        overrides.setdefault("upstream_api_key", UPSTREAM_KEY)
        settings = load_settings(None, port=0, log_level="warning", **overrides)
        app_kwargs: dict[str, Any] = {"extra_guards": extra_guards}
        if telemetry is not None:
            app_kwargs["telemetry"] = telemetry
        handle = serving.start_in_thread(settings, **app_kwargs)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture(scope="module")
def proxy(start_proxy: ProxyFactory) -> serving.ProxyHandle:
    """The backbone alone (only the limits stage), so relay behaviour is tested apart from guards."""
    return start_proxy(timeouts={"read_s": 2.0, "stream_idle_s": 2.0}, stages=[{"name": "limits"}])


@pytest.fixture(scope="module")
def guarded(start_proxy: ProxyFactory) -> serving.ProxyHandle:
    """The default pipeline."""
    return start_proxy(timeouts={"read_s": 2.0, "stream_idle_s": 2.0})


@pytest.fixture
def client(proxy: serving.ProxyHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url, api_key="client-key", max_retries=0, timeout=10)
