"""Streamed responses through guardproxy vs direct: added time to first token, and throughput.

Starts the simulated upstream and one proxy process per configuration (real `guardproxy serve`,
one worker each): guards off, the streaming output guard (output_leak, canary on, the hold-back
window at its default), and the default pipeline plus output_leak. Both wire formats are driven
(OpenAI chat completions and Anthropic messages) by a small raw SSE client that stamps the first
byte and the first text token of every stream.

- TTFT: a 60-word answer paced at --token-ms per token (a model's pace); p50/p95 of the time to
  the first text token, and what the proxy adds over direct. The hold-back window shows here:
  text leaves once more than the window has arrived, so its cost is about window/4 tokens.
- Throughput: a --words-word answer with no pacing, sequential and at --conc streams at once;
  text characters per second through each target.
- CPU: the proxy process's own CPU time (user + system, from /proc) over the throughput runs,
  per stream and per upstream event, and its ratio to guards-off measured in the same run.

Targets are measured in interleaved rounds so machine drift hits all alike. Loopback only.

    python bench/stream_bench.py [--n 30] [--token-ms 20] [--words 2000] [--conc 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from overhead import BIN, free_port, start, wait_ready

STAGES = {
    "guards-off": "[]",
    "output_leak": '[{"name": "output_leak", "options": {"canary": true}}]',
    "default+output_leak": json.dumps([{"name": n} for n in
                                       ("limits", "quarantine", "injection", "tool_scope", "segregation")]
                                      + [{"name": "output_leak", "options": {"canary": True}}]),
}
SYSTEM = "You are a helpful assistant for the finance team. Answer briefly and cite the report. " * 3


@dataclass
class Sample:
    ttfb_ms: float
    ttft_ms: float
    total_ms: float
    chars: int
    events: int = 0


def body(api: str, words: int) -> bytes:
    text = " ".join(f"word{i % 97}" for i in range(words))
    user = {"role": "user", "content": f'Summarise the report. say "{text}"'}
    if api == "openai":
        return json.dumps({"model": "sim-gpt", "stream": True,
                           "messages": [{"role": "system", "content": SYSTEM}, user]}).encode()
    return json.dumps({"model": "sim-claude", "max_tokens": 4096, "stream": True, "system": SYSTEM,
                       "messages": [user]}).encode()


def text_of(api: str, data: bytes) -> str:
    if not data or data == b"[DONE]":
        return ""
    event = json.loads(data)
    if api == "openai":
        choices = event.get("choices") or [{}]
        return (choices[0].get("delta") or {}).get("content") or ""
    delta = event.get("delta") or {}
    return delta.get("text") or "" if event.get("type") == "content_block_delta" else ""


async def one(client: httpx.AsyncClient, url: str, api: str, payload: bytes) -> Sample:
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "bench"}
    start_t = time.perf_counter()
    first_byte = first_text = None
    chars, events, buf = 0, 0, b""
    async with client.stream("POST", url, content=payload, headers=headers) as r:
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code}: {(await r.aread())[:200]!r}")
        async for chunk in r.aiter_raw():
            now = time.perf_counter()
            first_byte = first_byte or now
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                events += 1
                data = b"\n".join(line[6:] for line in event.split(b"\n") if line.startswith(b"data: "))
                text = text_of(api, data)
                if text:
                    chars += len(text)
                    first_text = first_text or now
    end = time.perf_counter()
    ms = lambda t: ((t or end) - start_t) * 1000  # noqa: E731
    return Sample(ms(first_byte), ms(first_text), ms(end), chars, events)


async def configure(sim: str, token_ms: float) -> None:
    async with httpx.AsyncClient() as c:
        (await c.post(sim.removesuffix("/v1") + "/_sim/config", json={"token_ms": token_ms})).raise_for_status()


Results = dict[tuple[str, str, str], list[Sample]]  # (api, run, target) -> samples
CpuUse = dict[tuple[str, str], list[float]]  # (api, target) -> [cpu seconds, streams, events]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of one process so far (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(sim: str, targets: dict[str, str], pids: dict[str, int], args: argparse.Namespace,
                  cpu: CpuUse) -> Results:
    out: Results = defaultdict(list)
    paths = {"openai": "/chat/completions", "anthropic": "/messages"}
    limits = httpx.Limits(max_connections=args.conc * 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for api, path in paths.items():
            short, long_ = body(api, 60), body(api, args.words)
            await configure(sim, 0)
            for base in targets.values():  # warm-up
                await one(client, base + path, api, short)
            for r in range(args.rounds):
                order = list(targets.items()) if r % 2 == 0 else list(reversed(targets.items()))
                await configure(sim, args.token_ms)
                for label, base in order:
                    for _ in range(args.n // args.rounds):
                        out[(api, "ttft", label)].append(await one(client, base + path, api, short))
                await configure(sim, 0)
                for label, base in order:
                    used = cpu_seconds(pids.get(label))
                    runs = range(max(1, args.long_n // args.rounds))
                    seq = [await one(client, base + path, api, long_) for _ in runs]
                    out[(api, "seq", label)].extend(seq)
                    started = time.perf_counter()
                    batch = await asyncio.gather(*(one(client, base + path, api, long_) for _ in range(args.conc)))
                    wall = (time.perf_counter() - started) * 1000
                    out[(api, "conc", label)].append(Sample(0, 0, wall, sum(s.chars for s in batch)))
                    tally = cpu.setdefault((api, label), [0.0, 0.0, 0.0])
                    tally[0] += cpu_seconds(pids.get(label)) - used
                    tally[1] += len(seq) + len(batch)
                    tally[2] += sum(s.events for s in [*seq, *batch])
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def report(results: Results, labels: list[str], args: argparse.Namespace, cpu: CpuUse) -> None:
    for api in ("openai", "anthropic"):
        print(f"\n### {api}: proxy CPU over the throughput runs ({args.words}-word answers)\n")
        print("| target | CPU ms per stream | CPU µs per event | ratio to guards-off |")
        print("|---|---|---|---|")
        off = cpu.get((api, "guards-off"))
        for label in labels[1:]:
            used, streams, events = cpu[(api, label)]
            ratio = f"{(used / events) / (off[0] / off[2]):.2f}" if off and off[0] else "-"
            print(f"| {label} | {used / streams * 1000:.1f} | {used / max(events, 1) * 1e6:.1f} | {ratio} |")
        print(f"\n### {api}: time to first text token (60-word answer, {args.token_ms:g} ms/token upstream pace)\n")
        print("| target | first byte p50 ms | first text p50 ms | p95 ms | added p50 ms | added p95 ms |")
        print("|---|---|---|---|---|---|")
        direct = [s.ttft_ms for s in results[(api, "ttft", "direct")]]
        for label in labels:
            rs = results[(api, "ttft", label)]
            ttft = [s.ttft_ms for s in rs]
            d50, d95 = statistics.median(ttft) - statistics.median(direct), pct(ttft, .95) - pct(direct, .95)
            added = "" if label == "direct" else f"{d50:+.1f} | {d95:+.1f}"
            print(f"| {label} | {statistics.median(s.ttfb_ms for s in rs):.1f} | {statistics.median(ttft):.1f} | "
                  f"{pct(ttft, .95):.1f} | {added or ' | '} |")
        print(f"\n### {api}: throughput ({args.words}-word answer, no pacing)\n")
        print(f"| target | 1 stream: chars/s | ratio | {args.conc} streams: chars/s | ratio |")
        print("|---|---|---|---|---|")
        base_seq = base_conc = 0.0
        for label in labels:
            seq = results[(api, "seq", label)]
            conc = results[(api, "conc", label)]
            seq_rate = sum(s.chars for s in seq) / (sum(s.total_ms for s in seq) / 1000)
            conc_rate = sum(s.chars for s in conc) / (sum(s.total_ms for s in conc) / 1000)
            if label == "direct":
                base_seq, base_conc = seq_rate, conc_rate
            print(f"| {label} | {seq_rate:,.0f} | {seq_rate / base_seq:.2f} | {conc_rate:,.0f} | "
                  f"{conc_rate / base_conc:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="TTFT streams per target and API")
    parser.add_argument("--token-ms", type=float, default=20.0, help="upstream pace for the TTFT run")
    parser.add_argument("--words", type=int, default=2000, help="answer length for the throughput run")
    parser.add_argument("--long-n", type=int, default=4, help="sequential long streams per target and API")
    parser.add_argument("--conc", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    procs = [start([str(BIN / "guardproxy"), "simulate", "--port", str(port)])]
    sim = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(sim + "/models", procs[0])
        targets = {"direct": sim}
        pids: dict[str, int] = {}
        for label, stages in STAGES.items():
            p = free_port()
            procs.append(start([str(BIN / "guardproxy"), "serve", "--port", str(p), "--upstream", sim],
                               {"GUARDPROXY_STAGES": stages, "GUARDPROXY_LOG_LEVEL": "warning",
                                "GUARDPROXY_EVIDENCE__ENABLED": "false"}))
            wait_ready(f"http://127.0.0.1:{p}/healthz", procs[-1])
            targets[label] = f"http://127.0.0.1:{p}/v1"
            pids[label] = procs[-1].pid
        cpu: CpuUse = {}
        results = asyncio.run(measure(sim, targets, pids, args, cpu))
        report(results, list(targets), args, cpu)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
