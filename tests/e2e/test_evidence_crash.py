"""kill -9 in the middle of a burst of flagged requests, with two server processes writing to one
store: the chain still verifies, and every response that carried an evidence id has its bundle."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from servers import UPSTREAM_KEY

from proxy.evidence.chain import verify
from proxy.evidence.store import open_store
from proxy.serving import free_port
from proxy.simulator import SimConfig, start_in_thread

GUARDPROXY = str(Path(sys.executable).parent / "guardproxy")
START_BOUND_S = 120.0


def serve(tmp: Path, name: str, upstream: str, evidence_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "upstream_url": upstream, "port": port, "log_level": "warning",
        "evidence": {"sample_rate": 0.0},
        "stages": [{"name": "limits"}, {"name": "pii", "options": {"actions": {"default": "tag"}}}],
    }))
    # The environment outranks the config file: point it at this test's store too.
    env = {**os.environ, "GUARDPROXY_UPSTREAM_API_KEY": UPSTREAM_KEY, "GUARDPROXY_EVIDENCE_DIR": str(evidence_dir)}
    stderr = (tmp / f"{name}.stderr").open("wb")  # kept for the failure message
    proc = subprocess.Popen([GUARDPROXY, "serve", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    # Readiness decides, not a fixed budget: on a loaded machine start-up can take many seconds, so the
    # bound is generous and only there to end a hung start; a child that exits ends the wait at once.
    deadline = time.monotonic() + START_BOUND_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait(5)
    tail = (tmp / f"{name}.stderr").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{name} did not become ready (exit {proc.returncode}); its stderr ends:\n{tail}")


def flagged(url: str, n: int) -> str | None:
    body = {"model": "sim", "messages": [{"role": "user", "content": f"mail me at user{n}@example.org"}]}
    try:
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10)
    except httpx.HTTPError:
        return None  # the server died under this request: no promise was made
    return response.headers.get("x-guardproxy-evidence-id")


@pytest.mark.timeout(2 * START_BOUND_S + 120)  # two start-ups, then the burst
def test_kill_9_mid_burst_leaves_a_verifiable_chain_and_every_promised_bundle(tmp_path: Path) -> None:
    sim = start_in_thread(config=SimConfig(require_key=UPSTREAM_KEY, ttft_ms=2.0))
    evidence_dir = tmp_path / "evidence"
    victim, victim_url = serve(tmp_path, "victim", sim.url, evidence_dir)
    survivor, survivor_url = serve(tmp_path, "survivor", sim.url, evidence_dir)
    promised: list[str] = []
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(flagged, victim_url if n % 2 else survivor_url, n) for n in range(400)]
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                if done == 120:
                    os.kill(victim.pid, signal.SIGKILL)  # mid-burst: requests still in flight
                if (evidence_id := future.result()) is not None:
                    promised.append(evidence_id)
    finally:
        victim.kill()
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(15)
        sim.stop()
    assert victim.wait(5) == -signal.SIGKILL
    assert 200 < len(promised) < 400  # some requests died with the victim; the survivor went on
    store = open_store(evidence_dir)
    try:
        assert list(verify(store.links(), store.anchor())) == []
        missing = [i for i in promised if store.get(i) is None]
        assert missing == []
    finally:
        store.close()
    for path in (p for p in evidence_dir.rglob("*") if p.is_file()):
        assert b"@example.org" not in path.read_bytes(), path  # the seeded addresses
