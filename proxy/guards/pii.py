"""The PII stage: finds personal data in requests and outputs and allows, tags, masks or blocks it.

Actions are per entity type (`EMAIL_ADDRESS: mask`), with a `default`, and may be overridden per
client. `mask` sends typed placeholders (`<EMAIL_ADDRESS_1>`) to the model and puts the real
values back in the response, streamed or not; the values never leave the proxy. Findings carry
the entity type and span, never the value. Detection is the shared offline Presidio analyzer
behind a cheap pre-filter; text with a candidate is analyzed off the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from proxy.errors import ConfigError
from proxy.guards.base import OutputReach
from proxy.model import (
    CLEAN,
    Action,
    Decision,
    Exchange,
    Finding,
    Output,
    Phase,
    Severity,
    Trust,
    Vector,
    Verdict,
    VerdictKind,
)
from proxy.pii.analyzer import DEFAULT_ENTITIES, DEFAULT_THRESHOLD, PiiAnalyzer, PiiHit, shared_analyzer
from proxy.pii.placeholders import TextRestorer, Vault
from proxy.settings import Settings

ACTIONS = ("allow", "tag", "mask", "block")
VECTORS = {Trust.USER: Vector.DIRECT, Trust.UNTRUSTED: Vector.INDIRECT, Trust.TRUSTED: Vector.OTHER}
MAX_VAULTS = 4096  # requests in flight whose masked values await their response


@dataclasses.dataclass(frozen=True, slots=True)
class Rubric:
    """entity -> action for one phase; `default` covers the rest."""

    actions: Mapping[str, str]
    default: str = "tag"

    def of(self, entity: str) -> str:
        return self.actions.get(entity, self.default)


class PiiGuard:
    name = "pii"
    phases = frozenset({Phase.INPUT, Phase.OUTPUT})

    def __init__(
        self,
        analyzer: PiiAnalyzer,
        rubrics: Mapping[Phase, Rubric],
        clients: Mapping[str, Mapping[Phase, Rubric]] | None = None,
        trust: frozenset[Trust] = frozenset(Trust),
    ) -> None:
        self.analyzer = analyzer
        self.rubrics = dict(rubrics)
        self.clients = dict(clients or {})
        self.trust = trust
        self._vaults: OrderedDict[str, Vault] = OrderedDict()

    def _rubric(self, exchange: Exchange, phase: Phase) -> Rubric:
        return self.clients.get(exchange.client, self.rubrics)[phase]

    async def _analyze(self, texts: list[str]) -> list[list[PiiHit]]:
        if not any(self.analyzer.candidates(t) for t in texts):
            return [[] for _ in texts]  # the common case stays on the loop: a few regex scans
        return await asyncio.to_thread(lambda: [self.analyzer.analyze(t) for t in texts])

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        if phase is Phase.INPUT:
            return await self._input(exchange)
        return await self._output(exchange)

    async def _input(self, exchange: Exchange) -> Verdict:
        conv = exchange.conversation
        segments = [s for s in conv.segments if s.trust in self.trust]
        results = await self._analyze([s.text for s in segments])
        rubric = self._rubric(exchange, Phase.INPUT)
        vault = Vault()
        findings: list[Finding] = []
        for seg, hits in zip(segments, results, strict=True):
            acted = [h for h in hits if rubric.of(h.entity) != "allow"]
            findings += [_finding(h, rubric.of(h.entity), seg.index, VECTORS[seg.trust],
                                  seg.provenance if seg.trust is Trust.UNTRUSTED else None,
                                  Phase.INPUT) for h in acted]
            masked = [h for h in acted if rubric.of(h.entity) == "mask"]
            if masked:
                conv = conv.with_text(seg.index, vault.replace(seg.text, masked))
        if vault.by_placeholder:
            self._keep(exchange.request_id, vault)
        return self._verdict(exchange, findings, rubric, conv if vault.by_placeholder else None, None)

    async def _output(self, exchange: Exchange) -> Verdict:
        vault = self._vaults.pop(exchange.request_id, None) or Vault()
        output = exchange.output
        if output is None:
            return CLEAN
        # Every choice's text (n > 1) and every call's arguments.
        texts = [output.text, *(c.arguments for c in output.tool_calls), *(a.text for a in output.alternatives)]
        results = await self._analyze(texts)
        rubric = self._rubric(exchange, Phase.OUTPUT)
        known = vault.values()  # the client's own values coming back are not new findings
        findings: list[Finding] = []
        new_texts: list[str] = []
        for n, (text, hits) in enumerate(zip(texts, results, strict=True)):
            acted = [h for h in hits if rubric.of(h.entity) != "allow" and text[h.start : h.end] not in known]
            findings += [_finding(h, rubric.of(h.entity), -1 - n, Vector.OTHER, None, Phase.OUTPUT)
                         for h in acted]
            masked = [h for h in acted if rubric.of(h.entity) == "mask"]
            new_texts.append(vault.restore(vault.replace(text, masked) if masked else text))
        changed = new_texts != texts
        new_output = _with_texts(output, new_texts) if changed else None
        return self._verdict(exchange, findings, rubric, None, new_output)

    def _verdict(
        self, exchange: Exchange, findings: list[Finding], rubric: Rubric,
        conv: Any, output: Output | None,
    ) -> Verdict:
        counts: dict[str, dict[str, int]] = {}
        for f in findings:
            entity = f.rule_id.removeprefix("pii.").upper()
            per = counts.setdefault(rubric.of(entity), {})
            per[entity] = per.get(entity, 0) + 1
        reasons = tuple(
            f"{action} {n} {entity}" for action, per in sorted(counts.items()) for entity, n in sorted(per.items())
        )
        if "block" in counts:
            entities = ", ".join(sorted(counts["block"]))
            return Verdict(
                VerdictKind.BLOCK, findings=tuple(findings),
                decision=Decision(stage=self.name, action=Action.BLOCK, severity=Severity.HIGH, reasons=reasons),
                status_code=400, error_type="guardrail_violation", error_code="pii_blocked",
                message=f"blocked: personal data ({entities}) is not allowed here "
                        f"(request {exchange.request_id})",
            )
        decision = None
        if findings:
            decision = Decision(stage=self.name, action=Action.TAG, severity=Severity.LOW, reasons=reasons)
        kind = VerdictKind.TRANSFORM if conv is not None or output is not None else VerdictKind.ALLOW
        return Verdict(kind, findings=tuple(findings), decision=decision, conversation=conv, output=output)

    def _keep(self, request_id: str, vault: Vault) -> None:
        self._vaults[request_id] = vault
        while len(self._vaults) > MAX_VAULTS:
            self._vaults.popitem(last=False)  # a response that never came: forget its values

    def stream_rewriter(self, exchange: Exchange) -> Callable[[], TextRestorer] | None:
        vault = self._vaults.get(exchange.request_id)
        return (lambda: TextRestorer(vault)) if vault is not None else None

    def output_reach(self, exchange: Exchange) -> OutputReach:
        """A stream's text is held for this stage only when its output rubric can block or mask."""
        rubric = self._rubric(exchange, Phase.OUTPUT)
        acting = {rubric.default, *rubric.actions.values()} & {"block", "mask"}
        return OutputReach.WHOLE if acting else OutputReach.RECORD

    async def start(self) -> None:
        await asyncio.to_thread(self.analyzer.warm)

    async def close(self) -> None:
        self._vaults.clear()

    def ready(self) -> tuple[bool, str]:
        return True, f"presidio (offline, regex recognizers): {', '.join(self.analyzer.entities)}"


def _finding(
    hit: PiiHit, action: str, segment: int, vector: Vector, provenance: Any, phase: Phase
) -> Finding:
    # The excerpt names the type only: a finding must never carry the value it found.
    return Finding(
        rule_id=f"pii.{hit.entity.lower()}",
        category="pii",
        severity=Severity.HIGH if action == "block" else Severity.LOW,
        vector=vector,
        segment_index=segment,  # output findings: -1 the text, -2.. the tool calls' arguments
        span=(hit.start, hit.end),
        excerpt=f"<{hit.entity}> ({action})",
        detector="pii",
        provenance=provenance,
        phase=phase,
    )


def _with_texts(output: Output, texts: list[str]) -> Output:
    n = len(output.tool_calls)
    calls = tuple(dataclasses.replace(c, arguments=a) for c, a in zip(output.tool_calls, texts[1:1 + n], strict=True))
    alternatives = tuple(dataclasses.replace(a, text=t)
                         for a, t in zip(output.alternatives, texts[1 + n:], strict=True))
    return dataclasses.replace(output, text=texts[0], tool_calls=calls, alternatives=alternatives)


def _rubric(raw: Any, where: str, fallback: Rubric | None = None) -> Rubric:
    if raw is None:
        return fallback or Rubric({})
    if not isinstance(raw, dict):
        raise ConfigError(f"stage 'pii': {where} must map entity -> action ({', '.join(ACTIONS)})")
    actions = {str(k).upper(): str(v) for k, v in raw.items()}
    for entity, action in actions.items():
        if action not in ACTIONS:
            raise ConfigError(f"stage 'pii': {where}.{entity}: {action!r} is not one of {', '.join(ACTIONS)}")
    default = actions.pop("DEFAULT", fallback.default if fallback else "tag")
    return Rubric(actions, default)


def _rubrics(options: Mapping[str, Any], where: str, base: Mapping[Phase, Rubric] | None = None) -> dict[Phase, Rubric]:
    inp = _rubric(options.get("actions"), f"{where}actions", base[Phase.INPUT] if base else None)
    # Outputs follow the request's rubric unless told otherwise.
    out = _rubric(options.get("output_actions"), f"{where}output_actions", base[Phase.OUTPUT] if base else inp)
    return {Phase.INPUT: inp, Phase.OUTPUT: out}


def build(settings: Settings, options: dict[str, Any]) -> PiiGuard:
    """Registry factory: validates the options now so a typo fails start-up, not a request."""
    known = {"entities", "threshold", "actions", "output_actions", "clients", "trust"}
    unknown = set(options) - known
    if unknown:
        raise ConfigError(f"stage 'pii': unknown option(s) {', '.join(sorted(unknown))}")
    try:
        analyzer = shared_analyzer(
            tuple(options.get("entities") or DEFAULT_ENTITIES),
            float(options.get("threshold", DEFAULT_THRESHOLD)),
        )
        trust = frozenset(Trust(t) for t in options.get("trust") or [t.value for t in Trust])
    except ValueError as exc:
        raise ConfigError(f"stage 'pii': {exc}") from exc
    rubrics = _rubrics(options, "")
    clients = {
        str(name): _rubrics(raw or {}, f"clients.{name}.", rubrics)
        for name, raw in (options.get("clients") or {}).items()
    }
    return PiiGuard(analyzer, rubrics, clients, trust)
