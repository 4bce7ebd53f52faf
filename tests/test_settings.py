"""Settings precedence (flag > environment > YAML > default) and loud failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.errors import ConfigError
from proxy.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guardproxy.yaml"
    path.write_text(text)
    return path


def test_yaml_then_env_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, "port: 9001\nupstream_url: http://yaml.example/v1/\ntimeouts:\n  read_s: 7\n")
    assert load_settings(cfg).port == 9001
    assert load_settings(cfg).upstream_url == "http://yaml.example/v1"
    assert load_settings(cfg).timeouts.read_s == 7
    monkeypatch.setenv("GUARDPROXY_PORT", "9002")
    monkeypatch.setenv("GUARDPROXY_TIMEOUTS__READ_S", "9")
    assert load_settings(cfg).port == 9002
    assert load_settings(cfg).timeouts.read_s == 9
    assert load_settings(cfg, port=9003).port == 9003


def test_upstream_key_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDPROXY_UPSTREAM_API_KEY", "sk-very-secret")
    settings = load_settings()
    assert settings.upstream_api_key is not None
    assert settings.upstream_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings.model_dump())


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prot"):
        load_settings(write(tmp_path, "prot: 1\n"))


def test_bad_value_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"timeouts\.read_s"):
        load_settings(write(tmp_path, "timeouts:\n  read_s: -1\n"))
    with pytest.raises(ConfigError, match="upstream_url"):
        load_settings(write(tmp_path, "upstream_url: ftp://x\n"))


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(write(tmp_path, "port: [1\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- 1\n"))


def test_stage_list_is_configurable(tmp_path: Path) -> None:
    cfg = write(tmp_path, "stages:\n  - name: limits\n    timeout_s: 0.5\n    failure_mode: open\n")
    stage = load_settings(cfg).stages[0]
    assert (stage.name, stage.timeout_s, stage.failure_mode) == ("limits", 0.5, "open")
