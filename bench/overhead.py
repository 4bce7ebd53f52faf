"""What guardproxy costs over calling the upstream directly, layer by layer, in one run.

Starts the simulated upstream, the floor (`floor.py`: a bare FastAPI + httpx-aiohttp pass-through)
and one `guardproxy serve` per configuration, from bare (no stages, no evidence, telemetry off) up
to the full default pipeline one layer at a time, then drives every target with the raw-socket load
client in interleaved rounds so machine drift hits all alike. For each target it prints the server
process's CPU time per request (utime + stime of the whole process tree: the steadiest figure on a
shared machine), its ratio to the floor's, p50 / p99, the latency added over direct, and req/s.
The request is a ~4 KB conversation with a tool call and a tool result; each request's user
message is new (same size, numbered; history resent, as in real traffic), so per-text caches such
as the injection stage's scan cache are not credited with text they never saw. One more row sends
the default pipeline the identical request every time (what those caches make of a pure resend).
Every body is built before the clock starts. Loopback only; every loop is bounded.

    python bench/overhead.py [--conc 1,8,32] [--n 400] [--rounds 2] [--workers 1] [--only a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from cpu import cpu_seconds
from loadclient import Result, run

BIN = Path(sys.executable).parent
HERE = Path(__file__).parent
DEFAULT_STAGES = ["limits", "quarantine", "injection", "tool_scope", "segregation", "output_leak"]
RESENT = "default pipeline (identical request resent)"


def conversation() -> bytes:
    doc = ("Quarterly report. Revenue grew in every region; costs were flat. " * 40)[:2600]
    body = {
        "model": "sim-gpt",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for the finance team. " * 6},
            {"role": "user", "content": "Summarise the attached quarterly report in three bullets."},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
             "function": {"name": "fetch_report", "arguments": "{\"quarter\": \"Q3\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": doc},
        ],
        "tools": [{"type": "function", "function": {"name": "fetch_report", "description": "Fetch a report.",
                   "parameters": {"type": "object", "properties": {"quarter": {"type": "string"}}}}}],
    }
    return json.dumps(body).encode()


MODES = {  # how each request's text differs from the one before
    "new": "a new last user message (history resent, as in real traffic)",
    "resent": "the identical request resent (every per-text cache hits)",
    "all-new": "every message new, system prompt too (nothing seen before)",
}


def variant(raw: bytes, i: int, mode: str) -> bytes:
    """Request `i` of a mode: the same size and shape, with the mode's text made new."""
    if mode == "resent":
        return raw
    body = json.loads(raw)
    messages = body["messages"] if mode == "all-new" else [
        next(m for m in reversed(body["messages"]) if m["role"] == "user")]
    for message in messages:
        if isinstance(message.get("content"), str):
            message["content"] = f"{message['content'][:-9]} #{i:07d}"
    return json.dumps(body).encode()


@dataclass
class Config:
    """One proxy configuration: a label, the environment that makes it and what it is sent."""

    label: str
    env: dict[str, str]
    mode: str = "new"


def configurations(workers: int) -> list[Config]:
    """Bare guardproxy, then telemetry, evidence and each default stage added one at a time."""
    bare = {"GUARDPROXY_STAGES": "[]", "GUARDPROXY_EVIDENCE__ENABLED": "false", "OTEL_SDK_DISABLED": "true"}
    configs = [Config("gp bare", bare),
               Config("+ telemetry", {**bare, "OTEL_SDK_DISABLED": "false"}),
               Config("+ evidence", {**bare, "OTEL_SDK_DISABLED": "false", "GUARDPROXY_EVIDENCE__ENABLED": "true"})]
    for i in range(1, len(DEFAULT_STAGES) + 1):
        stages = json.dumps([{"name": s} for s in DEFAULT_STAGES[:i]])
        label = "default pipeline" if i == len(DEFAULT_STAGES) else f"+ {DEFAULT_STAGES[i - 1]}"
        configs.append(Config(label, {"OTEL_SDK_DISABLED": "false", "GUARDPROXY_EVIDENCE__ENABLED": "true",
                                      "GUARDPROXY_STAGES": stages}))
    # The same proxy sent the identical request every time: what per-text caches make of it.
    configs.append(Config(RESENT, dict(configs[-1].env), mode="resent"))
    if workers > 1:
        for c in configs:
            c.env["GUARDPROXY_WORKERS"] = str(workers)
    return configs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up (exit {proc.poll()})")


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass
class Target:
    label: str
    url: str
    pid: int | None  # None: not ours to measure (the upstream when called directly)
    mode: str = "new"
    cpu_s: float = 0.0
    requests: int = 0
    per_round: list[float] = field(default_factory=list)  # CPU µs per request in each measured round
    runs: dict[int, list[Result]] = field(default_factory=lambda: defaultdict(list))

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else float("nan")


Procs = list[subprocess.Popen[bytes]]


def start_targets(configs: list[Config], upstream: str, evidence_root: Path) -> tuple[list[Target], Procs]:
    targets = [Target("direct", upstream + "/chat/completions", None)]
    procs: Procs = []
    port = free_port()
    floor = start([sys.executable, str(HERE / "floor.py"), "--port", str(port), "--upstream", upstream])
    procs.append(floor)
    wait_ready(f"http://127.0.0.1:{port}/healthz", floor)
    floor_url = f"http://127.0.0.1:{port}/v1/chat/completions"
    targets.append(Target("floor (bare FastAPI pass-through)", floor_url, floor.pid))
    for i, config in enumerate(configs):
        port = free_port()
        env = {"GUARDPROXY_LOG_LEVEL": "warning", "GUARDPROXY_EVIDENCE_DIR": str(evidence_root / str(i)),
               **config.env}
        proc = start([str(BIN / "guardproxy"), "serve", "--port", str(port), "--upstream", upstream], env)
        procs.append(proc)
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        targets.append(Target(config.label, f"http://127.0.0.1:{port}/v1/chat/completions", proc.pid, config.mode))
    return targets, procs


def settle(targets: list[Target], quiet_s: float = 0.02, limit_s: float = 60.0) -> None:
    """Wait until no target burns CPU while idle: a proxy warms its PII engine in the background
    after it reports ready (about a second of CPU), and that must not land in a measured round."""
    deadline = time.monotonic() + limit_s
    for t in targets:
        while t.pid and time.monotonic() < deadline:
            before = cpu_seconds(t.pid)
            time.sleep(0.5)
            if cpu_seconds(t.pid) - before < quiet_s:
                break


async def measure(targets: list[Target], conc: list[int], n: int, rounds: int) -> None:
    raw = conversation()
    # Every request a target gets in this run is numbered apart from every other it gets (warm-ups
    # too), so no per-text cache sees a "new" request's text twice; all bodies are built here,
    # before any clock starts. Targets are separate processes: they share the same sequence.
    total = len(conc) * (min(n, 100) + rounds * n)
    bodies = {mode: [variant(raw, i, mode) for i in range(total)]
              for mode in {t.mode for t in targets} - {"resent"}}

    def sent(t: Target, offset: int, k: int) -> bytes | list[bytes]:
        return raw if t.mode == "resent" else bodies[t.mode][offset:offset + k]

    offset = 0
    for c in conc:
        warm = min(n, 100)
        for t in targets:  # warm-up: caches, connection pools, lazy imports
            await run(t.label, t.url, sent(t, offset, warm), c, warm)
        offset += warm
        for r in range(rounds):
            for t in targets if r % 2 == 0 else list(reversed(targets)):
                before = cpu_seconds(t.pid) if t.pid else 0.0
                result = await run(t.label, t.url, sent(t, offset, n), c, n)
                if t.pid:
                    spent, count = cpu_seconds(t.pid) - before, len(result.latencies_ms) + result.errors
                    t.cpu_s += spent
                    t.requests += count
                    t.per_round.append(spent / max(count, 1) * 1e6)
                t.runs[c].append(result)
            offset += n


def merged(rs: list[Result]) -> Result:
    return Result(rs[0].label, rs[0].concurrency, [x for r in rs for x in r.latencies_ms],
                  sum(r.errors for r in rs), sum(r.seconds for r in rs))


def report(targets: list[Target], conc: list[int], workers: int) -> None:
    floor = targets[1]
    c1 = conc[0]
    print(f"\nbody={len(conversation())} bytes; {workers} proxy worker(s); {os.cpu_count()} cores; "
          f"latency columns at c={c1}; CPU is the server's process tree over every measured request; "
          f"every request has {MODES['new']} unless its row says otherwise\n")
    rps_head = " / ".join(f"c={c}" for c in conc)
    print(f"| target | CPU µs/req | x floor | p50 ms | p99 ms | added p50 | added p99 | req/s {rps_head} | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    direct = merged(targets[0].runs[c1])
    for t in targets:
        r = merged(t.runs[c1])
        rps = " / ".join(f"{merged(t.runs[c]).rps:.0f}" for c in conc)
        errors = sum(merged(t.runs[c]).errors for c in conc)
        cpu = f"{t.cpu_us_per_request:.0f}" if t.pid else "—"
        ratio = f"{t.cpu_us_per_request / floor.cpu_us_per_request:.2f}" if t.pid else "—"
        added = "" if t is targets[0] else f"{r.p50 - direct.p50:+.2f} | {r.pct(0.99) - direct.pct(0.99):+.2f}"
        added = added or " | "
        print(f"| {t.label} | {cpu} | {ratio} | {r.p50:.2f} | {r.pct(0.99):.2f} | {added} | {rps} | {errors} |")
    # How steady the ratio is: each round's CPU per request over the floor's in the same round
    # (rounds interleave the targets, so a round's ratio shares the machine's state of the moment).
    print("\n| target | x floor round by round: min / median / max |\n|---|---|")
    for t in targets[2:]:
        ratios = sorted(a / b for a, b in zip(t.per_round, floor.per_round, strict=True) if b)
        if ratios:
            print(f"| {t.label} | {ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conc", default="1,8,32")
    parser.add_argument("--n", type=int, default=400, help="requests per round per target")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="proxy worker processes per configuration")
    parser.add_argument("--only", help="comma-separated configuration labels to run (default: all)")
    parser.add_argument("--upstream", help="an already running OpenAI-compatible upstream (…/v1)")
    args = parser.parse_args()
    conc = [int(c) for c in args.conc.split(",")]
    configs = configurations(args.workers)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        configs = [c for c in configs if c.label in wanted]
    procs: Procs = []
    upstream = args.upstream
    with tempfile.TemporaryDirectory(prefix="guardproxy-bench-") as tmp:
        try:
            if not upstream:
                port = free_port()
                sim = start([str(BIN / "guardproxy"), "simulate", "--port", str(port)])
                procs.append(sim)
                upstream = f"http://127.0.0.1:{port}/v1"
                wait_ready(upstream + "/models", sim)
            targets, more = start_targets(configs, upstream, Path(tmp))
            procs += more
            settle(targets)
            asyncio.run(measure(targets, conc, args.n, args.rounds))
            report(targets, conc, args.workers)
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)


if __name__ == "__main__":
    main()
