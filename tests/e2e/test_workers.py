"""`guardproxy serve --workers 2`: two processes share the port, each serves requests, and the evidence
both write forms one chain that verifies with every promised bundle in it."""

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


def _children(pid: int) -> list[int]:
    """The worker processes (uvicorn spawns them; multiprocessing's resource tracker is not one)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return [c for c in found if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _listening_workers(supervisor: int, url: str, want: int) -> list[int]:
    """The worker pids once `want` of them answer; readiness decides, the bound only ends a hung start."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        kids = _children(supervisor)
        try:
            if len(kids) >= want and httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return kids
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{want} workers did not start: {_children(supervisor)}")


@pytest.mark.timeout(300)
def test_two_workers_share_the_port_and_one_evidence_chain(tmp_path: Path) -> None:
    sim = start_in_thread(config=SimConfig(require_key=UPSTREAM_KEY))
    port = free_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(yaml.safe_dump({"upstream_url": sim.url, "log_level": "warning",
                                      "evidence": {"sample_rate": 1.0}}))
    env = {**os.environ, "GUARDPROXY_UPSTREAM_API_KEY": UPSTREAM_KEY,
           "GUARDPROXY_EVIDENCE_DIR": str(tmp_path / "evidence")}
    stderr = (tmp_path / "serve.stderr").open("wb")
    proc = subprocess.Popen([GUARDPROXY, "serve", "--config", str(config), "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        _listening_workers(proc.pid, url, 2)
        body = {"model": "sim", "messages": [{"role": "user", "content": "hello there"}]}
        for _ in range(20):  # warm both: a worker still starting up may be restarted by the supervisor
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
        workers = _listening_workers(proc.pid, url, 2)
        assert len(workers) == 2
        before = {pid: _cpu(pid) for pid in workers}

        def call(_: int) -> str | None:
            response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
            assert response.status_code == 200, response.text
            return response.headers.get("x-guardproxy-evidence-id")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            promised = [e for e in pool.map(call, range(200)) if e]
        # Both processes did request work (the kernel spreads connections over the shared socket).
        assert all(_cpu(pid) > before[pid] for pid in workers), (before, {p: _cpu(p) for p in workers})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        sim.stop()
    assert len(promised) == 200
    store = open_store(tmp_path / "evidence")
    try:
        assert list(verify(store.links(), store.anchor())) == []
        assert [i for i in promised if store.get(i) is None] == []
    finally:
        store.close()


def _cpu(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
