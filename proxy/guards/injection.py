"""The injection stage: tags direct and indirect prompt-injection attempts in every request.

Scans each segment whose trust a rule applies to with the live rule set; a finding's vector
comes from its segment's trust (user -> direct, untrusted -> indirect, with provenance). The
strongest enforced severity picks the action from the caller's policy rubric (or the stage's
`actions` option when no policy resolved one); critical blocks with a 400 `guardrail_violation`
by default. Shadow findings (per rule, per client listed in `shadow_clients`, or a client policy
with `detection_mode: shadow`) and suppressed ones are recorded and never change the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from proxy.errors import ConfigError
from proxy.guards.neutralise import NOTHING_SEGREGATED, all_indirect, neutralise, segregates, where
from proxy.model import CLEAN, Action, Decision, Exchange, Finding, Phase, Severity, Verdict, VerdictKind
from proxy.policy.spec import ClientPolicy
from proxy.rules.engine import scan_deadline
from proxy.rules.findings import DEFAULT_ACTIONS, Context, decide, scan_segments
from proxy.rules.store import RuleStore
from proxy.settings import Settings

# Scans below this many characters run inline: measured well under a millisecond, cheaper than
# a thread hop. Larger ones go to a worker thread so the event loop keeps serving.
INLINE_MAX_CHARS = 16_384
SCAN_BUDGET_S = 2.0  # the default stage timeout: a scan never outlives the stage that waits for it


class InjectionGuard:
    name = "injection"
    phases = frozenset({Phase.INPUT})

    def __init__(
        self,
        store: RuleStore,
        actions: Mapping[Severity, Action] | None = None,
        shadow_clients: frozenset[str] = frozenset(),
        inline_max_chars: int = INLINE_MAX_CHARS,
        indirect: Action = Action.NEUTRALISE,
        scan_budget_s: float = SCAN_BUDGET_S,
    ) -> None:
        self.store = store
        self.scan_budget_s = scan_budget_s
        self.indirect = indirect  # what a blocking finding in retrieved content does: neutralise | block
        self.actions = dict(actions or DEFAULT_ACTIONS)
        self.shadow_clients = shadow_clients
        self.inline_max_chars = inline_max_chars
        self._rubrics: dict[int, tuple[ClientPolicy, Mapping[Severity, Action]]] = {}

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        if exchange.conversation.char_count() > self.inline_max_chars:
            return self._judge(exchange, await asyncio.to_thread(self._scan, exchange))
        return self._judge(exchange, self._scan(exchange))

    def inline(self, exchange: Exchange, phase: Phase) -> Verdict | None:
        """A short conversation's verdict, scanned in the loop (the scan has its own deadline); a
        long one is left to `inspect`, which scans it in a worker thread."""
        if exchange.conversation.char_count() > self.inline_max_chars:
            return None
        return self._judge(exchange, self._scan(exchange))

    def _judge(self, exchange: Exchange, findings: list[Finding]) -> Verdict:
        if not findings:
            return CLEAN
        actions = self._actions_for(exchange)
        action, severity, reasons = decide(findings, actions)
        if action is Action.ALLOW:
            return Verdict(findings=tuple(findings))
        decision = Decision(stage=self.name, action=action, severity=severity, reasons=reasons)
        if action is Action.BLOCK:
            blocking = [f for f in findings if f.mode == "enforce" and actions[f.severity] is Action.BLOCK]
            if self.indirect is Action.NEUTRALISE and all_indirect(blocking):
                # The attacker's text, not the caller's: withhold it and let the run go on.
                conv, done = neutralise(exchange.conversation, blocking)
                decision = Decision(self.name, Action.NEUTRALISE, severity, reasons + done)
                return Verdict(VerdictKind.TRANSFORM, findings=tuple(findings), decision=decision, conversation=conv)
            return self._block(exchange, findings, decision)
        if action is Action.SEGREGATE and not segregates(exchange, findings):
            decision = Decision(self.name, Action.TAG, severity, (*reasons, NOTHING_SEGREGATED))
        return Verdict(VerdictKind.ALLOW, findings=tuple(findings), decision=decision)

    def _actions_for(self, exchange: Exchange) -> Mapping[Severity, Action]:
        """The caller's policy rubric when the policy stage resolved one, else the stage's."""
        policy = exchange.client_policy
        if policy is None:
            return self.actions
        # Built once per policy object (a reload makes new ones); the policy is held with its
        # rubric, so an id reused after a reload never finds another policy's.
        cached = self._rubrics.get(id(policy))
        if cached is not None and cached[0] is policy:
            return cached[1]
        if len(self._rubrics) >= 1024:
            self._rubrics.clear()
        rubric = {s: policy.action_for(s) for s in Severity}
        self._rubrics[id(policy)] = (policy, rubric)
        return rubric

    def _shadow(self, exchange: Exchange) -> bool:
        policy = exchange.client_policy
        in_policy = policy is not None and policy.detection_mode == "shadow"
        return in_policy or exchange.client in self.shadow_clients

    def _scan(self, exchange: Exchange) -> list[Finding]:
        live = self.store.live  # one snapshot per request, even if a reload lands meanwhile
        ctx = Context(client=exchange.client, shadow_client=self._shadow(exchange))
        # Past the budget the scan stops and raises: the stage fails closed (or open, as configured)
        # and the worker thread is freed, instead of reading hostile text for tens of seconds.
        with scan_deadline(self.scan_budget_s):
            return scan_segments(live.engine, exchange.conversation.segments, live.suppressor, ctx)

    def _block(self, exchange: Exchange, findings: list[Finding], decision: Decision) -> Verdict:
        actions = self._actions_for(exchange)
        blocking = sorted(
            {f.rule_id for f in findings if f.mode == "enforce" and actions[f.severity] is Action.BLOCK}
        )
        places = sorted({where(exchange.conversation.segments[f.segment_index]) for f in findings
                         if f.rule_id in blocking and f.segment_index < len(exchange.conversation.segments)})
        message = (
            f"request blocked: prompt injection detected by rule(s) {', '.join(blocking)} "
            f"in {'; '.join(places) or 'the request'} (request {exchange.request_id})"
        )
        return Verdict(
            VerdictKind.BLOCK,
            findings=tuple(findings),
            decision=decision,
            status_code=400,
            error_type="guardrail_violation",
            error_code="injection_detected",
            message=message,
        )

    def subscribe(self, hook: Callable[[dict[str, Any]], None]) -> None:
        """Hand every rule set that goes live to `hook` (telemetry), starting with the current one."""
        self.store.hooks.append(lambda record: hook(record.as_dict()))
        if self.store.loaded:
            live = self.store.live.ruleset
            hook({"digest": live.digest, "previous": None, "files": list(live.files),
                  "added": [], "removed": [], "changed": []})

    def ready(self) -> tuple[bool, str]:
        if not self.store.loaded:
            return False, f"no rule set loaded ({self.store.last_error or 'not started'})"
        live = self.store.live
        detail = f"rules {live.ruleset.digest} ({len(live.ruleset.rules)} rules)"
        if self.store.last_error:
            detail += f"; last reload rejected: {self.store.last_error}"
        return True, detail

    async def start(self) -> None:
        await self.store.start()

    async def close(self) -> None:
        await self.store.close()


def _actions(raw: Any) -> dict[Severity, Action]:
    actions = dict(DEFAULT_ACTIONS)
    if raw is None:
        return actions
    if not isinstance(raw, dict):
        raise ConfigError("stage 'injection': options.actions must map severity -> action")
    for key, value in raw.items():
        try:
            actions[Severity(key)] = Action(value)
        except ValueError as exc:
            raise ConfigError(
                f"stage 'injection': options.actions: {key!r}: {value!r} is not a "
                f"severity -> action ({', '.join(Action)})"
            ) from exc
    return actions


def build(settings: Settings, options: dict[str, Any]) -> InjectionGuard:
    """Registry factory; loads the rule set now so a broken one fails start-up loudly."""
    known = {"rules_dir", "actions", "shadow_clients", "inline_max_chars", "indirect", "scan_budget_s"}
    unknown = set(options) - known
    if unknown:
        raise ConfigError(f"stage 'injection': unknown option(s) {', '.join(sorted(unknown))}")
    store = RuleStore(Path(options.get("rules_dir", settings.rules_dir)))
    store.load()
    return InjectionGuard(
        store,
        actions=_actions(options.get("actions")),
        shadow_clients=frozenset(options.get("shadow_clients") or ()),
        inline_max_chars=int(options.get("inline_max_chars", INLINE_MAX_CHARS)),
        indirect=_indirect(options.get("indirect", "neutralise")),
        scan_budget_s=_budget(options.get("scan_budget_s", SCAN_BUDGET_S)),
    )


def _indirect(value: Any) -> Action:
    if value not in ("neutralise", "block"):
        raise ConfigError(f"stage 'injection': option 'indirect' must be neutralise or block, got {value!r}")
    return Action(value)


def _budget(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 600:
        raise ConfigError(f"stage 'injection': option 'scan_budget_s' must be a number of seconds in (0, 600], "
                          f"got {value!r}")
    return float(value)
