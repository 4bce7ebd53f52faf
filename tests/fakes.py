"""First-class fakes: a scriptable guard that allows, transforms, blocks, raises or sleeps."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

from proxy.model import (
    Action,
    Decision,
    Exchange,
    Finding,
    Phase,
    Severity,
    Vector,
    Verdict,
    VerdictKind,
)


@dataclass
class FakeGuard:
    name: str = "fake"
    behaviour: str = "allow"  # allow | transform | block | raise | sleep | find | withhold_calls
    sleep_s: float = 0.0
    replacement: str = "[rewritten]"
    keep_calls: int = 0
    phases: frozenset[Phase] = frozenset({Phase.INPUT})
    calls: list[Phase] = field(default_factory=list)

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        self.calls.append(phase)
        if self.sleep_s:
            await asyncio.sleep(self.sleep_s)
        if self.behaviour == "raise":
            raise RuntimeError("fake guard exploded")
        if self.behaviour == "block":
            return Verdict(
                VerdictKind.BLOCK,
                findings=(self.finding(),),
                decision=Decision(stage=self.name, action=Action.BLOCK, reasons=("fake block",)),
                error_code="fake_block",
                message="blocked by the fake guard",
            )
        if self.behaviour == "transform":
            conv = exchange.conversation
            last = conv.segments[-1].index
            return Verdict(VerdictKind.TRANSFORM, conversation=conv.with_text(last, self.replacement))
        if self.behaviour == "withhold_calls" and phase is Phase.OUTPUT and exchange.output is not None:
            # Output phase: drop every tool call but the first `keep_calls`, and say so in the text.
            out = exchange.output
            kept = out.tool_calls[: self.keep_calls]
            notice = f" [{self.name}: {len(out.tool_calls) - len(kept)} call(s) withheld]"
            return Verdict(
                VerdictKind.TRANSFORM,
                decision=Decision(stage=self.name, action=Action.TAG, reasons=("fake withhold",)),
                output=dataclasses.replace(out, text=out.text + notice, tool_calls=kept),
            )
        if self.behaviour == "find":
            return Verdict(
                findings=(self.finding(),),
                decision=Decision(stage=self.name, action=Action.TAG, severity=Severity.MEDIUM),
            )
        return Verdict()

    def finding(self) -> Finding:
        return Finding(
            rule_id=f"{self.name}.rule", category="test", severity=Severity.MEDIUM,
            vector=Vector.DIRECT, segment_index=0, span=(0, 1), excerpt="x",
        )
