"""Approvals: a call withheld for its argument provenance passes once after the application's
user confirms it.

A withheld call gets an approval id (in the notice, the `x-guardproxy-approval-id` header and the
evidence). The application shows the call to its user and, if they agree, sends
`POST /v1/guardproxy/approvals/{id}` with the same client key. When the model makes the same call
again (same client, same tool, same canonical arguments, same conversation) it passes once.
"Same conversation" is the operator and first user text: an application re-sends the history,
so that prefix is what stays fixed. Pending approvals live in the process for `ttl_s` and at most
`max_entries` are kept (oldest dropped first).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from proxy.model import Conversation, ToolCall, Trust


@dataclass
class Pending:
    id: str
    client: str
    tool: str
    arguments: str
    key: str
    created: float
    approved: bool = False


def call_key(client: str, conv: Conversation, call: ToolCall) -> str:
    """What an approval binds: client, conversation prefix, tool and canonical arguments."""
    try:
        args = json.dumps(json.loads(call.arguments or "{}"), sort_keys=True, separators=(",", ":"))
    except (ValueError, RecursionError):
        args = call.arguments
    digest = hashlib.sha256()
    for part in (client, _conversation_prefix(conv), call.name, args):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _conversation_prefix(conv: Conversation) -> str:
    operator = [s.text for s in conv.segments if s.trust is Trust.TRUSTED and s.location is not None]
    first_user = next((s.text for s in conv.segments if s.role == "user" and s.trust is Trust.USER), "")
    return "\x00".join([*operator, first_user])


class ApprovalStore:
    def __init__(self, ttl_s: float = 900.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._by_id: OrderedDict[str, Pending] = OrderedDict()
        self._by_key: dict[str, str] = {}

    def offer(self, client: str, key: str, call: ToolCall) -> str:
        """The approval id for a withheld call (the same one while it is pending)."""
        self._expire()
        known = self._by_key.get(key)
        if known is not None:
            return known
        pending = Pending("ap_" + secrets.token_urlsafe(16), client, call.name, call.arguments, key, self._clock())
        self._by_id[pending.id] = pending
        self._by_key[key] = pending.id
        while len(self._by_id) > self.max_entries:
            self._drop(next(iter(self._by_id)))
        return pending.id

    def get(self, approval_id: str, client: str) -> Pending | None:
        """A pending call, for the application to show its user; None when unknown or another client's."""
        self._expire()
        pending = self._by_id.get(approval_id)
        return pending if pending is not None and pending.client == client else None

    def approve(self, approval_id: str, client: str) -> Pending | None:
        """Mark a pending call approved; None when unknown, expired or another client's."""
        self._expire()
        pending = self._by_id.get(approval_id)
        if pending is None or pending.client != client:
            return None
        pending.approved = True
        return pending

    def consume(self, key: str) -> str | None:
        """The id of an approved call with this key, used up; None when there is none."""
        self._expire()
        approval_id = self._by_key.get(key)
        if approval_id is None or not self._by_id[approval_id].approved:
            return None
        self._drop(approval_id)
        return approval_id

    def _expire(self) -> None:
        horizon = self._clock() - self.ttl_s
        while self._by_id:
            oldest = next(iter(self._by_id.values()))
            if oldest.created > horizon:
                return
            self._drop(oldest.id)

    def _drop(self, approval_id: str) -> None:
        pending = self._by_id.pop(approval_id)
        self._by_key.pop(pending.key, None)
