"""Source quarantine as a stage: "block or rate-limit the source".

Before the scan: a client key in cool-down gets 429 with Retry-After; untrusted content from a
source in cool-down, or whose hash a reviewer flagged as poisoned (policy `poisoned_content`), is
withheld from the model behind a clear marker. After the exchange (`observe`): each enforced
detection counts against the client key and, for indirect ones, the source; past the client's
threshold in the window, that key or source cools down.

No cross-tenant effects: a source is counted and cooled down per client key (what one key's
traffic taught us applies to that key). Only a source with a real identity, a URL's host or a
document's source, is also counted across keys, and it cools down for everyone only once
`threshold` *different* keys saw detections in it within the window: one key cannot withhold a
site from every other client. A bare tool name (`tool_result:read_inbox`) is not an identity: the
same tool returns different data to each client. With no client keys in the policy, keys are the
ones callers present (anyone can rotate them, so the client cool-down then only slows the careless).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy.model import CLEAN, Action, Decision, Exchange, Phase, Segment, Trust, Vector, Verdict, VerdictKind
from proxy.policy.spec import ClientPolicy
from proxy.quarantine.counters import Counters, MemoryCounters, RedisCounters
from proxy.settings import Settings

log = logging.getLogger("guardproxy.quarantine")
WITHHELD = "[guardproxy: content from {what} withheld: {why}]"
# Provenance kinds whose `source` names a document, not a tool: shared identity across clients.
DOCUMENT_KINDS = frozenset({"document", "search_result", "marked"})


def source_key(seg: Segment) -> str | None:
    """What a retrieved segment is counted under: a URL's host, else the document or tool name."""
    source = seg.provenance.source
    if not source:
        return None
    host = urlsplit(source).hostname if "://" in source else None
    return f"{seg.provenance.kind}:{host or source}"


def shared_identity(seg: Segment) -> str | None:
    """The source's identity across clients (URL host or document source), or None (tool names)."""
    source = seg.provenance.source
    if not source:
        return None
    host = urlsplit(source).hostname if "://" in source else None
    if host:
        return f"host:{host}"
    return f"document:{source}" if seg.provenance.kind in DOCUMENT_KINDS else None


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class QuarantineGuard:
    counters: Counters = field(default_factory=MemoryCounters)
    name: str = "quarantine"
    phases: frozenset[Phase] = frozenset({Phase.INPUT})

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        keys = _cool_down_keys(exchange)
        left = await self.counters.remaining_many(keys)  # one round trip to a shared store
        return self._judge(exchange, dict(zip(keys, left, strict=True)))

    async def withhold_reason(self, seg: Segment, client_key: str,
                              poisoned: frozenset[str] = frozenset()) -> str | None:
        """Why this retrieved segment would be withheld from this client key now (None: it would not)."""
        keys = [f"source:{client_key}:{source_key(seg)}", f"shared:{shared_identity(seg)}"]
        left = await self.counters.remaining_many(keys)
        return _withhold_reason(seg, poisoned, client_key, dict(zip(keys, left, strict=True)))

    def _judge(self, exchange: Exchange, left: dict[str, float]) -> Verdict:
        """The verdict, given the cool-down left on every key this exchange could hit."""
        client_key = _client_key(exchange)
        if left[f"client:{client_key}"] > 0:
            return _cooling_down(exchange, client_key, left[f"client:{client_key}"])
        poisoned = exchange.policy.poisoned_content if exchange.policy else frozenset()
        conv = exchange.conversation
        reasons: list[str] = []
        for seg in conv.untrusted():
            why = _withhold_reason(seg, poisoned, client_key, left)
            if why:
                conv = conv.with_text(seg.index, WITHHELD.format(what=source_key(seg) or "a retrieved source", why=why))
                reasons.append(f"segment {seg.index} ({source_key(seg)}): {why}")
        if not reasons:
            return CLEAN
        decision = Decision(stage=self.name, action=Action.SEGREGATE, reasons=tuple(reasons))
        return Verdict(VerdictKind.TRANSFORM, decision=decision, conversation=conv)

    async def observe(self, exchange: Exchange) -> None:
        """Count this exchange's enforced detections; start cool-downs past the threshold."""
        findings = [f for f in exchange.findings if f.mode == "enforce"]
        if not findings:
            return
        rule = (exchange.client_policy or ClientPolicy()).quarantine
        client_key = _client_key(exchange)
        await self._count(f"client:{client_key}", rule.threshold, rule.window_s, rule.cooldown_s)
        received = exchange.received_conversation or exchange.conversation
        segments = {
            f.segment_index: received.segments[f.segment_index]
            for f in findings
            if f.vector is Vector.INDIRECT and f.segment_index < len(received.segments)
            and received.segments[f.segment_index].trust is Trust.UNTRUSTED
        }
        keys = {k for k in (source_key(s) for s in segments.values()) if k}
        for key in sorted(keys):
            await self._count(f"source:{client_key}:{key}", rule.threshold, rule.window_s, rule.cooldown_s)
        for identity in sorted({i for i in (shared_identity(s) for s in segments.values()) if i}):
            clients = await self.counters.distinct(f"shared:{identity}", client_key, rule.window_s)
            if clients >= rule.threshold:
                await self.counters.cool_down(f"shared:{identity}", rule.cooldown_s)
                log.warning("quarantine: %s cools down for %ss for every client: %s different keys "
                            "saw detections in it within %ss", identity, rule.cooldown_s, clients, rule.window_s)

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
    """The key's id (a hash prefix of the presented key), else the policy client's name."""
    return str(exchange.attributes.get("client_key_id") or exchange.client)


def _cool_down_keys(exchange: Exchange) -> list[str]:
    """Every counter key whose cool-down could change this exchange: the client's, and each
    retrieved segment's source for this client and, with a shared identity, for everyone."""
    client_key = _client_key(exchange)
    keys = {f"client:{client_key}": None}
    for seg in exchange.conversation.untrusted():
        key, identity = source_key(seg), shared_identity(seg)
        if key:
            keys[f"source:{client_key}:{key}"] = None
        if identity:
            keys[f"shared:{identity}"] = None
    return list(keys)


def _withhold_reason(seg: Segment, poisoned: frozenset[str], client_key: str, left: dict[str, float]) -> str | None:
    if poisoned and content_hash(seg.text) in poisoned:  # no list, no hashing of every document
        return "content flagged as poisoned by a reviewer"
    key = source_key(seg)
    if key and left[f"source:{client_key}:{key}"] > 0:
        return "source in quarantine for this client after repeated detections in its content"
    identity = shared_identity(seg)
    if identity and left[f"shared:{identity}"] > 0:
        return "source in quarantine after detections in its content reported by several clients"
    return None


def _cooling_down(exchange: Exchange, client_key: str, left: float) -> Verdict:
    seconds = max(1, int(left + 0.999))
    policy = exchange.client_policy or ClientPolicy()
    rule = policy.quarantine
    key = f" (key {client_key[:8]})" if exchange.attributes.get("client_key_id") else ""
    message = (f"client {policy.name!r}{key} is in quarantine: {rule.threshold} or more requests with "
               f"enforced injection detections within {rule.window_s}s; retry in {seconds}s")
    return Verdict(
        VerdictKind.BLOCK,
        decision=Decision(stage="quarantine", action=Action.BLOCK, reasons=(message,)),
        status_code=429, error_type="rate_limit_error", error_code="client_quarantined",
        message=message, retry_after=seconds,
    )


@dataclass
class LocalQuarantineGuard(QuarantineGuard):
    """Counters in this process: nothing to wait for, so the stage is a plain call (SyncGuard)."""

    counters: MemoryCounters = field(default_factory=MemoryCounters)

    def check(self, exchange: Exchange, phase: Phase) -> Verdict:
        return self._judge(exchange, {key: self.counters.left(key) for key in _cool_down_keys(exchange)})


def build(settings: Settings, options: dict[str, Any]) -> QuarantineGuard:
    url = options.get("redis_url")
    return QuarantineGuard(counters=RedisCounters(str(url))) if url else LocalQuarantineGuard()

