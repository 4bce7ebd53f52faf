"""The pipeline: order, transforms, blocks, short-circuit, timeouts and failure modes."""

from __future__ import annotations

import asyncio

from fakes import FakeGuard

from proxy.model import Exchange, Phase, StageStatus, Verdict, VerdictKind
from proxy.pipeline import Pipeline, Stage
from proxy.providers import openai_chat
from proxy.settings import StageSettings


def exchange() -> Exchange:
    conv = openai_chat.parse({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    return Exchange(request_id="r", conversation=conv)


def pipe(*guards: FakeGuard, **settings: object) -> Pipeline:
    return Pipeline([Stage(g, StageSettings(name=g.name, **settings)) for g in guards])  # type: ignore[arg-type]


async def test_allow_runs_every_stage_in_order() -> None:
    a, b = FakeGuard("a"), FakeGuard("b")
    ex = exchange()
    verdict = await pipe(a, b).run(ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.ALLOW
    assert [(r.name, r.status) for r in ex.stages] == [("a", StageStatus.OK), ("b", StageStatus.OK)]


async def test_transform_is_applied_and_seen_by_the_next_stage() -> None:
    ex = exchange()
    await pipe(FakeGuard("t", "transform", replacement="new")).run(ex, Phase.INPUT)
    assert ex.conversation.segments[-1].text == "new"
    assert ex.received_conversation is None or ex.received_conversation.segments[-1].text == "hi"


async def test_block_short_circuits_and_later_stages_read_skipped() -> None:
    blocker, after = FakeGuard("blocker", "block"), FakeGuard("after")
    ex = exchange()
    verdict = await pipe(blocker, after).run(ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.BLOCK and verdict.error_code == "fake_block"
    assert after.calls == []
    assert [r.status for r in ex.stages] == [StageStatus.OK, StageStatus.SKIPPED]
    assert ex.findings and ex.decisions[0].action.value == "block"


async def test_raising_guard_fails_closed_by_default() -> None:
    ex = exchange()
    verdict = await pipe(FakeGuard("boom", "raise")).run(ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.BLOCK
    assert (verdict.status_code, verdict.error_type) == (503, "guardrail_unavailable")
    assert ex.stages[0].status is StageStatus.ERROR and "exploded" in ex.stages[0].detail


async def test_fail_open_passes_but_records_not_scanned() -> None:
    ex = exchange()
    verdict = await pipe(FakeGuard("boom", "raise"), failure_mode="open").run(ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.ALLOW
    assert ex.stages[0].status is StageStatus.ERROR


async def test_timeout_is_its_own_status() -> None:
    ex = exchange()
    verdict = await pipe(FakeGuard("slow", sleep_s=1.0), timeout_s=0.05).run(ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.BLOCK and verdict.status_code == 503
    assert ex.stages[0].status is StageStatus.TIMEOUT


async def test_disabled_stage_is_skipped_not_passed() -> None:
    g = FakeGuard("off", "block")
    ex = exchange()
    verdict = await pipe(g, enabled=False).run(ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.ALLOW and g.calls == []
    assert ex.stages[0].status is StageStatus.SKIPPED and ex.stages[0].detail == "disabled"


async def test_guard_runs_only_in_its_phases() -> None:
    g = FakeGuard("in")
    ex = exchange()
    await pipe(g).run(ex, Phase.OUTPUT)
    assert g.calls == [] and ex.stages == []


async def test_a_transform_anywhere_makes_the_phase_verdict_transform() -> None:
    ex = exchange()
    verdict = await pipe(FakeGuard("t", "transform"), FakeGuard("a")).run(ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.TRANSFORM



class Checked:
    """A guard with a plain check (never waits) whose inspect would sleep past any deadline."""

    name = "checked"
    phases = frozenset({Phase.INPUT})

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.checks = 0

    def check(self, exchange: Exchange, phase: Phase) -> Verdict:
        self.checks += 1
        if self.behaviour == "raise":
            raise RuntimeError("check exploded")
        return Verdict(VerdictKind.BLOCK if self.behaviour == "block" else VerdictKind.ALLOW)

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        await asyncio.sleep(1.0)
        return self.check(exchange, phase)


async def test_a_guard_with_a_plain_check_is_called_directly_without_a_deadline() -> None:
    guard = Checked("block")
    ex = exchange()
    verdict = await pipe(guard, timeout_s=0.05).run(ex, Phase.INPUT)  # type: ignore[arg-type]
    assert guard.checks == 1 and verdict.kind is VerdictKind.BLOCK
    assert [(r.name, r.status) for r in ex.stages] == [("checked", StageStatus.OK)]


async def test_a_plain_check_that_raises_gets_the_failure_mode() -> None:
    ex = exchange()
    verdict = await pipe(Checked("raise")).run(ex, Phase.INPUT)  # type: ignore[arg-type]
    assert verdict.kind is VerdictKind.BLOCK and verdict.status_code == 503
    assert ex.stages[0].status is StageStatus.ERROR and "check exploded" in ex.stages[0].detail


class SometimesInline:
    """Answers in line when it can (`answer` set), else only through a slow `inspect`."""

    name = "sometimes"
    phases = frozenset({Phase.INPUT})

    def __init__(self, answer: Verdict | None, raise_inline: bool = False) -> None:
        self.answer = answer
        self.raise_inline = raise_inline
        self.inspected = 0

    def inline(self, exchange: Exchange, phase: Phase) -> Verdict | None:
        if self.raise_inline:
            raise RuntimeError("inline exploded")
        return self.answer

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        self.inspected += 1
        await asyncio.sleep(1.0)
        return Verdict()


async def test_an_inline_answer_is_taken_without_awaiting_inspect() -> None:
    guard = SometimesInline(Verdict(VerdictKind.BLOCK, error_code="inline_block"))
    ex = exchange()
    verdict = await pipe(guard, timeout_s=0.05).run(ex, Phase.INPUT)  # type: ignore[arg-type]
    assert verdict.kind is VerdictKind.BLOCK and verdict.error_code == "inline_block"
    assert guard.inspected == 0 and ex.stages[0].status is StageStatus.OK


async def test_no_inline_answer_falls_back_to_inspect_under_its_deadline() -> None:
    guard = SometimesInline(None)
    ex = exchange()
    verdict = await pipe(guard, timeout_s=0.05).run(ex, Phase.INPUT)  # type: ignore[arg-type]
    assert guard.inspected == 1
    assert ex.stages[0].status is StageStatus.TIMEOUT and verdict.kind is VerdictKind.BLOCK


async def test_an_inline_answer_that_raises_gets_the_failure_mode() -> None:
    ex = exchange()
    verdict = await pipe(SometimesInline(None, raise_inline=True)).run(ex, Phase.INPUT)  # type: ignore[arg-type]
    assert verdict.status_code == 503 and ex.stages[0].status is StageStatus.ERROR
    assert "inline exploded" in ex.stages[0].detail
