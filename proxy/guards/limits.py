"""Input limits: caps the size of a conversation before any scan or upstream work.

Cheap and first in the chain, so an oversized request costs nothing downstream (the body-size
limit itself is enforced earlier, while the body is read).
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.model import CLEAN, Action, Decision, Exchange, Phase, Verdict, VerdictKind
from proxy.providers import api_named


@dataclass
class LimitsGuard:
    max_messages: int
    max_input_chars: int
    max_tools: int = 128
    name: str = "limits"
    phases: frozenset[Phase] = frozenset({Phase.INPUT})

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        return self.check(exchange, phase)

    def check(self, exchange: Exchange, phase: Phase) -> Verdict:
        conv = exchange.conversation
        n_messages = api_named(conv.api).message_count(conv.raw) if conv.raw else len(conv.segments)
        problems = []
        if n_messages > self.max_messages:
            problems.append(f"{n_messages} messages exceed the limit of {self.max_messages}")
        chars = conv.char_count()
        if chars > self.max_input_chars:
            problems.append(f"{chars} characters of input exceed the limit of {self.max_input_chars}")
        if len(conv.tools) > self.max_tools:
            problems.append(f"{len(conv.tools)} tools exceed the limit of {self.max_tools}")
        if not problems:
            return CLEAN
        message = "request exceeds input limits: " + "; ".join(problems)
        return Verdict(
            VerdictKind.BLOCK,
            decision=Decision(stage=self.name, action=Action.BLOCK, reasons=tuple(problems)),
            status_code=413,
            error_type="invalid_request_error",
            error_code="input_limit_exceeded",
            message=message,
        )
