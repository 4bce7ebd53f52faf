"""What guardproxy adds over calling the upstream directly: req/s and p50/p99 at c = 1, 8, 32.

Starts the simulated upstream and one proxy process per configuration (each a real
`guardproxy serve`, one worker), then drives every target with the raw-socket load client in
interleaved rounds (direct, proxies..., direct, ...) so machine drift hits all alike. The request
is a ~4 KB conversation with a tool call and a tool result. Loopback only; every loop is bounded.

    python bench/overhead.py [--conc 1,8,32] [--n 400] [--rounds 2] [--transports aiohttp,httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from loadclient import Result, run

BIN = Path(sys.executable).parent


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


Procs = list[subprocess.Popen[bytes]]


def start_targets(transports: list[str], upstream: str) -> tuple[dict[str, str], Procs]:
    targets, procs = {"direct": upstream + "/chat/completions"}, []
    configs = [(f"guards-off/{t}", t, "[]") for t in transports]
    configs.append((f"default/{transports[0]}", transports[0], ""))
    for label, transport, stages in configs:
        port = free_port()
        env = {"GUARDPROXY_UPSTREAM_TRANSPORT": transport, "GUARDPROXY_LOG_LEVEL": "warning"}
        if stages:
            env["GUARDPROXY_STAGES"] = stages
        procs.append(start([str(BIN / "guardproxy"), "serve", "--port", str(port), "--upstream", upstream], env))
        wait_ready(f"http://127.0.0.1:{port}/healthz")
        targets[label] = f"http://127.0.0.1:{port}/v1/chat/completions"
    return targets, procs


async def measure(targets: dict[str, str], conc: list[int], n: int, rounds: int) -> dict[tuple[str, int], list[Result]]:
    body = conversation()
    results: dict[tuple[str, int], list[Result]] = defaultdict(list)
    for c in conc:
        for label, url in targets.items():  # warm-up
            await run(label, url, body, c, min(n, 100))
        for r in range(rounds):
            order = list(targets.items())
            for label, url in order if r % 2 == 0 else reversed(order):
                results[(label, c)].append(await run(label, url, body, c, n))
    return results


def merged(rs: list[Result]) -> Result:
    return Result(rs[0].label, rs[0].concurrency, [x for r in rs for x in r.latencies_ms],
                  sum(r.errors for r in rs), sum(r.seconds for r in rs))


def report(results: dict[tuple[str, int], list[Result]], conc: list[int], labels: list[str]) -> None:
    print(f"\nbody={len(conversation())} bytes; one proxy worker; ms are per request\n")
    print("| target | c | req/s | p50 ms | p99 ms | added p50 | added p99 | req/s ratio | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in conc:
        direct = merged(results[("direct", c)])
        d99 = direct.pct(0.99)
        print(f"| direct | {c} | {direct.rps:.0f} | {direct.p50:.2f} | {d99:.2f} | | | | {direct.errors} |")
        for label in labels:
            r = merged(results[(label, c)])
            print(f"| {label} | {c} | {r.rps:.0f} | {r.p50:.2f} | {r.pct(0.99):.2f} | "
                  f"{r.p50 - direct.p50:+.2f} | {r.pct(0.99) - direct.pct(0.99):+.2f} | "
                  f"{r.rps / direct.rps:.3f} | {r.errors} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conc", default="1,8,32")
    parser.add_argument("--n", type=int, default=400, help="requests per round per target")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--transports", default="aiohttp,httpx")
    parser.add_argument("--upstream", help="an already running OpenAI-compatible upstream (…/v1)")
    args = parser.parse_args()
    conc = [int(c) for c in args.conc.split(",")]
    procs = []
    upstream = args.upstream
    if not upstream:
        port = free_port()
        procs.append(start([str(BIN / "guardproxy"), "simulate", "--port", str(port)]))
        upstream = f"http://127.0.0.1:{port}/v1"
        wait_ready(upstream + "/models")
    try:
        targets, more = start_targets(args.transports.split(","), upstream)
        procs += more
        results = asyncio.run(measure(targets, conc, args.n, args.rounds))
        report(results, conc, [t for t in targets if t != "direct"])
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
