"""With client keys defined, every route but the probes needs one; no route list leaks; and the
proxy refuses to become an open relay for its upstream key on a non-loopback address."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from proxy.errors import ConfigError
from proxy.policy.auth import exposure_problem, is_loopback
from proxy.policy.spec import hash_key
from proxy.serving import ProxyHandle, check_exposure
from proxy.settings import load_settings

POLICY = """
kind: policy
version: 1
clients:
  - {name: acme, key_sha256: "%s"}
"""


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(POLICY % hash_key("acme-key"))
    return path


@pytest.fixture(scope="module")
def keyed(start_proxy: Any, policy_file: Path) -> ProxyHandle:
    return start_proxy(policy_file=str(policy_file), stages=[{"name": "limits"}])


def base(proxy: ProxyHandle) -> str:
    return proxy.url.removesuffix("/v1")


@pytest.mark.parametrize("path", ["/v1/models", "/metrics"])
def test_non_probe_routes_need_a_key_when_keys_exist(keyed: ProxyHandle, path: str) -> None:
    r = httpx.get(base(keyed) + path)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.get(base(keyed) + path, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = httpx.get(base(keyed) + path, headers={"authorization": "Bearer acme-key"})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_stay_open(keyed: ProxyHandle, path: str) -> None:
    assert httpx.get(base(keyed) + path).status_code == 200


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_no_route_description_by_default(keyed: ProxyHandle, path: str) -> None:
    assert httpx.get(base(keyed) + path, headers={"authorization": "Bearer acme-key"}).status_code == 404


def test_openapi_can_be_turned_on(start_proxy: Any) -> None:
    proxy = start_proxy(openapi=True, stages=[{"name": "limits"}])
    assert "/v1/chat/completions" in httpx.get(base(proxy) + "/openapi.json").json()["paths"]


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False),
    ("10.0.0.5", False), ("proxy.internal", False),
])
def test_loopback_is_recognised(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert (exposure_problem(host, has_client_keys=False, allow_unauthenticated=False) is None) is loopback


def test_keys_or_an_explicit_setting_allow_a_public_address(policy_file: Path) -> None:
    check_exposure(load_settings(None, host="0.0.0.0", policy_file=str(policy_file)))
    check_exposure(load_settings(None, host="0.0.0.0", allow_unauthenticated=True,
                                 policy_file=str(policy_file.parent / "absent.yaml")))
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0"):
        check_exposure(load_settings(None, host="0.0.0.0", policy_file=str(policy_file.parent / "absent.yaml")))


def test_serve_refuses_an_open_relay_with_one_line(tmp_path: Path) -> None:
    # As the container runs it (GUARDPROXY_HOST=0.0.0.0), with a policy that has no client keys.
    env = {"GUARDPROXY_HOST": "0.0.0.0", "GUARDPROXY_POLICY_FILE": str(tmp_path / "none.yaml"),
           "PATH": "/usr/bin:/bin"}
    command = str(Path(sys.executable).parent / "guardproxy")
    done = subprocess.run([command, "serve", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0" in lines[0] and "client keys" in lines[0]
