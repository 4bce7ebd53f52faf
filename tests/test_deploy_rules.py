"""The shipped Prometheus SLO rules: derived from deploy/slo.yaml, multi-window multi-burn-rate,
valid for promtool (checked with it when it is installed, parsed here either way)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "guardproxy-slo-rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "guardproxy-slo-rules.test.yaml"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_committed_rules_are_what_the_config_derives() -> None:
    done = subprocess.run([sys.executable, str(DEPLOY / "gen_slo_rules.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_slo_alerts_on_the_three_window_pairs_at_their_burn_rates() -> None:
    config, rules = load(DEPLOY / "slo.yaml"), load(RULES)
    pairs = {(a["long"], a["short"], float(a["burn_rate"]), a["severity"]) for a in config["alerts"]}
    assert pairs == {("1h", "5m", 14.4, "page"), ("6h", "30m", 6.0, "page"),
                     ("3d", "6h", 1.0, "ticket")}
    assert len(rules["groups"]) == len(config["slos"])
    for slo, group in zip(config["slos"], rules["groups"], strict=True):
        budget = 1 - float(slo["objective"])
        records = {r["record"]: r["expr"] for r in group["rules"] if "record" in r}
        for window in ("5m", "30m", "1h", "6h", "3d"):
            expr = records[f"guardproxy:slo_{slo['name']}_error_ratio:rate{window}"]
            assert f"[{window}]" in expr and "_bucket{" in expr and "_count" in expr
        seen = set()
        for alert in (r for r in group["rules"] if "alert" in r):
            labels = alert["labels"]
            m = re.fullmatch(
                r"(\S+):rate(\w+) > \(([\d.]+) \* ([\d.e-]+)\) and (\S+):rate(\w+) > \(\3 \* \4\)",
                alert["expr"])
            assert m, alert["expr"]
            assert (m[2], m[6]) == (labels["long_window"], labels["short_window"])
            assert float(m[4]) == pytest.approx(budget)
            seen.add((m[2], m[6], float(m[3]), labels["severity"]))
        assert seen == pairs


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", RULE_TESTS.name], capture_output=True,
                          text=True, cwd=RULE_TESTS.parent)
    assert unit.returncode == 0, unit.stdout + unit.stderr
