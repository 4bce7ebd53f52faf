"""Which servers, tools, resources and prompts a client's policy lets it reach.

MCP tools live in the same catalogue and client `tools` list as function tools, named
`server.tool` (`files.write_file`); a client entry may also say `server.*`. Servers, resource
URIs and prompt names are glob patterns under the client's `mcp:` block. Pure functions.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from proxy.policy.spec import ClientPolicy, Policy


def qualified(server: str, tool: str) -> str:
    """The catalogue name of an MCP tool."""
    return f"{server}.{tool}"


def _matches(value: str, patterns: tuple[str, ...] | frozenset[str] | None) -> bool:
    return patterns is None or any(fnmatchcase(value, p) for p in patterns)


def server_allowed(client: ClientPolicy, server: str) -> bool:
    return _matches(server, client.mcp.servers)


def tool_allowed(client: ClientPolicy, server: str, tool: str) -> bool:
    if client.tools is None:
        return True
    name = qualified(server, tool)
    return name in client.tools or f"{server}.*" in client.tools


def resource_allowed(client: ClientPolicy, uri: str) -> bool:
    return _matches(uri, client.mcp.resources)


def prompt_allowed(client: ClientPolicy, server: str, prompt: str) -> bool:
    return _matches(qualified(server, prompt), client.mcp.prompts) or _matches(prompt, client.mcp.prompts)


def policy_name(policy: Policy, client: ClientPolicy) -> str:
    """How a refusal names the policy: the client entry and the policy file's digest."""
    return f"client {client.name!r} of policy {policy.digest}"
