"""Source quarantine as a stage: "block or rate-limit the source".

Before the scan: a client key in cool-down gets 429 with Retry-After; untrusted content from a
source in cool-down, or whose hash a reviewer flagged as poisoned (policy `poisoned_content`), is
withheld from the model behind a clear marker. After the exchange (`observe`): each enforced
detection counts against the client key and, for indirect ones, the source; past the client's
threshold in the window, that key or source cools down.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy.model import Action, Decision, Exchange, Phase, Segment, Trust, Vector, Verdict, VerdictKind
from proxy.policy.spec import ClientPolicy
from proxy.quarantine.counters import Counters, MemoryCounters, RedisCounters
from proxy.settings import Settings

log = logging.getLogger("guardproxy.quarantine")
WITHHELD = "[guardproxy: content from {what} withheld: {why}]"


def source_key(seg: Segment) -> str | None:
    """What a retrieved segment is counted under: a URL's host, else the document or tool name."""
    source = seg.provenance.source
    if not source:
        return None
    host = urlsplit(source).hostname if "://" in source else None
    return f"{seg.provenance.kind}:{host or source}"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class QuarantineGuard:
    counters: Counters = field(default_factory=MemoryCounters)
    name: str = "quarantine"
    phases: frozenset[Phase] = frozenset({Phase.INPUT})

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        client_key = _client_key(exchange)
        left = await self.counters.remaining(f"client:{client_key}")
        if left > 0:
            return _cooling_down(exchange.client, left)
        poisoned = exchange.policy.poisoned_content if exchange.policy else frozenset()
        conv = exchange.conversation
        reasons: list[str] = []
        for seg in conv.untrusted():
            why = await self._withhold_reason(seg, poisoned)
            if why:
                conv = conv.with_text(seg.index, WITHHELD.format(what=source_key(seg) or "a retrieved source", why=why))
                reasons.append(f"segment {seg.index} ({source_key(seg)}): {why}")
        if not reasons:
            return Verdict()
        decision = Decision(stage=self.name, action=Action.SEGREGATE, reasons=tuple(reasons))
        return Verdict(VerdictKind.TRANSFORM, decision=decision, conversation=conv)

    async def _withhold_reason(self, seg: Segment, poisoned: frozenset[str]) -> str | None:
        if content_hash(seg.text) in poisoned:
            return "content flagged as poisoned by a reviewer"
        key = source_key(seg)
        if key and await self.counters.remaining(f"source:{key}") > 0:
            return "source in quarantine after repeated detections"
        return None

    async def observe(self, exchange: Exchange) -> None:
        """Count this exchange's enforced detections; start cool-downs past the threshold."""
        findings = [f for f in exchange.findings if f.mode == "enforce"]
        if not findings:
            return
        rule = (exchange.client_policy or ClientPolicy()).quarantine
        await self._count(f"client:{_client_key(exchange)}", rule.threshold, rule.window_s, rule.cooldown_s)
        received = exchange.received_conversation or exchange.conversation
        sources = {
            source_key(received.segments[f.segment_index])
            for f in findings
            if f.vector is Vector.INDIRECT and f.segment_index < len(received.segments)
            and received.segments[f.segment_index].trust is Trust.UNTRUSTED
        }
        for key in sorted(s for s in sources if s):
            await self._count(f"source:{key}", rule.threshold, rule.window_s, rule.cooldown_s)

    async def _count(self, key: str, threshold: int, window_s: int, cooldown_s: int) -> None:
        if await self.counters.hit(key, window_s) >= threshold:
            await self.counters.cool_down(key, cooldown_s)
            log.warning("quarantine: %s cools down for %ss after %s detections in %ss",
                        key, cooldown_s, threshold, window_s)

    async def close(self) -> None:
        await self.counters.close()

    async def start(self) -> None:
        return None


def _client_key(exchange: Exchange) -> str:
    return str(exchange.attributes.get("client_key_id") or exchange.client)


def _cooling_down(client: str, left: float) -> Verdict:
    seconds = max(1, int(left + 0.999))
    message = f"client {client!r} is in quarantine after repeated injection detections; retry in {seconds}s"
    return Verdict(
        VerdictKind.BLOCK,
        decision=Decision(stage="quarantine", action=Action.BLOCK, reasons=(message,)),
        status_code=429, error_type="rate_limit_error", error_code="client_quarantined",
        message=message, retry_after=seconds,
    )


def build(settings: Settings, options: dict[str, Any]) -> QuarantineGuard:
    url = options.get("redis_url")
    return QuarantineGuard(counters=RedisCounters(str(url)) if url else MemoryCounters())

