"""CPU per guard stage on the overhead benchmark's ~4 KB request, sans I/O.

Runs what the proxy does to one chat completion between reading the body and writing the answer,
without sockets, telemetry or evidence: parse the request, build the Exchange, the input stages,
render the upstream body, parse the simulator's answer, the output stages, render the answer. The
request is `overhead.py`'s conversation and the answer is what the built-in simulator returns to
it. Each step and each stage (through the pipeline's stage hook, so the pipeline's own per-stage
work is in the figure) is timed in process CPU time; it prints p50 and mean in microseconds over
many iterations, and the default stages' sum beside the issue's target of 300 us.

Every request differs from the one before, so per-text caches (the rule engine's scan cache) are
measured honestly: by default its last user message is new (history resent, as real traffic does)
beside the identical request resent (what such caches make of `overhead.py`'s repeated request);
`--modes all-new` makes every message new, the system prompt too.

`--answer-link` appends a sentence with two links to the answer (one to a host only the
retrieved report names, one to a host the user named): the cost of output_leak's answer-link
check on a tainted request whose answer has links, beside the default answer that has none.

    .venv/bin/python bench/stages_bench.py [--n 3000] [--modes new,resent,all-new] [--stages ...] [--profile]
        [--answer-link]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from overhead import DEFAULT_STAGES, MODES, conversation, variant

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


LINKS = (" Details: https://reports.evil.example/q3?id=7 and the summary at "
         "https://finance.corp.example/q3.")


def simulated_answer(body: dict[str, Any], link: bool = False) -> bytes:
    """What the simulated upstream answers to `body` (as the overhead benchmark sees it)."""
    transcript = read_transcript(body)
    reply = replies.build_reply(body, transcript, decide(transcript))
    answer = replies.chat_completion(reply, body["model"])
    if link:
        answer["choices"][0]["message"]["content"] += LINKS
    return json.dumps(answer).encode()


class Step:
    """Process CPU time of each pass through a `with` block, in nanoseconds (a plain class: the
    timer's own cost is measured once and taken off every sample)."""

    __slots__ = ("_start", "samples")

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._start = 0

    def __enter__(self) -> None:
        self._start = time.process_time_ns()

    def __exit__(self, *exc: object) -> None:
        self.samples.append(time.process_time_ns() - self._start)


class Clock:
    """One Step per named step and per stage (the pipeline's stage hook hands them out)."""

    def __init__(self, per_stage: bool = True) -> None:
        self.steps: dict[str, Step] = defaultdict(Step)
        self.per_stage = per_stage

    def step(self, name: str) -> Step:
        return self.steps[name]

    def stage(self, exchange: Exchange, name: str, phase: Phase) -> AbstractContextManager[None]:
        return self.steps[f"{phase.value}:{name}"] if self.per_stage else nullcontext()

    @property
    def samples(self) -> Samples:
        return {name: step.samples for name, step in self.steps.items()}


def timer_cost_ns(n: int = 20_000) -> int:
    """What one timed `with` block costs with nothing in it (median of n)."""
    step = Step()
    for _ in range(n):
        with step:
            pass
    return int(statistics.median(step.samples))


async def one(pipeline: Pipeline, policies: PolicyStore, raw: bytes, answer: bytes, clock: Clock, i: int) -> None:
    """One exchange, step by step as the relay does it (minus sockets, telemetry, evidence)."""
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


async def drive(pipeline: Pipeline, policies: PolicyStore, n: int, clock: Clock, mode: str, run: int,
                link: bool = False) -> None:
    raw = conversation()
    if link:  # the user names the summary's host: that link is vouched for, the other is not
        body = json.loads(raw)
        body["messages"][1]["content"] = "Link the summary on finance.corp.example. " + body["messages"][1]["content"]
        raw = json.dumps(body).encode()
    answer = simulated_answer(json.loads(raw), link)
    # Numbered on from earlier runs: no pass re-sends a text another pass has already had judged.
    bodies = [variant(raw, run * (n + 300) + i, mode) for i in range(n + 300)]
    for i in range(min(n, 300)):  # warm-up: lazy imports, caches (never with a measured request's text)
        await one(pipeline, policies, bodies[n + i], answer, Clock(), i)
    gc.collect()
    gc.freeze()  # as the app does at start-up: rules and models are not re-scanned by the GC
    for i in range(n):
        await one(pipeline, policies, bodies[i], answer, clock, i)


ADAPTER_STEPS = ("parse request", "render request", "parse answer", "render answer")


def rows(per_stage: Clock, whole: Clock, stages: list[str], cost_ns: int) -> dict[str, list[int]]:
    """Samples per printed row, net of the timer's own cost."""
    out = {name: [x - cost_ns for x in whole.samples[name]] for name in ADAPTER_STEPS}
    for phase in ("input", "output"):
        for stage in stages:
            key = f"{phase}:{stage}"
            if key in per_stage.samples:  # each with the pipeline's own work for it (deadline, record)
                out[key] = [x - cost_ns for x in per_stage.samples[key]]
    out["input stages (pipeline)"] = [x - cost_ns for x in whole.samples["input stages"]]
    out["output stages (pipeline)"] = [x - cost_ns for x in whole.samples["output stages"]]
    out["all stages"] = [a + b for a, b in zip(out["input stages (pipeline)"], out["output stages (pipeline)"],
                                               strict=True)]
    out["adapter steps"] = [sum(x) for x in zip(*(out[k] for k in ADAPTER_STEPS), strict=True)]
    return out


def report(results: dict[str, dict[str, list[int]]], n: int, cost_ns: int) -> None:
    modes = list(results)
    print(f"process CPU per request in us, p50 / mean over n={n}, net of the timer's own {cost_ns / 1000:.1f} us")
    for mode in modes:
        print(f"  {mode}: {MODES[mode]}")
    print(f"{'step / stage':<28}" + "".join(f"{mode + ' p50':>14}{'mean':>8}" for mode in modes))
    for name in results[modes[0]]:
        cells = "".join(f"{statistics.median(results[m][name]) / 1000:>14.1f}"
                        f"{statistics.fmean(results[m][name]) / 1000:>8.1f}" for m in modes)
        print(f"{name:<28}{cells}")
    for mode in modes:
        median = statistics.median(results[mode]["all stages"]) / 1000
        print(f"stages together, {mode}: p50 {median:.1f} us vs target {TARGET_STAGES_US:.0f} us "
              f"({median / TARGET_STAGES_US:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--stages", default=",".join(DEFAULT_STAGES))
    ap.add_argument("--modes", default="new,resent", help=f"comma-separated, of: {', '.join(MODES)}")
    ap.add_argument("--profile", action="store_true", help="cProfile the first mode's measured loop")
    ap.add_argument("--answer-link", action="store_true", help="the answer carries two links (see above)")
    args = ap.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown mode(s) {', '.join(sorted(unknown))}; known: {', '.join(MODES)}")
    settings = Settings(stages=[StageSettings(name=s, failure_mode="open" if s == "quarantine" else "closed")
                                for s in stages])
    pipeline = build_pipeline(settings)
    policies = PolicyStore(settings.policy_path)
    cost_ns = timer_cost_ns()
    results = {}
    for number, mode in enumerate(modes):
        # Two passes: stage by stage (each figure has the pipeline's own work for that stage in it),
        # then the pipeline as it runs in the proxy, with no per-stage timer inside it.
        per_stage, whole = Clock(per_stage=True), Clock(per_stage=False)
        pipeline.stage_hook = per_stage.stage
        asyncio.run(drive(pipeline, policies, args.n, per_stage, mode, 2 * number, args.answer_link))
        pipeline.stage_hook = whole.stage
        prof = cProfile.Profile() if args.profile and mode == modes[0] else None
        if prof is not None:
            prof.enable()
        asyncio.run(drive(pipeline, policies, args.n, whole, mode, 2 * number + 1, args.answer_link))
        if prof is not None:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(int(os.environ.get("TOP", "40")))
        results[mode] = rows(per_stage, whole, stages, cost_ns)
    report(results, args.n, cost_ns)


if __name__ == "__main__":
    main()
