"""The policy as typed data: a tool catalogue, client policies, and the lookups guards need.

Least privilege by default: a tool the catalogue does not declare is side-effecting, and every one
of its string arguments is security-relevant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType

from proxy.errors import Unauthorized
from proxy.model import Action, Severity


class Scope(StrEnum):
    READ = "read"
    SIDE_EFFECT = "side_effect"


class TaintMode(StrEnum):
    ARGUMENT_PROVENANCE = "argument_provenance"
    DROP_SIDE_EFFECTS = "drop_side_effects"


# Fields the sender of a message writes about themselves: an attacker's e-mail would vouch for the
# attacker's own address. The loader refuses them in `trusted_source_for`; provenance ignores them.
SENDER_FIELDS = frozenset({"from", "sender", "reply_to", "reply-to", "replyto", "return_path", "return-path",
                           "author", "from_address", "sender_email", "from_email"})

DEFAULT_ACTIONS: Mapping[Severity, Action] = MappingProxyType({
    Severity.CRITICAL: Action.BLOCK,
    Severity.HIGH: Action.SEGREGATE,
    Severity.MEDIUM: Action.TAG,
    Severity.LOW: Action.TAG,
})


@dataclass(frozen=True, slots=True)
class ToolRule:
    name: str
    scope: Scope = Scope.SIDE_EFFECT
    sensitive_args: tuple[str, ...] | None = None  # None: every string argument
    # "tool.arg" or "arg" -> result fields whose values are authoritative for it ("*": the whole result)
    trusted_source_for: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    declared: bool = True
    egress_args: tuple[str, ...] | None = None  # None: args named like URLs/hosts and URL-shaped values
    text_args: tuple[str, ...] | None = None  # None: body, message, title, ... (proxy.policy.sinks)
    # Arguments a reply goes to (send_email.to): the sender of the message the user asked to answer
    # may fill them (proxy.policy.senders); never cc, bcc or a forward unless declared here.
    reply_args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QuarantineRule:
    threshold: int = 5  # detections in the window that put a key or source in quarantine
    window_s: int = 300
    cooldown_s: int = 600


@dataclass(frozen=True, slots=True)
class McpAccess:
    """MCP servers, resources and prompts a client may reach (tools go through `tools`, as
    `server.tool`). None: all. Glob patterns; see proxy/mcp/access.py."""

    servers: tuple[str, ...] | None = None
    resources: tuple[str, ...] | None = None
    prompts: tuple[str, ...] | None = None
    accept_changed_tools: bool = False  # serve a changed tool definition without a review


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    name: str = "default"
    tools: frozenset[str] | None = None  # None: every tool the request offers
    data_scopes: tuple[str, ...] = ()
    taint_mode: TaintMode = TaintMode.ARGUMENT_PROVENANCE
    segregation: str = "delimit"
    actions: Mapping[Severity, Action] = field(default_factory=lambda: DEFAULT_ACTIONS)
    drop_side_effects_at: Severity = Severity.HIGH
    detection_mode: str = "enforce"
    quarantine: QuarantineRule = field(default_factory=QuarantineRule)
    mcp: McpAccess = field(default_factory=McpAccess)
    answer_links: str | None = None  # output_leak's mode for answer links (None: the stage's own)
    link_hosts: tuple[str, ...] = ()  # hosts an answer may link to even when only retrieved content named them

    def allows(self, tool: str) -> bool:
        return self.tools is None or tool in self.tools

    def action_for(self, severity: Severity) -> Action:
        return self.actions.get(severity, DEFAULT_ACTIONS[severity])


@dataclass(frozen=True, slots=True)
class Policy:
    tools: Mapping[str, ToolRule] = field(default_factory=dict)
    secret_scopes: frozenset[str] = frozenset()
    default: ClientPolicy = field(default_factory=ClientPolicy)
    clients: Mapping[str, ClientPolicy] = field(default_factory=dict)  # sha256(key) hex -> policy
    poisoned_content: frozenset[str] = frozenset()  # sha256 hex of reviewed poisoned retrieved content
    digest: str = "builtin"
    source: str = "built-in default"

    def tool(self, name: str) -> ToolRule:
        return self.tools.get(name) or _undeclared(name)

    def authenticate(self, api_key: str | None) -> ClientPolicy:
        """The caller's policy. No keys defined: everyone gets the default. Otherwise 401."""
        if not self.clients:
            return self.default
        if not api_key:
            raise Unauthorized("missing API key: send it as 'Authorization: Bearer <key>'")
        # Looked up by hash: the table holds no key, and a hash lookup leaks nothing usable.
        client = self.clients.get(hash_key(api_key))
        if client is None:
            raise Unauthorized("unknown API key")
        return client


@lru_cache(maxsize=1024)
def _undeclared(name: str) -> ToolRule:
    """The rule of a tool no policy declares: the same for every policy (so nothing to drop on a
    reload), frozen, and asked for several times per request."""
    return ToolRule(name=name, declared=False)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()
