"""An MCP tool server (the official SDK's MCPServer) and guardproxy in front of it, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mcp_support import write_policy

from proxy import serving
from proxy.mcp import demo_server
from proxy.settings import load_settings


@pytest.fixture(scope="module")
def files() -> Iterator[demo_server.FilesServer]:
    server = demo_server.start_in_thread()
    yield server
    server.stop()


Factory = Callable[..., serving.ProxyHandle]


@pytest.fixture(scope="module")
def start_gateway(files: demo_server.FilesServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Factory]:
    started: list[serving.ProxyHandle] = []

    def factory(**overrides: Any) -> serving.ProxyHandle:
        tmp = tmp_path_factory.mktemp("gw")
        overrides.setdefault("policy_file", write_policy(tmp / "policy.yaml"))
        overrides.setdefault("mcp_servers", [{"name": "files", "url": files.url,
                                              "headers": {"Authorization": "Bearer files-server-secret"}}])
        mcp = {"pins_path": str(tmp / "pins.json"), **overrides.pop("mcp", {})}
        app_kwargs = overrides.pop("app_kwargs", {})
        overrides.setdefault("evidence_dir", tmp / "evidence")
        settings = load_settings(None, port=0, log_level="warning", mcp=mcp, **overrides)
        handle = serving.start_in_thread(settings, **app_kwargs)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


@pytest.fixture(scope="module")
def gateway(start_gateway: Factory) -> serving.ProxyHandle:
    return start_gateway()


