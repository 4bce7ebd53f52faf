"""Scan benchmark: throughput of the default rule set and the CPU the injection stage costs per request.

Builds realistic chat conversations of about 4 KB and 64 KB (system prompt, user turns, assistant
turns, tool results as serialised records, a retrieved web page in markdown) from synthetic text
written here, or from a JSONL corpus's `text` fields with `--corpus PATH`. Prints end-to-end
MB/s (normalise + decode + match + learned layer over every scanned segment) and the median / p99
the `injection` stage adds per request, with the engine's scan cache off (every text judged: the
cost of new text), against the targets (>= 25 MB/s, p99 <= 1 ms at 4 KB). Then the stage's CPU
per request on the overhead benchmark's request (bench/overhead.py): cache off (all text new), cache
on with a new user message each request (history resent, as agent loops do every turn), and cache
on with the identical request resent (the best case, not typical). With `--corpus` the conversations are as
attack-dense and multilingual as that corpus: a worst case, not typical traffic.

    .venv/bin/python bench/scan_bench.py [--corpus FILE.jsonl] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overhead import conversation as overhead_request

from proxy.guards.injection import build
from proxy.model import Exchange, Phase
from proxy.providers import openai_chat
from proxy.rules.cache import MAX_ENTRIES
from proxy.settings import DEFAULT_RULES_DIR, Settings

TARGET_MBPS = 25.0
TARGET_P99_MS = 1.0
TARGET_STAGE_US = 100.0  # the injection stage's share of issue 17's 0.3 ms for six stages
TARGET_LEARNED_P99_MS = 1.0

SUBJECTS = ["the quarterly report", "our onboarding guide", "the release checklist", "the hotel booking",
            "the customer's invoice", "the deployment script", "the budget spreadsheet", "the team meeting"]
VERBS = ["summarises", "describes", "lists", "explains", "updates", "references", "links to", "covers"]
OBJECTS = ["the main risks", "three open questions", "the new pricing tiers", "travel dates in May",
           "error handling in the parser", "the approval workflow", "next steps for the pilot",
           "the vendor's contact details"]
TAILS = ["before Friday.", "for the board.", "in section two.", "with a short example.",
         "as agreed last week.", "in the appendix.", "so nobody is surprised.", "and nothing else."]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"


def paragraph(rng: random.Random, n: int) -> str:
    return " ".join(sentence(rng) for _ in range(n))


def record(rng: random.Random, i: int) -> str:
    return (
        f"- id_: '{i}'\n  sender: user{i}@example.com\n  subject: {rng.choice(SUBJECTS)}\n"
        f"  body: '{paragraph(rng, 3)}'\n  timestamp: 2026-03-{i % 28 + 1:02d} 10:{i % 60:02d}\n"
    )


def page(rng: random.Random) -> str:
    return (
        f"# {rng.choice(SUBJECTS).title()}\n\n{paragraph(rng, 4)}\n\n"
        f"- {sentence(rng)}\n- {sentence(rng)}\n\n```python\ntotal = sum(x for x in rows)\n```\n"
        f"See [the docs](https://docs.example.com/guide?lang=en) for {rng.choice(OBJECTS)}.\n"
    )


def synthetic_pieces(rng: random.Random) -> list[tuple[str, str]]:
    kind = rng.random()
    if kind < 0.35:
        return [("user", paragraph(rng, rng.randint(1, 4)))]
    if kind < 0.55:
        return [("assistant", paragraph(rng, rng.randint(2, 5)))]
    if kind < 0.8:
        return [("tool", "".join(record(rng, rng.randint(0, 999)) for _ in range(rng.randint(1, 3))))]
    return [("tool", page(rng))]


def corpus_pieces(texts: list[str], rng: random.Random) -> list[tuple[str, str]]:
    return [(rng.choice(["user", "tool"]), rng.choice(texts))]


def conversation(size: int, rng: random.Random, texts: list[str] | None) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a careful assistant."}]
    total = 0
    call = 0
    while total < size:
        for role, text in corpus_pieces(texts, rng) if texts else synthetic_pieces(rng):
            text = text[: size - total] or "."
            if role == "tool":
                call += 1
                fn = {"name": "fetch", "arguments": "{}"}
                messages.append({"role": "assistant", "content": None,
                                 "tool_calls": [{"id": f"c{call}", "type": "function", "function": fn}]})
                messages.append({"role": "tool", "tool_call_id": f"c{call}", "content": text})
            else:
                messages.append({"role": role, "content": text})
            total += len(text)
    messages.append({"role": "user", "content": "Thanks, please answer briefly."})
    return {"model": "bench", "messages": messages}


def scanned_bytes(ex: Exchange) -> int:
    return sum(len(s.text.encode()) for s in ex.conversation.segments if s.trust.value != "trusted")


def throughput(guard: Any, bodies: list[dict[str, Any]], rounds: int) -> tuple[float, float]:
    """(wall-clock MB/s, CPU-time MB/s), each the best of five passes: on a shared machine the
    best pass is the one least disturbed by other processes (as `timeit` reports the minimum)."""
    exchanges = [Exchange(request_id="b", conversation=openai_chat.parse(b)) for b in bodies]
    size = sum(scanned_bytes(e) for e in exchanges) * rounds
    for ex in exchanges:
        guard._scan(ex)  # warm the RE2 DFA caches, as a running proxy would be
    best_wall = best_cpu = 0.0
    for _ in range(5):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            for ex in exchanges:
                guard._scan(ex)
        best_wall = max(best_wall, size / (time.perf_counter() - wall) / 1e6)
        best_cpu = max(best_cpu, size / max(time.process_time() - cpu, 1e-9) / 1e6)
    return best_wall, best_cpu


def latency(guard: Any, bodies: list[dict[str, Any]], rounds: int) -> tuple[float, float, float, float]:
    """Median and p99 milliseconds of the stage's `inspect` per request: wall-clock, then CPU time
    (on a shared machine the wall-clock tail is mostly other processes' time slices)."""
    async def run() -> tuple[list[float], list[float]]:
        wall, cpu = [], []
        for _ in range(rounds):
            for body in bodies:
                ex = Exchange(request_id="b", conversation=openai_chat.parse(body))
                started, cpu_started = time.perf_counter(), time.process_time_ns()
                await guard.inspect(ex, Phase.INPUT)
                cpu.append((time.process_time_ns() - cpu_started) / 1e6)
                wall.append((time.perf_counter() - started) * 1000)
        return sorted(wall), sorted(cpu)

    wall, cpu = asyncio.run(run())
    p99 = int(len(wall) * 0.99) - 1
    return statistics.median(wall), wall[p99], statistics.median(cpu), cpu[p99]


def learned_cost(bodies: list[dict[str, Any]], rounds: int) -> tuple[float, float] | None:
    """Median and p99 CPU milliseconds of the learned layer alone per conversation: featurise and
    score every user and untrusted segment in one batch, as the engine does (normalisation excluded:
    the rules share it)."""
    from proxy.detect.model import shipped
    from proxy.detect.train import view_text

    model = shipped()
    convs = [[view_text(s.text) for s in openai_chat.parse(b).segments if s.trust.value != "trusted"]
             for b in bodies]
    samples = []
    for _ in range(rounds):
        for texts in convs:
            started = time.process_time_ns()
            model.score_many(texts)
            samples.append((time.process_time_ns() - started) / 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


HOSTILE_WORDS = ["ignore", "previous", "instructions", "system", "prompt", "you", "are", "now", "assistant",
                 "admin", "secret", "password", "send", "email", "to", "all", "rules", "disregard", "forget",
                 "override", "developer", "mode", "reveal", "the", "act", "as"]


def hostile(size: int, rng: random.Random) -> str:
    """Key words of the rules mixed with random letter runs: every stretch of it is new to the RE2
    DFA, which then builds states as it goes instead of reusing them (the worst case per byte)."""
    out: list[str] = []
    total = 0
    while total < size:
        word = rng.choice(HOSTILE_WORDS) if rng.random() < 0.6 else "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 8)))
        out.append(word)
        total += len(word) + 1
    return " ".join(out)[:size]


def hostile_cpu_mbps(guard: Any, size: int, rng: random.Random) -> float:
    """CPU MB/s of the engine over fresh hostile text read as untrusted (cache off)."""
    engine = guard.store.live.engine
    from proxy.model import Trust

    engine.scan(hostile(size, rng), Trust.UNTRUSTED)  # warm-up
    texts = [hostile(size, rng) for _ in range(2)]
    started = time.process_time()
    for text in texts:
        engine.scan(text, Trust.UNTRUSTED)
    return sum(len(t) for t in texts) / max(time.process_time() - started, 1e-9) / 1e6


def request_cpu(guard: Any, body: dict[str, Any], n: int, vary: bool = False) -> tuple[float, float]:
    """Median and p99 CPU microseconds of the stage's `inspect` per request, the body parsed afresh
    each time (new string objects, as a server sees them). With `vary`, the user's message is new
    in every request (same size) while the rest of the conversation is resent."""
    async def run() -> list[float]:
        samples = []
        for i in range(n):
            fresh = json.loads(json.dumps(body))
            if vary:
                user = next(m for m in fresh["messages"] if m["role"] == "user")
                user["content"] = f"{user['content'][:-9]} #{i:07d}"
            ex = Exchange(request_id="b", conversation=openai_chat.parse(fresh))
            started = time.process_time_ns()
            await guard.inspect(ex, Phase.INPUT)
            samples.append((time.process_time_ns() - started) / 1000)
        return samples

    samples = sorted(asyncio.run(run()))
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="JSONL file whose `text` fields fill the conversations")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES_DIR)
    args = parser.parse_args()
    texts = None
    if args.corpus:
        lines = args.corpus.read_text(encoding="utf-8").split("\n")
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
    rng = random.Random(7)
    guard = build(Settings(rules_dir=args.rules), {})
    # As a server does after start-up: long-lived objects (compiled rules, tables) leave the
    # cyclic GC's generations, so a collection mid-request does not walk them.
    gc.collect()
    gc.freeze()
    print(f"rule set {guard.store.live.ruleset.digest}, {len(guard.store.live.ruleset.rules)} rules, "
          f"source: {'corpus' if texts else 'synthetic'}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    engine = guard.store.live.engine
    engine.cache.max_entries = 0  # every text judged: the cost of text the proxy has not seen
    print("scan cache off (every segment judged):")
    print(f"{'size':>6} {'MB/s':>8} {'MB/s cpu':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'cpu p99':>8}")
    for size in (4096, 65536):
        bodies = [conversation(size, rng, texts) for _ in range(50 if size == 4096 else 8)]
        mbps, cpu_mbps = throughput(guard, bodies, args.rounds)
        p50, p99, cpu50, cpu99 = latency(guard, bodies, args.rounds)
        print(f"{size // 1024:>4}KB {mbps:>8.1f} {cpu_mbps:>9.1f} {p50:>8.3f} {p99:>8.3f} {cpu50:>8.3f} {cpu99:>8.3f}")
        if size == 4096:
            verdict = "ok" if cpu_mbps >= TARGET_MBPS and cpu99 <= TARGET_P99_MS else "MISSES TARGET"
            print(f"       4 KB targets (CPU): >= {TARGET_MBPS} MB/s, p99 <= {TARGET_P99_MS} ms: {verdict}")
            cost = learned_cost(bodies, args.rounds)
            if cost is not None:
                ok = "ok" if cost[1] <= TARGET_LEARNED_P99_MS else "MISSES TARGET"
                print(f"       learned layer alone per 4 KB conversation (CPU): p50 {cost[0]:.3f} ms, "
                      f"p99 {cost[1]:.3f} ms (target p99 <= {TARGET_LEARNED_P99_MS} ms): {ok}")
    print(f"hostile text (rule key words among random letters, 64 KB, cache off): "
          f"{hostile_cpu_mbps(guard, 65536, rng):.2f} MB/s CPU (RE2 builds DFA states per byte: see README)")
    body = json.loads(overhead_request())
    n = args.rounds * 50
    request_cpu(guard, body, 20)  # warm-up
    cold = request_cpu(guard, body, n)
    engine.cache.max_entries = MAX_ENTRIES
    new_message = request_cpu(guard, body, n, vary=True)
    warm = request_cpu(guard, body, n)
    print(f"overhead benchmark request ({len(overhead_request())} bytes), injection stage CPU per request, "
          f"{n} requests:")
    rows = (("cache off (all text new)", cold), ("cache on, new user message", new_message),
            ("cache on, identical resent", warm))
    for label, (p50, p99) in rows:
        ok = "ok" if p50 <= TARGET_STAGE_US else "MISSES"
        print(f"       {label:28} p50 {p50:7.1f} us  p99 {p99:7.1f} us  (target ~{TARGET_STAGE_US:.0f} us: {ok})")


if __name__ == "__main__":
    main()
