"""PII benchmark: the `pii` stage on a 2 KB request against Presidio run blindly, and detection parity.

Builds realistic ~2 KB chat requests (system prompt, a user turn with a few personal details, a
retrieved support ticket with dates, order numbers and versions) from synthetic text written
here. Prints the median / p99 of (a) the `pii` input stage as the pipeline runs it (pre-filter,
windows, thread hop) and (b) blind Presidio (`AnalyzerEngine.analyze` over each segment, all
configured entities), and checks that both find exactly the same entities and spans. Target:
stage median <= 3 ms on 2 KB. A number-dense variant shows the worst case honestly.

    .venv/bin/python bench/pii_bench.py [--requests N]
    .venv/bin/python bench/pii_bench.py --dates   # re-check the analyzer's date rule (~3 min)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.guards.pii import build
from proxy.model import Exchange, Phase
from proxy.pii import analyzer as analyzer_mod
from proxy.providers import openai_chat
from proxy.settings import Settings

TARGET_MEDIAN_MS = 3.0
PII = ["jane.roe@example.org", "+1 415-555-0132", "(212) 555-0199", "4111 1111 1111 1111",
       "DE89 3704 0044 0532 0130 00", "192.168.14.7", "536-22-8726", "bob.smith@corp.io"]
PROSE = ("The customer wrote in about the invoice for order #{n} placed on 2024-0{m}-1{d}. "
         "They could not log in after the upgrade to version 3.{d}.1 and the page showed error 50{d}. "
         "Our agent reset the session, checked the billing history for the last {d} months and "
         "escalated the ticket to tier two, who confirmed the fix in build 2024.{m}. ")
DENSE = "ref {a}-{b}-{c} qty {d} sku {a}{b}{c} at 10:3{d} on 2024-0{d}-1{d}; "


def request(rng: random.Random, dense: bool = False) -> dict[str, object]:
    user = (f"Hi, I'm following up on my ticket. You can reach me at {rng.choice(PII[:2])} "
            f"or {rng.choice(PII[1:3])}. Please summarise the ticket below.")
    parts: list[str] = []
    while sum(map(len, parts)) < 1700:
        if dense:
            parts.append(DENSE.format(a=rng.randrange(100, 999), b=rng.randrange(10, 99),
                                      c=rng.randrange(1000, 9999), d=rng.randrange(1, 9)))
        else:
            parts.append(PROSE.format(n=rng.randrange(10_000, 99_999), m=rng.randrange(1, 9),
                                      d=rng.randrange(1, 9)))
    ticket = "".join(parts)
    cut = rng.randrange(len(ticket) // 2)
    ticket = ticket[:cut] + f" Card on file: {rng.choice(PII[3:])}. " + ticket[cut:]
    return {"model": "m", "messages": [
        {"role": "system", "content": "You are a support assistant. Be brief."},
        {"role": "user", "content": user},
        {"role": "user", "content": f"<untrusted source=\"ticket://4412\">{ticket}</untrusted>"},
    ]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(n: int, dense: bool) -> None:
    analyzer_mod.CACHE_WINDOWS = 0  # every request is new: no help from the window cache
    guard = build(Settings(), {"actions": {"default": "tag"}})
    await guard.start()
    analyzer = guard.analyzer
    analyzer._cache.clear()
    rng = random.Random(11 if dense else 7)
    bodies = [request(rng, dense) for _ in range(n)]
    chars = statistics.mean(len(s.text) for b in bodies for s in openai_chat.parse(b).segments)
    stage, blind, mismatches = [], [], 0
    for n_req, body in enumerate(bodies):
        conv = openai_chat.parse(body)
        texts = [s.text for s in conv.segments]
        ex = Exchange(request_id=f"r{n_req}", conversation=conv)
        start = time.perf_counter()
        await guard.inspect(ex, Phase.INPUT)
        stage.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        reference = [analyzer.analyze_blind(t) for t in texts]
        blind.append((time.perf_counter() - start) * 1000)
        fast = [analyzer.analyze(t) for t in texts]
        mismatches += fast != reference
    total = sum(len(s.text) for s in openai_chat.parse(bodies[0]).segments)
    label = "number-dense" if dense else "realistic"
    print(f"{label}: {n} requests of ~{total} chars in {len(bodies[0]['messages'])} segments "  # type: ignore[arg-type]
          f"(mean segment {chars:.0f} chars)")
    print(f"  pii stage   median {statistics.median(stage):6.2f} ms   p99 {pct(stage, 0.99):6.2f} ms")
    print(f"  blind       median {statistics.median(blind):6.2f} ms   p99 {pct(blind, 0.99):6.2f} ms")
    print(f"  speed-up    x{statistics.median(blind) / statistics.median(stage):.1f}; "
          f"detections differing from blind Presidio: {mismatches}/{n}")
    if not dense:
        ok = statistics.median(stage) <= TARGET_MEDIAN_MS and mismatches == 0
        print(f"  target median <= {TARGET_MEDIAN_MS} ms without losing detections: {'PASS' if ok else 'FAIL'}")


def check_dates() -> None:
    """Every day of 1900-2099 in the formats NEVER_PHONE skips: the recognizer must match none."""
    import datetime

    from proxy.pii.analyzer import NEVER_PHONE, shared_analyzer

    analyzer = shared_analyzer()
    analyzer.warm()
    [phone] = [r for r in analyzer._get().registry.recognizers if r.name == "PhoneRecognizer"]
    formats = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%d/%m/%Y", "%m/%d/%Y", "%Y-%-m-%-d", "%-d/%-m/%Y",
               "%-m/%-d/%Y", "%d/%m/%y", "%m/%d/%y"]
    day, checked, matched = datetime.date(1900, 1, 1), 0, []
    while day.year < 2100:
        for fmt in formats:
            text = day.strftime(fmt)
            assert NEVER_PHONE.fullmatch(text), text
            checked += 1
            if phone.analyze(f"on {text} at", ["PHONE_NUMBER"]):
                matched.append(text)
        day += datetime.timedelta(days=1)
    print(f"dates checked: {checked}; matched by the phone recognizer: {len(matched)} {matched[:5]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--dates", action="store_true", help="re-check the date rule exhaustively")
    args = parser.parse_args()
    if args.dates:
        check_dates()
        return
    asyncio.run(measure(args.requests, dense=False))
    asyncio.run(measure(args.requests // 3, dense=True))


if __name__ == "__main__":
    main()
