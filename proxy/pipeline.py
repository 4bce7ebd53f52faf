"""Runs the ordered guards of one phase over an Exchange.

This is the only writer of an Exchange's findings, decisions and stage records. Each guard runs
under its own timeout; a guard that raises or times out gets its failure mode (closed blocks with
503 guardrail_unavailable, open lets the request pass) and is always recorded as not scanned.
The first block short-circuits: later guards are recorded as skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from proxy.guards.base import Guard, InlineGuard, SyncGuard
from proxy.model import (
    CLEAN,
    Action,
    Decision,
    Exchange,
    Phase,
    StageRecord,
    StageStatus,
    Verdict,
    VerdictKind,
)
from proxy.settings import StageSettings

log = logging.getLogger("guardproxy.pipeline")
_TRANSFORMED = Verdict(VerdictKind.TRANSFORM)  # frozen: the phase verdict of every rewritten request
# Wraps each stage run (telemetry's `guardrail.stage` span); the app sets it, default does nothing.
StageHook = Callable[[Exchange, str, Phase], AbstractContextManager[None]]


def no_stage_hook(exchange: Exchange, name: str, phase: Phase) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass(frozen=True, slots=True)
class Stage:
    guard: Guard
    settings: StageSettings
    # The guard's plain `check` when it has one (decided once here, not per request).
    check: Callable[[Exchange, Phase], Verdict] | None = field(init=False, default=None)
    # Its `inline` when it has one: an answer without a coroutine or a deadline, or None.
    inline: Callable[[Exchange, Phase], Verdict | None] | None = field(init=False, default=None)

    @property
    def sync(self) -> bool:
        """It may answer without being awaited (a plain `check`, or an `inline` answer)."""
        return self.check is not None or self.inline is not None

    def __post_init__(self) -> None:
        if isinstance(self.guard, SyncGuard):
            object.__setattr__(self, "check", self.guard.check)
        elif isinstance(self.guard, InlineGuard):
            object.__setattr__(self, "inline", self.guard.inline)

    @property
    def name(self) -> str:
        return self.guard.name


def failure_verdict(stage: str, failure_mode: str, detail: str) -> Verdict:
    """The one failure-mode policy: a guard that could not run (raised, timed out, or its stream
    inspector failed) blocks when it fails closed, and lets the exchange pass when it fails open.
    Either way its stage is recorded as not scanned (ERROR/TIMEOUT), never as a clean pass."""
    if failure_mode == "open":
        return Verdict()
    reason = f"guard {stage!r} could not run ({detail}); it fails closed"
    return Verdict(
        VerdictKind.BLOCK,
        decision=Decision(stage=stage, action=Action.BLOCK, reasons=(reason,)),
        status_code=503,
        error_type="guardrail_unavailable",
        error_code="guardrail_unavailable",
        message=reason,
    )


class Pipeline:
    """An explicit, ordered list of stages; reading it tells what happens to a request."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self.stage_hook: StageHook = no_stage_hook
        # Each phase's stages, in order, found once (most stages run in one phase only).
        self._in_phase = {phase: tuple(s for s in self.stages if phase in s.guard.phases) for phase in Phase}

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def subset(self, stages: Sequence[Stage]) -> Pipeline:
        """Some of these stages, in their configured order and configured alike (hooks too): a stream
        runs the output stages that have no stream inspector so, at the end of the model's turn."""
        sub = Pipeline(stages)
        sub.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("stages", "_in_phase")})
        return sub

    def record(
        self,
        exchange: Exchange,
        stage: str,
        phase: Phase,
        verdict: Verdict,
        *,
        status: StageStatus = StageStatus.OK,
        detail: str = "",
        duration_ms: float = 0.0,
    ) -> None:
        """Record a verdict reached outside `run` (a stream inspector's), exactly as `run` would."""
        exchange.stages.append(StageRecord(stage, phase, status, verdict.kind, duration_ms, detail))
        self._apply(exchange, verdict, phase)

    async def run(self, exchange: Exchange, phase: Phase) -> Verdict:
        """Run every stage of `phase`: the block verdict if one blocked, else transform or allow."""
        blocked: Verdict | None = None
        transformed = False
        for stage in self._in_phase[phase]:
            if blocked is not None or not stage.settings.enabled:
                why = "disabled" if not stage.settings.enabled else "short-circuited by a block"
                exchange.stages.append(
                    StageRecord(stage.name, phase, StageStatus.SKIPPED, None, 0.0, why)
                )
                continue
            if self.stage_hook is no_stage_hook:  # tracing off: no span, so no context to enter
                # A stage that answers without waiting is called as a plain function: no
                # coroutine is made for it (the common case: every default stage, most requests).
                found = self._run_now(stage, exchange, phase)
                verdict = found if found is not None else await self._run_awaited(stage, exchange, phase)
            else:
                with self.stage_hook(exchange, stage.name, phase):
                    verdict = await self._run_stage(stage, exchange, phase)
            if verdict.kind is VerdictKind.BLOCK:
                blocked = verdict
            transformed = transformed or verdict.kind is VerdictKind.TRANSFORM
        if blocked is not None:
            return blocked
        return _TRANSFORMED if transformed else CLEAN

    def _run_now(self, stage: Stage, exchange: Exchange, phase: Phase) -> Verdict | None:
        """A stage with a plain `check` or an `inline` answer, run and recorded without a coroutine;
        None when it has neither or `inline` declines (then it must be awaited: `_run_awaited`)."""
        if not stage.sync:
            return None
        start = time.perf_counter()
        status, detail = StageStatus.OK, ""
        try:
            if stage.check is not None:
                # Never waits, so no deadline: asyncio can only interrupt a guard where it awaits.
                verdict = stage.check(exchange, phase)
            else:
                assert stage.inline is not None
                found = stage.inline(exchange, phase)
                if found is None:
                    return None
                verdict = found
        except Exception as exc:  # a guard's own failure, never a decision
            verdict, status, detail = self._failed(stage, exc)
        return self._record(stage, exchange, phase, verdict, start, status, detail)

    async def _run_awaited(self, stage: Stage, exchange: Exchange, phase: Phase) -> Verdict:
        start = time.perf_counter()
        status, detail = StageStatus.OK, ""
        try:
            # A deadline in this task, not wait_for's: that wraps each stage in a task of its own.
            async with asyncio.timeout(stage.settings.timeout_s):
                verdict = await stage.guard.inspect(exchange, phase)
        except TimeoutError:
            status, detail = StageStatus.TIMEOUT, f"exceeded {stage.settings.timeout_s}s"
            verdict = failure_verdict(stage.name, stage.settings.failure_mode, detail)
        except Exception as exc:  # a guard's own failure, never a decision
            verdict, status, detail = self._failed(stage, exc)
        return self._record(stage, exchange, phase, verdict, start, status, detail)

    async def _run_stage(self, stage: Stage, exchange: Exchange, phase: Phase) -> Verdict:
        found = self._run_now(stage, exchange, phase)
        return found if found is not None else await self._run_awaited(stage, exchange, phase)

    @staticmethod
    def _failed(stage: Stage, exc: Exception) -> tuple[Verdict, StageStatus, str]:
        log.exception("stage %s failed", stage.name)
        detail = f"{type(exc).__name__}: {exc}"
        return failure_verdict(stage.name, stage.settings.failure_mode, detail), StageStatus.ERROR, detail

    def _record(self, stage: Stage, exchange: Exchange, phase: Phase, verdict: Verdict, start: float,
                status: StageStatus, detail: str) -> Verdict:
        elapsed = (time.perf_counter() - start) * 1000
        exchange.stages.append(StageRecord(stage.name, phase, status, verdict.kind, elapsed, detail))
        self._apply(exchange, verdict, phase)
        return verdict

    @staticmethod
    def _apply(exchange: Exchange, verdict: Verdict, phase: Phase) -> None:
        exchange.findings.extend(verdict.findings)
        if verdict.decision is not None:
            exchange.decisions.append(verdict.decision)
        if verdict.kind is not VerdictKind.TRANSFORM:
            return
        if phase is Phase.INPUT and verdict.conversation is not None:
            exchange.conversation = verdict.conversation
        if phase is Phase.OUTPUT and verdict.output is not None:
            # Evidence shows what the model produced, withheld tool calls included.
            exchange.attributes.setdefault("upstream_output", exchange.output)
            exchange.output = verdict.output
