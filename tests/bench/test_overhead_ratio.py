"""A bounded CPU regression check: the default pipeline's CPU per request over the same proxy with no
stages, both measured in this run on this machine. A ratio, not a wall-clock limit, so a busy CI machine
does not fail it while a guard that suddenly costs several times more does. Every request carries a new
user message (history resent, as in real traffic), so per-text caches cannot hide a stage's cost on new
text."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import overhead  # noqa: E402

# Default pipeline CPU per request / no-stage CPU per request (telemetry and evidence on in both), every
# request with a new user message. Measured 1.47-1.93 on a 2-core machine under load 3-9 before the
# upstream client and the guards got cheaper, about 1.5-1.7 since on a quiet one; the bound leaves room
# for a loaded CI machine while a stage that suddenly costs half as much as the rest of the proxy fails it.
MAX_RATIO = 2.2


@pytest.mark.timeout(600)
def test_default_pipeline_cpu_per_request_stays_within_a_ratio_of_no_stages() -> None:
    configs = [c for c in overhead.configurations(1) if c.label in {"+ evidence", "default pipeline"}]
    assert [c.label for c in configs] == ["+ evidence", "default pipeline"]
    assert all(c.mode == "new" for c in configs)
    with tempfile.TemporaryDirectory(prefix="guardproxy-ratio-") as tmp:
        procs = []
        try:
            port = overhead.free_port()
            sim = overhead.start([str(overhead.BIN / "guardproxy"), "simulate", "--port", str(port)])
            procs.append(sim)
            upstream = f"http://127.0.0.1:{port}/v1"
            overhead.wait_ready(upstream + "/models", sim)
            targets, more = overhead.start_targets(configs, upstream, Path(tmp))
            procs += more
            overhead.settle(targets)  # the evidence PII engine warms in the background after readiness
            asyncio.run(overhead.measure(targets, [4], 300, 2))
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)
    by_label = {t.label: t for t in targets}
    for t in targets[1:]:
        assert t.requests >= 600 and all(r.errors == 0 for r in t.runs[4]), t.label
    bare, default = by_label["+ evidence"], by_label["default pipeline"]
    ratio = default.cpu_us_per_request / bare.cpu_us_per_request
    print(f"CPU per request: no stages {bare.cpu_us_per_request:.0f} µs, default {default.cpu_us_per_request:.0f} µs, "
          f"ratio {ratio:.2f}")
    assert ratio <= MAX_RATIO, f"default pipeline costs {ratio:.2f}x the no-stage proxy (bound {MAX_RATIO})"
