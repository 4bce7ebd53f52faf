"""Least-privilege tool scopes, in both directions.

Input: removes tools the client may not use; once the conversation carries untrusted content,
governs side-effecting tools by the client's taint mode; drops them outright after a finding at
the configured severity; escalates an indirect finding one class when side effects are in reach.
Output: every tool call the model returns is checked against what was offered and, under
`argument_provenance`, against where its sensitive arguments came from; a call that fails never
reaches the client. Every decision records the blast radius.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from proxy.errors import ConfigError
from proxy.guards.base import OutputReach
from proxy.guards.neutralise import NOTHING_SEGREGATED, all_indirect, neutralise, segregates, where
from proxy.model import (
    CLEAN,
    Action,
    Decision,
    Exchange,
    Finding,
    Output,
    Phase,
    Severity,
    ToolCall,
    Vector,
    Verdict,
    VerdictKind,
)
from proxy.policy.approvals import ApprovalStore, call_key
from proxy.policy.blast import blast_radius, side_effecting
from proxy.policy.provenance import Tracer
from proxy.policy.spec import ClientPolicy, Policy, Scope, TaintMode
from proxy.settings import Settings

NOTICE = "[guardproxy] A tool call was withheld by policy: {reasons}"
_PROVENANCE = "argument"  # how a provenance problem starts: the one kind an approval settles


@dataclass
class ToolScopeGuard:
    indirect: Action = Action.NEUTRALISE  # an escalated indirect finding: neutralise | block
    name: str = "tool_scope"
    phases: frozenset[Phase] = frozenset({Phase.INPUT, Phase.OUTPUT})
    approvals: ApprovalStore = dataclasses.field(default_factory=ApprovalStore)

    def output_reach(self, exchange: Exchange) -> OutputReach:
        return OutputReach.TOOL_CALLS  # it judges the model's calls, never its text

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        return self.check(exchange, phase)

    def check(self, exchange: Exchange, phase: Phase) -> Verdict:
        policy = exchange.policy or Policy()
        client = exchange.client_policy or policy.default
        if phase is Phase.INPUT:
            return self._input(exchange, policy, client)
        return self._output(exchange, policy, client)

    def _input(self, exchange: Exchange, policy: Policy, client: ClientPolicy) -> Verdict:
        conv = exchange.conversation
        findings = [f for f in exchange.findings if f.mode == "enforce"]
        if not findings and client.tools is None and not (
                client.taint_mode is TaintMode.DROP_SIDE_EFFECTS and conv.tainted()):
            return CLEAN  # every tool allowed, nothing found, nothing to drop: nothing to decide
        allowed = [t for t in conv.tools if client.allows(t.name)]
        removed = {t.name: "not in the client's tools" for t in conv.tools if not client.allows(t.name)}
        side_effects = bool(side_effecting(allowed, policy))
        severity, escalated = _effective_severity(findings, side_effects)
        reasons = list(escalated)
        action = client.action_for(severity) if severity else Action.ALLOW
        blocking = [f for f in findings if client.action_for(_effective(f, side_effects)) is Action.BLOCK]
        if action is Action.BLOCK and self.indirect is Action.NEUTRALISE and all_indirect(blocking):
            # The injection is in retrieved content: withhold it and drop side effects; the run goes on.
            conv, done = neutralise(conv, blocking)
            action, reasons = Action.NEUTRALISE, [*reasons, *done]
            removed |= {n: "an indirect injection was neutralised this turn" for n in side_effecting(allowed, policy)}
        drop_why = _drop_reason(conv.tainted(), severity, client)
        if drop_why:
            removed |= {n: drop_why for n in side_effecting(allowed, policy) if n not in removed}
        kept = tuple(t for t in allowed if t.name not in removed)
        reasons += [f"removed tool {n!r}: {why}" for n, why in removed.items()]
        if severity is None and not removed:
            return CLEAN
        if action is Action.SEGREGATE and not segregates(exchange, findings):
            action, reasons = Action.TAG, [*reasons, NOTHING_SEGREGATED]
        decision = Decision(
            stage=self.name, action=action, severity=severity, reasons=tuple(reasons),
            tools_removed=tuple(sorted(removed)),
            blast_radius=blast_radius(allowed, client, policy, removed=removed),
        )
        if action is Action.BLOCK:
            return _policy_block(decision, exchange, blocking, escalated=bool(escalated))
        if kept == conv.tools and conv is exchange.conversation:
            return Verdict(decision=decision)
        return Verdict(VerdictKind.TRANSFORM, decision=decision, conversation=conv.with_tools(kept))

    def _output(self, exchange: Exchange, policy: Policy, client: ClientPolicy) -> Verdict:
        output = exchange.output
        if output is None or not output.tool_calls:
            return CLEAN
        conv = exchange.conversation
        offered = {t.name for t in conv.tools}
        tainted = conv.tainted()  # untrusted text, images, files, or shapes passed unread
        # Trace against the text as received: segregation may have wrapped or encoded it since.
        tracer = Tracer.of(exchange.received_conversation or conv, policy)
        kept: list[ToolCall] = []
        withheld: list[ToolCall] = []
        reasons: list[str] = []
        approvals: list[str] = []
        for call in output.tool_calls:
            why = _call_problem(call, offered, tainted, tracer, policy, client)
            if why and why.startswith(_PROVENANCE):
                # Only provenance is the user's to settle; a tool outside the client's scope is not.
                key = call_key(client.name, tracer.conv, call)
                used = self.approvals.consume(key)
                if used is not None:
                    reasons.append(f"{call.name}: approved by the application ({used})")
                    kept.append(call)
                    continue
                approval = self.approvals.offer(client.name, key, call)
                approvals.append(approval)
                why += f" (approval id {approval})"
            (withheld if why else kept).append(call)
            if why:
                reasons.append(f"{call.name}: {why}")
        if not withheld:
            return Verdict(decision=Decision(stage=self.name, action=Action.ALLOW, reasons=tuple(reasons))
                           if reasons else None)
        decision = Decision(
            stage=self.name, action=Action.WITHHOLD, reasons=tuple(reasons),
            calls_blocked=tuple(c.name for c in withheld), approvals=tuple(approvals),
            blast_radius=blast_radius(conv.tools, client, policy, blocked=[c.name for c in withheld]),
        )
        return Verdict(VerdictKind.TRANSFORM, decision=decision, output=_rewrite(output, kept, withheld, reasons))


def _effective(f: Finding, side_effects: bool) -> Severity:
    return f.severity.escalate() if f.vector is Vector.INDIRECT and side_effects else f.severity


def _effective_severity(findings: list[Finding], side_effects: bool) -> tuple[Severity | None, list[str]]:
    """Highest severity, with indirect findings one class up when side effects are reachable."""
    best: Severity | None = None
    notes = []
    for f in findings:
        sev = f.severity
        if f.vector is Vector.INDIRECT and side_effects:
            sev = sev.escalate()
            if sev is not f.severity:
                notes.append(f"{f.rule_id}: indirect with side-effecting tools reachable, "
                             f"{f.severity.value} -> {sev.value}")
        if best is None or sev.rank > best.rank:
            best = sev
    return best, notes


def _drop_reason(tainted: bool, severity: Severity | None, client: ClientPolicy) -> str | None:
    if severity is not None and severity.rank >= client.drop_side_effects_at.rank:
        return f"a {severity.value} finding drops side-effecting tools"
    if tainted and client.taint_mode is TaintMode.DROP_SIDE_EFFECTS:
        return "untrusted content in the conversation (taint mode drop_side_effects)"
    return None


def _call_problem(
    call: ToolCall, offered: set[str], tainted: bool, tracer: Tracer, policy: Policy, client: ClientPolicy
) -> str | None:
    if call.name not in offered or not client.allows(call.name):
        return "the tool was not offered to the model for this client"
    rule = policy.tool(call.name)
    if not tainted:
        return None
    # Egress arguments (URLs, hosts) are checked whatever the scope and taint mode: a `read` fetch
    # can carry data out. Side-effecting calls are checked whole under argument_provenance.
    side_effect = rule.scope is Scope.SIDE_EFFECT and client.taint_mode is TaintMode.ARGUMENT_PROVENANCE
    untraced = tracer.untraced(call, rule, side_effect=side_effect)
    if not untraced:
        return None
    u = untraced[0]
    where = f"appears only in untrusted content ({', '.join(u.seen_in)})" if u.seen_in else \
        "does not appear in any trusted or user text"
    return f"{_PROVENANCE} {u.arg}={u.value[:80]!r} {where}"


def _rewrite(output: Output, kept: list[ToolCall], withheld: list[ToolCall], reasons: list[str]) -> Output:
    """The output minus the withheld calls; each choice that lost one says so (OpenAI n > 1)."""
    notice = NOTICE.format(reasons="; ".join(reasons))
    hit = {c.choice for c in withheld}
    left = {c.choice for c in kept}

    def told(text: str) -> str:
        return f"{text}\n\n{notice}" if text else notice

    text, finish = output.text, output.finish_reason
    if 0 in hit:
        text, finish = told(text), finish if 0 in left else "stop"
    alternatives = tuple(
        dataclasses.replace(a, text=told(a.text), finish_reason=a.finish_reason if a.index in left else "stop")
        if a.index in hit else a
        for a in output.alternatives
    )
    return dataclasses.replace(output, text=text, tool_calls=tuple(kept), finish_reason=finish,
                               withheld=output.withheld + tuple(withheld), alternatives=alternatives)


def _policy_block(decision: Decision, exchange: Exchange, blocking: list[Finding], *, escalated: bool) -> Verdict:
    severity = decision.severity.value if decision.severity else "?"
    segments = exchange.conversation.segments
    places = sorted({where(segments[f.segment_index]) for f in blocking if f.segment_index < len(segments)})
    message = (f"request {exchange.request_id} blocked: a {severity} finding in "
               f"{'; '.join(places) or 'the request'}, and the client's policy blocks at that class")
    if decision.reasons:
        message += " (" + "; ".join(decision.reasons) + ")"
    code = "blast_radius_escalation" if escalated else "injection_detected"
    return Verdict(VerdictKind.BLOCK, decision=decision, error_code=code, message=message)


def build(settings: Settings, options: dict[str, Any]) -> ToolScopeGuard:
    unknown = set(options) - {"indirect", "approval_ttl_s"}
    if unknown:
        raise ConfigError(f"stage 'tool_scope': unknown option(s) {', '.join(sorted(unknown))}")
    indirect = options.get("indirect", "neutralise")
    if indirect not in ("neutralise", "block"):
        raise ConfigError(f"stage 'tool_scope': option 'indirect' must be neutralise or block, got {indirect!r}")
    return ToolScopeGuard(approvals=ApprovalStore(ttl_s=float(options.get("approval_ttl_s", 900))),
                          indirect=Action(indirect))
