"""What the MCP gateway adds to a `tools/call`: latency and CPU, through the proxy vs direct.

Starts the demo MCP tool server (`python -m proxy.mcp.demo_server`, the official SDK's MCPServer)
and one `guardproxy serve` in front of it (default pipeline, evidence on), each its own process.
A client session per target (initialize once, then `tools/call read_file` on a clean file) runs in
interleaved rounds, so machine drift hits both alike. Prints p50 / p99 per target, the latency the
proxy adds, and CPU time per call from /proc: the proxy process's, and the tool server's own in the
same run (the ratio is the figure least disturbed by other load on a shared machine).

    python bench/mcp_bench.py [--calls 300] [--rounds 3] [--conc 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from overhead import BIN, free_port, start

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "1"}}}
KEY = "gp-bench-key"


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.post(url, json=INIT, headers=HEADERS | {"authorization": f"Bearer {KEY}"}, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up (exit {proc.poll()})")


async def session(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    r = await http.post(url, json=INIT, headers=HEADERS)
    headers = HEADERS | {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


async def calls(url: str, n: int, conc: int) -> list[float]:
    times: list[float] = []
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {KEY}"}, timeout=30) as http:
        headers = await session(http, url)

        async def one(i: int) -> None:
            body = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                    "params": {"name": "read_file", "arguments": {"path": "notes.txt"}}}
            t = time.perf_counter()
            r = await http.post(url, json=body, headers=headers)
            assert r.status_code == 200 and "Quarterly" in r.text, r.text[:200]
            times.append(time.perf_counter() - t)

        for start_i in range(0, n, conc):
            await asyncio.gather(*(one(i) for i in range(start_i, min(n, start_i + conc))))
    return times


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conc", type=int, default=1)
    args = ap.parse_args()
    tool_port, proxy_port = free_port(), free_port()
    tmp = Path(tempfile.mkdtemp(prefix="gp-mcp-bench-"))
    config = tmp / "gp.yaml"
    policy = tmp / "policy.yaml"  # the operator declares the tool as a read, as in README's example
    policy.write_text("kind: policy\nversion: 1\ntools:\n  files.read_file: {scope: read}\n")
    config.write_text(f"port: {proxy_port}\nevidence_dir: {tmp / 'evidence'}\npolicy_file: {policy}\n"
                      f"mcp_servers: [{{name: files, url: 'http://127.0.0.1:{tool_port}/mcp'}}]\n"
                      f"mcp: {{pins_path: {tmp / 'pins.json'}}}\nlog_level: warning\n")
    tool = start([sys.executable, "-m", "proxy.mcp.demo_server", str(tool_port)])
    proxy = start([str(BIN / "guardproxy"), "serve", "--config", str(config)])
    direct_url, proxy_url = f"http://127.0.0.1:{tool_port}/mcp", f"http://127.0.0.1:{proxy_port}/mcp/files"
    try:
        wait(direct_url, tool)
        wait(proxy_url, proxy)
        asyncio.run(calls(proxy_url, 30, 1))  # warm: rules, first pins, evidence store
        asyncio.run(calls(direct_url, 30, 1))
        lat: dict[str, list[float]] = {"direct": [], "proxy": []}
        cpu = {"proxy": 0.0, "tool_direct": 0.0, "tool_via_proxy": 0.0}
        for _ in range(args.rounds):
            t0 = cpu_s(tool.pid)
            lat["direct"] += asyncio.run(calls(direct_url, args.calls, args.conc))
            t1, p1 = cpu_s(tool.pid), cpu_s(proxy.pid)
            lat["proxy"] += asyncio.run(calls(proxy_url, args.calls, args.conc))
            t2, p2 = cpu_s(tool.pid), cpu_s(proxy.pid)
            cpu["tool_direct"] += t1 - t0
            cpu["tool_via_proxy"] += t2 - t1
            cpu["proxy"] += p2 - p1
    finally:
        for proc in (proxy, tool):
            proc.terminate()
            proc.wait(10)
    n = args.calls * args.rounds
    print(f"tools/call read_file, {n} calls per target in {args.rounds} interleaved rounds, concurrency {args.conc}")
    print(f"{'target':8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for label, xs in lat.items():
        print(f"{label:8} {pct(xs, .5):8.2f} {pct(xs, .99):8.2f} {statistics.mean(xs) * 1000:8.2f}")
    print(f"added by the proxy: p50 {pct(lat['proxy'], .5) - pct(lat['direct'], .5):.2f} ms, "
          f"mean {(statistics.mean(lat['proxy']) - statistics.mean(lat['direct'])) * 1000:.2f} ms")
    proxy_us = cpu["proxy"] / n * 1e6
    tool_us = cpu["tool_direct"] / n * 1e6
    print(f"CPU per call: proxy {proxy_us:.0f} us; tool server {tool_us:.0f} us (direct), "
          f"{cpu['tool_via_proxy'] / n * 1e6:.0f} us (via proxy); proxy / tool server = {proxy_us / tool_us:.2f}")


if __name__ == "__main__":
    main()
