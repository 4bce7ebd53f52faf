"""Evidence settings: the store location from GUARDPROXY_EVIDENCE_DIR, loud errors, off switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.errors import ConfigError
from proxy.evidence.recorder import evidence_recorder
from proxy.settings import load_settings


def test_the_store_location_comes_from_guardproxy_evidence_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDPROXY_EVIDENCE_DIR", "/srv/evidence")
    monkeypatch.setenv("GUARDPROXY_EVIDENCE__SAMPLE_RATE", "0.25")
    settings = load_settings(None)
    assert settings.evidence_dir == Path("/srv/evidence") and settings.evidence.sample_rate == 0.25


def test_the_default_store_is_evidence_in_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDPROXY_EVIDENCE_DIR", raising=False)
    assert load_settings(None).evidence_dir == Path("evidence")


@pytest.mark.parametrize("evidence, message", [
    ({"sample_rate": 2}, "evidence.sample_rate"),
    ({"backend": "s3"}, "evidence.backend"),
    ({"colour": "red"}, "evidence.colour"),
])
def test_bad_evidence_settings_name_the_field(evidence: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, evidence=evidence)


def test_postgres_without_a_dsn_fails_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"evidence\.dsn"):
        evidence_recorder(load_settings(None, evidence={"backend": "postgres"}))


def test_evidence_can_be_switched_off() -> None:
    assert evidence_recorder(load_settings(None, evidence={"enabled": False})) is None


def test_an_unreadable_seal_key_fails_at_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "reviewer.pub"
    bad.write_text("not base64 !!")
    with pytest.raises(ConfigError, match="seal public key"):
        evidence_recorder(load_settings(None, evidence={"seal_public_key": str(bad)}))
