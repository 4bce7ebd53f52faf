"""What a Responses API call costs in the proxy next to the same conversation as chat completions.

Starts the simulated upstream and one `guardproxy serve` (default pipeline, one worker), then
sends the same ~4 KB conversation (system text, user question, a tool call and its result) as a
chat completions body and as a Responses body, sequentially, in interleaved rounds. Prints the
proxy process's CPU per request (from /proc, so client and simulator are not counted) and the
added latency over calling the simulator directly, with the Responses / chat ratios measured in
the same run. Loopback only; every loop is bounded.

`--sans-io` instead times, in process CPU, what the proxy does to each body between the socket
reads (parse, the default input stages, render, parse the answer, the output stages), with no
server, so the ratio is not blurred by a loaded machine.

    python bench/responses_bench.py [--n 300] [--rounds 3] [--sans-io]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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


ANSWER_TEXT = "Revenue grew in every region; costs were flat."


def _answers() -> tuple[bytes, bytes]:
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "sim-gpt", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER_TEXT}}]}
    responses = {"id": "resp_1", "object": "response", "status": "completed", "model": "sim-gpt", "output": [
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": ANSWER_TEXT, "annotations": []}]}]}
    return json.dumps(chat).encode(), json.dumps(responses).encode()


def sans_io(n: int, rounds: int) -> None:
    """Median process CPU of one exchange's in-process work per API, interleaved rounds."""
    import asyncio

    from proxy.guards.registry import build_pipeline
    from proxy.model import Exchange, Phase, Timings
    from proxy.policy.store import PolicyStore
    from proxy.providers import APIS
    from proxy.settings import Settings, StageSettings

    stages = ["limits", "quarantine", "injection", "tool_scope", "segregation", "output_leak"]
    settings = Settings(stages=[StageSettings(name=s, failure_mode="open" if s == "quarantine" else "closed")
                                for s in stages])
    pipeline, policies = build_pipeline(settings), PolicyStore(settings.policy_path)
    chat_answer, responses_answer = _answers()
    cases = {"chat": (APIS["openai.chat"], chat_body(), chat_answer),
             "responses": (APIS["openai.responses"], responses_body(), responses_answer)}

    async def one(api: Any, raw: bytes, answer: bytes, i: int) -> int:
        start_ns = time.process_time_ns()
        conv = api.parse(json.loads(raw))
        policy = policies.current
        client = policy.authenticate(None)
        exchange = Exchange(request_id=f"r{i}", conversation=conv, client=client.name, policy=policy,
                            client_policy=client, received_conversation=conv, timings=Timings())
        await pipeline.run(exchange, Phase.INPUT)
        api.render(exchange.conversation)
        exchange.output = api.parse_output(json.loads(answer))
        await pipeline.run(exchange, Phase.OUTPUT)
        return time.process_time_ns() - start_ns

    async def drive() -> dict[str, list[float]]:
        for api, raw, answer in cases.values():  # warm-up: lazy imports, caches
            for i in range(200):
                await one(api, raw, answer, i)
        medians: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(rounds):
            for label, (api, raw, answer) in cases.items():
                medians[label].append(statistics.median([await one(api, raw, answer, i) for i in range(n)]) / 1000)
        return medians

    medians = asyncio.run(drive())
    print(f"\nsans I/O, process CPU per exchange (parse, default stages, render, answer), {rounds} x {n}\n")
    print("| API | p50 us per round |")
    print("|---|---|")
    for label, values in medians.items():
        print(f"| {label} | {', '.join(f'{v:.0f}' for v in values)} |")
    ratios = [r / c for c, r in zip(medians["chat"], medians["responses"], strict=True)]
    print(f"\nresponses / chat: {statistics.median(ratios):.2f}x (per round {', '.join(f'{x:.2f}' for x in ratios)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="requests per round per target")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sans-io", action="store_true", help="in process, no servers (see above)")
    args = parser.parse_args()
    if args.sans_io:
        sans_io(args.n, args.rounds)
        return
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
    per_round = [r / c for c, r in zip(cpu["chat via proxy"], cpu["responses via proxy"], strict=True)]
    print(f"\nresponses / chat: CPU per request {ratio_cpu:.2f}x (per round "
          f"{', '.join(f'{x:.2f}' for x in per_round)}), added p50 {added_resp / added_chat:.2f}x")


if __name__ == "__main__":
    main()
