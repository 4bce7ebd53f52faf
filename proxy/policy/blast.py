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


def blast_radius(
    tools: Iterable[ToolSpec],
    client: ClientPolicy,
    policy: Policy,
    *,
    removed: Iterable[str] = (),
    blocked: Iterable[str] = (),
) -> dict[str, Any]:
    tools = list(tools)
    reachable = [
        {"name": t.name, "scope": policy.tool(t.name).scope.value, "declared": policy.tool(t.name).declared}
        for t in tools
    ]
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
