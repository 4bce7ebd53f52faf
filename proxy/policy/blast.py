"""Blast radius: what an injection could reach at the moment it was seen.

Recorded on every decision about a finding: the tools reachable with their scopes, the client's
data scopes, whether anything side-effecting or secret-bearing was in reach, and what the proxy
removed or blocked. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from proxy.model import ToolSpec
from proxy.policy.spec import ClientPolicy, Policy, Scope


def side_effecting(tools: Iterable[ToolSpec], policy: Policy) -> list[str]:
    return [t.name for t in tools if policy.tool(t.name).scope is Scope.SIDE_EFFECT]


def _reach(name: str, policy: Policy) -> dict[str, Any]:
    """A tool's scope and sinks: once tainted, its egress arguments are checked whatever the scope,
    and its text arguments' links, addresses and secrets are checked when it has side effects."""
    rule = policy.tool(name)
    return {"name": name, "scope": rule.scope.value, "declared": rule.declared,
            "egress_args": list(rule.egress_args) if rule.egress_args is not None else "named like url/host",
            "text_args": list(rule.text_args) if rule.text_args is not None else "body, message, title, ..."}


def blast_radius(
    tools: Iterable[ToolSpec],
    client: ClientPolicy,
    policy: Policy,
    *,
    removed: Iterable[str] = (),
    blocked: Iterable[str] = (),
) -> dict[str, Any]:
    tools = list(tools)
    reachable = [_reach(t.name, policy) for t in tools]
    secret = sorted(set(client.data_scopes) & policy.secret_scopes)
    return {
        "client": client.name,
        "tools": reachable,
        "data_scopes": list(client.data_scopes),
        "side_effects_reachable": bool(side_effecting(tools, policy)),
        "secret_scopes_reachable": secret,
        "removed": sorted(removed),
        "blocked": sorted(blocked),
        "policy": policy.digest,
    }
