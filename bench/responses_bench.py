"""What a Responses API call costs in the proxy next to the same conversation as chat completions.

Starts the simulated upstream and one `guardproxy serve` (default pipeline, one worker), then
sends the same ~4 KB conversation (system text, user question, a tool call and its result) as a
chat completions body and as a Responses body, sequentially, in interleaved rounds. Prints the
proxy process's CPU per request (from /proc, so client and simulator are not counted) and the
added latency over calling the simulator directly, with the Responses / chat ratios measured in
the same run. Loopback only; every loop is bounded.

    python bench/responses_bench.py [--n 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from overhead import BIN, free_port, start, wait_ready

DOC = ("Quarterly report. Revenue grew in every region; costs were flat. " * 40)[:2600]
SYSTEM = "You are a helpful assistant for the finance team. " * 6
QUESTION = "Summarise the attached quarterly report in three bullets."
CALL = {"name": "fetch_report", "arguments": "{\"quarter\": \"Q3\"}"}
PARAMS = {"type": "object", "properties": {"quarter": {"type": "string"}}}


def chat_body() -> bytes:
    return json.dumps({"model": "sim-gpt", "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": CALL}]},
        {"role": "tool", "tool_call_id": "call_1", "content": DOC}],
        "tools": [{"type": "function", "function": {"name": "fetch_report", "description": "Fetch a report.",
                                                     "parameters": PARAMS}}]}).encode()


def responses_body() -> bytes:
    return json.dumps({"model": "sim-gpt", "instructions": SYSTEM, "input": [
        {"role": "user", "content": QUESTION}, {"type": "function_call", "call_id": "call_1", **CALL},
        {"type": "function_call_output", "call_id": "call_1", "output": DOC}],
        "tools": [{"type": "function", "name": "fetch_report", "description": "Fetch a report.",
                   "parameters": PARAMS}]}).encode()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(client: httpx.Client, url: str, body: bytes, n: int, pid: int | None) -> tuple[list[float], float]:
    latencies = []
    before = cpu_seconds(pid) if pid else 0.0
    for _ in range(n):
        start_t = time.perf_counter()
        response = client.post(url, content=body, headers={"content-type": "application/json",
                                                           "authorization": "Bearer k"})
        latencies.append((time.perf_counter() - start_t) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {response.text[:200]}")
    return latencies, ((cpu_seconds(pid) - before) / n * 1000 if pid else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="requests per round per target")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sim_port, proxy_port = free_port(), free_port()
    procs = [start([str(BIN / "guardproxy"), "simulate", "--port", str(sim_port)])]
    upstream = f"http://127.0.0.1:{sim_port}/v1"
    try:
        wait_ready(upstream + "/models", procs[0])
        procs.append(start([str(BIN / "guardproxy"), "serve", "--port", str(proxy_port), "--upstream", upstream],
                           {"GUARDPROXY_LOG_LEVEL": "warning"}))
        proxy = f"http://127.0.0.1:{proxy_port}/v1"
        wait_ready(proxy.removesuffix("/v1") + "/healthz", procs[1])
        pid = procs[1].pid
        targets = {
            "chat direct": (upstream + "/chat/completions", chat_body(), None),
            "responses direct": (upstream + "/responses", responses_body(), None),
            "chat via proxy": (proxy + "/chat/completions", chat_body(), pid),
            "responses via proxy": (proxy + "/responses", responses_body(), pid),
        }
        lat: dict[str, list[float]] = {k: [] for k in targets}
        cpu: dict[str, list[float]] = {k: [] for k in targets}
        with httpx.Client(timeout=30) as client:
            for url, body, p in targets.values():  # warm-up
                run(client, url, body, 50, p)
            for r in range(args.rounds):
                order = list(targets.items())
                for label, (url, body, p) in order if r % 2 == 0 else reversed(order):
                    ms, cpu_ms = run(client, url, body, args.n, p)
                    lat[label] += ms
                    cpu[label].append(cpu_ms)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    print(f"\nchat body {len(chat_body())} B, responses body {len(responses_body())} B; "
          f"{args.rounds} x {args.n} sequential requests each; default pipeline, one worker\n")
    print("| API | proxy CPU ms/request | p50 ms | added p50 ms |")
    print("|---|---|---|---|")
    for api in ("chat", "responses"):
        added = p50[f"{api} via proxy"] - p50[f"{api} direct"]
        print(f"| {api} | {statistics.mean(cpu[f'{api} via proxy']):.3f} | {p50[f'{api} via proxy']:.2f} | "
              f"{added:+.2f} |")
    ratio_cpu = statistics.mean(cpu["responses via proxy"]) / statistics.mean(cpu["chat via proxy"])
    added_chat = p50["chat via proxy"] - p50["chat direct"]
    added_resp = p50["responses via proxy"] - p50["responses direct"]
    print(f"\nresponses / chat: CPU per request {ratio_cpu:.2f}x, added p50 {added_resp / added_chat:.2f}x")


if __name__ == "__main__":
    main()
