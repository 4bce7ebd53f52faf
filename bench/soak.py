"""A bounded soak: the default pipeline under steady load, memory and errors sampled over time.

Starts the simulator and one `guardproxy serve` worker, drives it at a fixed concurrency with the
raw-socket client in slices, and prints per slice: req/s, p50/p99, errors and the proxy's RSS.
Flat RSS and no error growth is the pass condition; it stops by itself after --seconds.

    python bench/soak.py [--seconds 600] [--conc 8] [--slice 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from loadclient import run
from overhead import BIN, conversation, free_port, start, wait_ready


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(url: str, pid: int, seconds: float, conc: int, slice_s: float) -> None:
    body = conversation()
    print("| t (s) | req/s | p50 ms | p99 ms | errors | proxy RSS MiB |")
    print("|---|---|---|---|---|---|")
    start_t = time.monotonic()
    first_rss = rss_mib(pid)
    while time.monotonic() - start_t < seconds:
        r = await run("soak", url, body, conc, total=10**9, max_seconds=slice_s)
        now = time.monotonic() - start_t
        print(f"| {now:.0f} | {r.rps:.0f} | {r.p50:.2f} | {r.pct(0.99):.2f} | {r.errors} | {rss_mib(pid):.1f} |",
              flush=True)
    print(f"\nRSS first slice {first_rss:.1f} MiB -> last {rss_mib(pid):.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--conc", type=int, default=8)
    parser.add_argument("--slice", type=float, default=30)
    args = parser.parse_args()
    up_port, proxy_port = free_port(), free_port()
    procs = [start([str(BIN / "guardproxy"), "simulate", "--port", str(up_port)])]
    try:
        wait_ready(f"http://127.0.0.1:{up_port}/v1/models", procs[0])
        proxy = start([str(BIN / "guardproxy"), "serve", "--port", str(proxy_port),
                       "--upstream", f"http://127.0.0.1:{up_port}/v1"], {"GUARDPROXY_LOG_LEVEL": "warning"})
        procs.append(proxy)
        wait_ready(f"http://127.0.0.1:{proxy_port}/healthz", proxy)
        asyncio.run(soak(f"http://127.0.0.1:{proxy_port}/v1/chat/completions", proxy.pid,
                         args.seconds, args.conc, args.slice))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
