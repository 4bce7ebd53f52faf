"""CPU per guard stage on the overhead benchmark's ~4 KB request, sans I/O.

Runs what the proxy does to one chat completion between reading the body and writing the answer,
without sockets, telemetry or evidence: parse the request, build the Exchange, the input stages,
render the upstream body, parse the simulator's answer, the output stages, render the answer. The
request is `overhead.py`'s conversation and the answer is what the built-in simulator returns to
it. Each step and each stage (through the pipeline's stage hook, so the pipeline's own per-stage
work is in the figure) is timed in process CPU time; it prints p50 and mean in microseconds over
many iterations, and the default stages' sum beside the issue's target of 300 us.

    .venv/bin/python bench/stages_bench.py [--n 3000] [--stages limits,quarantine,...] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from overhead import DEFAULT_STAGES, conversation

from proxy.guards.registry import build_pipeline
from proxy.model import Exchange, Phase, Timings
from proxy.pipeline import Pipeline
from proxy.policy.store import PolicyStore
from proxy.providers.openai_chat import OPENAI
from proxy.settings import Settings, StageSettings
from proxy.simulator import replies
from proxy.simulator.grammar import decide
from proxy.simulator.openai_api import read_transcript

TARGET_STAGES_US = 300.0
Samples = dict[str, list[int]]


def simulated_answer(body: dict[str, Any]) -> bytes:
    """What the simulated upstream answers to `body` (as the overhead benchmark sees it)."""
    transcript = read_transcript(body)
    reply = replies.build_reply(body, transcript, decide(transcript))
    return json.dumps(replies.chat_completion(reply, body["model"])).encode()


class Clock:
    """Process CPU time per named step and per stage, in nanoseconds."""

    def __init__(self) -> None:
        self.samples: Samples = defaultdict(list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.process_time_ns()
        try:
            yield
        finally:
            self.samples[name].append(time.process_time_ns() - start)

    def stage(self, exchange: Exchange, name: str, phase: Phase) -> Any:
        return self.step(f"{phase.value}:{name}")


async def one(pipeline: Pipeline, policies: PolicyStore, raw: bytes, answer: bytes, clock: Clock, i: int) -> None:
    """One exchange, step by step as the relay does it (minus sockets, telemetry, evidence)."""
    with clock.step("total"):
        with clock.step("parse request"):
            body = json.loads(raw)
            conv = OPENAI.parse(body)
        policy = policies.current
        client = policy.authenticate(None)
        exchange = Exchange(request_id=f"req-{i}", conversation=conv, client=client.name, policy=policy,
                            client_policy=client, received_conversation=conv, timings=Timings())
        with clock.step("input stages"):
            verdict = await pipeline.run(exchange, Phase.INPUT)
        assert verdict.kind.value != "block", exchange.decisions
        with clock.step("render request"):
            out = OPENAI.render(exchange.conversation)
            content = raw if out is exchange.conversation.raw else json.dumps(out).encode()
        assert content
        with clock.step("parse answer"):
            parsed = json.loads(answer)
            exchange.output = OPENAI.parse_output(parsed)
        with clock.step("output stages"):
            verdict = await pipeline.run(exchange, Phase.OUTPUT)
        with clock.step("render answer"):
            data = answer
            if verdict.kind.value == "transform" and exchange.output is not None:
                data = json.dumps(OPENAI.render_output(parsed, exchange.output)).encode()
        assert data


async def drive(pipeline: Pipeline, policies: PolicyStore, n: int, clock: Clock) -> None:
    raw = conversation()
    answer = simulated_answer(json.loads(raw))
    for i in range(min(n, 300)):  # warm-up: lazy imports, caches
        await one(pipeline, policies, raw, answer, Clock(), i)
    for i in range(n):
        await one(pipeline, policies, raw, answer, clock, i)


def report(clock: Clock, stages: list[str]) -> None:
    def row(label: str, ns: list[int]) -> str:
        return f"{label:<28}{statistics.median(ns) / 1000:>9.1f}{statistics.fmean(ns) / 1000:>9.1f}"

    print(f"{'step / stage':<28}{'p50 us':>9}{'mean us':>9}   (process CPU, n={len(clock.samples['total'])})")
    for name in ("parse request", "render request", "parse answer", "render answer"):
        print(row(name, clock.samples[name]))
    for phase in ("input", "output"):
        for stage in stages:
            key = f"{phase}:{stage}"
            if key in clock.samples:
                print(row(key, clock.samples[key]))
    print(row("input stages (pipeline)", clock.samples["input stages"]))
    print(row("output stages (pipeline)", clock.samples["output stages"]))
    both = [a + b for a, b in zip(clock.samples["input stages"], clock.samples["output stages"], strict=True)]
    print(row("all stages", both))
    print(row("total", clock.samples["total"]))
    print(f"stages sum p50 {statistics.median(both) / 1000:.1f} us vs target {TARGET_STAGES_US:.0f} us "
          f"({statistics.median(both) / 1000 / TARGET_STAGES_US:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--stages", default=",".join(DEFAULT_STAGES))
    ap.add_argument("--profile", action="store_true", help="cProfile the measured loop (top 40 by tottime)")
    args = ap.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    settings = Settings(stages=[StageSettings(name=s, failure_mode="open" if s == "quarantine" else "closed")
                                for s in stages])
    pipeline = build_pipeline(settings)
    clock = Clock()
    pipeline.stage_hook = clock.stage
    policies = PolicyStore(settings.policy_path)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    asyncio.run(drive(pipeline, policies, args.n, clock))
    if args.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(40)
    report(clock, stages)


if __name__ == "__main__":
    main()
