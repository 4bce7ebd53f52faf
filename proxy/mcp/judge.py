"""The MCP phase plan: a client's request judged like a model's tool call, the server's answer
judged like retrieved content.

Request side: the key's policy must allow the server, tool, resource or prompt; a tool whose
definition is withheld cannot be called; a side-effecting tool (the policy's catalogue, named
`server.tool`) is refused in a tainted session when the client's taint mode says so, or when a
sensitive argument value appears only in untrusted content the session received.
Answer side: listings are filtered by scope, tool definitions pinned and scanned, results scanned,
labelled untrusted with their provenance, and withheld when a finding blocks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.mcp import access, pins
from proxy.mcp.inspect import (
    POISONED_AT,
    Inspector,
    conversation,
    definition_text,
    structured_segment,
    text_segments,
)
from proxy.mcp.jsonrpc import POLICY_DENIED, TOOL_WITHHELD, McpError, Pending, Request
from proxy.mcp.ledger import Ledger
from proxy.mcp.sessions import Session
from proxy.model import Action, Conversation, Decision, Exchange, Provenance, Segment, ToolCall, Trust
from proxy.policy.provenance import untraced_arguments
from proxy.policy.spec import ClientPolicy, Policy, Scope, TaintMode

META_KEY = "guardproxy.dev/untrusted"  # the label every judged result carries in its `_meta`
WITHHELD = "[guardproxy: result of {source} withheld: {why} (request {request_id})]"
ExchangeFactory = Callable[[Conversation], Exchange]


@dataclass
class Context:
    """One client message's judgment: who asks, under which policy, and what was decided."""

    server: str
    request_id: str
    policy: Policy
    client: ClientPolicy
    session: Session
    new_exchange: ExchangeFactory
    exchanges: list[Exchange] = field(default_factory=list)  # for evidence, one per judged answer
    withheld_tools: list[str] = field(default_factory=list)
    pin_changes: list[str] = field(default_factory=list)
    pin_states: dict[str, str] = field(default_factory=dict)
    message: dict[str, Any] | None = None  # the client's message, as received (None on the GET channel)

    def refuse(self, code: int, message: str, id: Any) -> McpError:
        return McpError(code, message, status=200, id=id)


class Judge:
    def __init__(self, inspector: Inspector, pin_store: pins.PinStore, ledger: Ledger) -> None:
        self.inspector = inspector
        self.pins = pin_store
        self.ledger = ledger

    # --- request side ----------------------------------------------------------------------------
    async def request(self, ctx: Context, message: Request, params: Any) -> Pending:
        """The message's pending record, or an McpError naming why the policy refuses it."""
        who = access.policy_name(ctx.policy, ctx.client)
        if message.method == "tools/call":
            name = params.name
            qualified = access.qualified(ctx.server, name)
            if not access.tool_allowed(ctx.client, ctx.server, name):
                raise ctx.refuse(POLICY_DENIED, f"tool {qualified!r} is not allowed by {who}", message.id)
            pin = await self.pins.get(ctx.server, name)
            if pin is not None and _withheld_pin(pin, ctx.client.mcp.accept_changed_tools):
                raise ctx.refuse(TOOL_WITHHELD, f"tool {qualified!r} is withheld: its definition "
                                 f"{_pin_why(pin)} (guardproxy mcp pins list)", message.id)
            why = self._taint_problem(ctx, qualified, params.arguments or {})
            if why:
                raise ctx.refuse(POLICY_DENIED, f"tool {qualified!r} refused by {who}: {why}", message.id)
            return Pending("tools/call", name)
        if message.method == "resources/read":
            if not access.resource_allowed(ctx.client, str(params.uri)):
                raise ctx.refuse(POLICY_DENIED, f"resource {str(params.uri)!r} is not allowed by {who}", message.id)
            return Pending("resources/read", str(params.uri))
        if message.method == "prompts/get":
            if not access.prompt_allowed(ctx.client, ctx.server, params.name):
                raise ctx.refuse(POLICY_DENIED, f"prompt {params.name!r} on {ctx.server!r} is not allowed by {who}",
                                 message.id)
            return Pending("prompts/get", params.name)
        return Pending(message.method)

    def _taint_problem(self, ctx: Context, qualified: str, arguments: dict[str, Any]) -> str | None:
        """The function-tool taint rules, over what this session's results carried."""
        rule = ctx.policy.tool(qualified)
        session = ctx.session
        tainted = bool(session.taint) or session.state_lost
        if rule.scope is not Scope.SIDE_EFFECT or not tainted:
            return None
        worst = session.worst
        if worst is not None and worst.rank >= ctx.client.drop_side_effects_at.rank:
            return f"side-effecting, and a {worst.value} finding in this session's results drops side effects"
        if ctx.client.taint_mode is TaintMode.DROP_SIDE_EFFECTS:
            return "side-effecting, and the session carries untrusted content (taint mode drop_side_effects)"
        if session.state_lost:
            return "side-effecting, and this session's earlier results are unknown to the proxy (counted tainted)"
        # The gateway sees no user text: a value is the attacker's when it appears in untrusted
        # content this session received and no authoritative field vouches for it.
        call = ToolCall("mcp", qualified, json.dumps(arguments))
        taint = Conversation("mcp", "mcp", ctx.server, False, tuple(session.taint))
        for u in untraced_arguments(call, rule, taint, ctx.policy):
            if u.seen_in:
                return f"argument {u.arg}={u.value[:80]!r} appears only in untrusted content ({', '.join(u.seen_in)})"
        return None

    # --- answer side -------------------------------------------------------------------------------
    async def answer(self, ctx: Context, pending: Pending, result: dict[str, Any], id: Any) -> dict[str, Any]:
        method = pending.method
        if method == "tools/list":
            return await self._tools_list(ctx, result)
        if method in ("tools/call", "resources/read", "prompts/get"):
            return await self._content(ctx, pending, result)
        if method == "resources/list":
            return _filtered(result, "resources", lambda r: access.resource_allowed(ctx.client, str(r.get("uri"))))
        if method == "resources/templates/list":
            return _filtered(result, "resourceTemplates",
                             lambda r: access.resource_allowed(ctx.client, str(r.get("uriTemplate"))))
        if method == "prompts/list":
            return _filtered(result, "prompts",
                             lambda p: access.prompt_allowed(ctx.client, ctx.server, str(p.get("name"))))
        return result

    async def server_request(self, ctx: Context, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """A request the tool server sends the client (sampling, elicitation) carries the server's
        text to the client's model or user: judged and labelled like a result."""
        judged = await self._content(ctx, Pending(method, method), params)
        return {**params, **judged}

    async def _tools_list(self, ctx: Context, result: dict[str, Any]) -> dict[str, Any]:
        tools = [t for t in result.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]
        scoped = [t for t in tools if access.tool_allowed(ctx.client, ctx.server, t["name"])]
        segments = [Segment(i, "tool", definition_text(t), Trust.UNTRUSTED,
                            Provenance("mcp_tool_definition", f"{ctx.server}/{t['name']}"), None)
                    for i, t in enumerate(scoped)]
        exchange = ctx.new_exchange(conversation(ctx.server, segments, {"request": ctx.message, "result": result}))
        judged = await self.inspector.judge(exchange)
        poisoned: dict[int, list[str]] = {}
        for f in judged.findings:
            if f.severity.rank >= POISONED_AT.rank:
                poisoned.setdefault(f.segment_index, []).append(f.rule_id)
        served = []
        for i, tool in enumerate(scoped):
            verdict = await self._pin(ctx, tool, sorted(set(poisoned.get(i, []))))
            ctx.pin_states[tool["name"]] = verdict.value
            if verdict in pins.SERVED:
                served.append(tool)
            else:
                ctx.withheld_tools.append(tool["name"])
        removed = [t["name"] for t in tools if t not in scoped]
        if removed or ctx.withheld_tools or judged.findings:
            reasons = [f"tool {n!r} not allowed for the client" for n in removed]
            reasons += [f"tool {n!r} withheld: definition {ctx.pin_states[n]}" for n in ctx.withheld_tools]
            action = Action.WITHHOLD if reasons else Action.TAG
            exchange.decisions.append(Decision(stage="mcp", action=action, reasons=tuple(reasons),
                                               tools_removed=tuple(removed + ctx.withheld_tools)))
            ctx.exchanges.append(exchange)
        return {**result, "tools": served}

    async def _pin(self, ctx: Context, tool: dict[str, Any], findings: list[str]) -> pins.Sight:
        name = tool["name"]
        current = await self.pins.get(ctx.server, name)
        verdict, new = pins.sight(current, ctx.server, name, pins.definition_of(tool), findings,
                                  ctx.client.mcp.accept_changed_tools)
        if new is not None:
            await self.pins.put(new)
            if current is not None:
                ctx.pin_changes.append(f"{name}:{verdict.value}")
        return verdict

    async def _content(self, ctx: Context, pending: Pending, result: dict[str, Any]) -> dict[str, Any]:
        source = f"{ctx.server}/{pending.target}"
        segments, opaque = text_segments(result, source)
        extra = structured_segment(result, source, len(segments)) if pending.method == "tools/call" else None
        if extra is not None:
            segments.append(extra)
        exchange = ctx.new_exchange(conversation(ctx.server, segments, {"request": ctx.message, "result": result}))
        judged = await self.inspector.judge(exchange)
        judged.not_inspected.extend(opaque)
        exchange.attributes["mcp_not_inspected"] = opaque
        blocking = judged.blocking(ctx.client)
        ctx.exchanges.append(exchange)
        label: dict[str, Any] = {"trust": "untrusted", "provenance": f"mcp:{source}",
                                 "findings": sorted({f.rule_id for f in judged.findings})}
        if opaque:
            label["not_inspected"] = opaque
        if blocking:
            why = f"prompt injection detected by rule(s) {', '.join(blocking)}"
            exchange.decisions.append(Decision(stage="mcp", action=Action.BLOCK, reasons=(why,)))
            label["action"] = "withheld"
            text = WITHHELD.format(source=f"mcp:{source}", why=why, request_id=ctx.request_id)
            ctx.session.tainted_by(source, "\n".join(s.text for s in segments), judged.worst())
            return _withheld(pending.method, result, text, label)
        rewritten = _rewrite(result, exchange.conversation.segments)
        label["action"] = "tag" if judged.findings else "allow"
        texts = [s.text for s in exchange.conversation.segments]
        for text in texts:
            self.ledger.record(text, f"mcp:{source}")
        if len(texts) > 1:
            self.ledger.record("\n".join(texts), f"mcp:{source}")
        ctx.session.tainted_by(source, "\n".join(texts), judged.worst())
        meta = dict(rewritten.get("_meta") or {})
        meta[META_KEY] = label
        return {**rewritten, "_meta": meta}


def _withheld_pin(pin: pins.Pin, accept_changes: bool) -> bool:
    if pin.state is not pins.PinState.APPROVED:
        return True
    return pin.pending is not None and not accept_changes


def _pin_why(pin: pins.Pin) -> str:
    if pin.state is pins.PinState.POISONED:
        return f"carries an injection finding ({', '.join(pin.findings)})"
    return "changed since it was pinned and awaits review"


def _filtered(result: dict[str, Any], key: str, keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    items = result.get(key)
    if not isinstance(items, list):
        return result
    return {**result, key: [i for i in items if isinstance(i, dict) and keep(i)]}


def _rewrite(result: dict[str, Any], segments: tuple[Segment, ...]) -> dict[str, Any]:
    """Write back texts a guard changed (quarantine's withheld markers), by JSON path."""
    changed = [s for s in segments if s.location is not None and _at(result, s.location.path) != s.text]
    if not changed:
        return result
    copy: dict[str, Any] = json.loads(json.dumps(result))
    for seg in changed:
        assert seg.location is not None
        *parents, last = seg.location.path
        node: Any = copy
        for p in parents:
            node = node[p]
        node[last] = seg.text
    copy.pop("structuredContent", None)  # its text may carry what was withheld
    return copy


def _at(value: Any, path: tuple[str | int, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


def _withheld(method: str, result: dict[str, Any], text: str, label: dict[str, Any]) -> dict[str, Any]:
    meta = {META_KEY: label}
    if method == "tools/call":
        return {"content": [{"type": "text", "text": text}], "isError": True, "_meta": meta}
    if method == "resources/read":
        uris = [c.get("uri") for c in result.get("contents") or [] if isinstance(c, dict)]
        return {"contents": [{"uri": u, "mimeType": "text/plain", "text": text} for u in uris[:1] or [""]],
                "_meta": meta}
    return {"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "_meta": meta}

