"""The gateway's mirror of MCP sessions: just enough state to keep trust labels across requests.

Per session (the upstream's `Mcp-Session-Id`, passed through unchanged): the client key that
opened it (another key presenting the id gets 404, as if it did not exist), the requests in
flight (so an answer on the GET channel or after a resumption is judged by its method), and the
untrusted content its results carried (taint, for argument provenance on side-effecting calls).
A request without a session (the stateless 2026 era) is mirrored under its client key instead.
Everything is bounded: sessions LRU-evicted, in-flight ids and taint capped per session.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from proxy.mcp.jsonrpc import Pending, RequestId
from proxy.model import Provenance, Segment, Severity, Trust

MAX_PENDING = 256
MAX_TAINT = 32  # distinct results remembered per session for argument provenance
MAX_TAINT_CHARS = 16_384  # of each (a side-effecting call is traced against them all)


@dataclass
class Session:
    key: str  # session id, or "key:<client key id>" for session-less requests
    owner: str  # the client key id that opened it
    server: str
    created: float = field(default_factory=time.time)
    pending: OrderedDict[RequestId, Pending] = field(default_factory=OrderedDict)
    taint: deque[Segment] = field(default_factory=lambda: deque(maxlen=MAX_TAINT))
    worst: Severity | None = None  # strongest enforced finding its results carried
    # The mirror was not there when the session was presented (restart, eviction): what its
    # results carried is unknown, so it counts as tainted.
    state_lost: bool = False

    def expect(self, id: RequestId, pending: Pending) -> None:
        self.pending[id] = pending
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)

    def answered(self, id: RequestId | None) -> Pending | None:
        """The request an answer belongs to. Kept after the answer (bounded): a stream replayed
        with `Last-Event-ID` repeats answers, and each is judged again."""
        return self.pending.get(id) if id is not None else None

    def tainted_by(self, source: str, text: str, severity: Severity | None) -> None:
        text = text[:MAX_TAINT_CHARS]
        if not any(s.text == text and s.provenance.source == source for s in self.taint):
            self.taint.append(Segment(len(self.taint), "tool", text, Trust.UNTRUSTED, Provenance("mcp", source), None))
        if severity is not None and (self.worst is None or severity.rank > self.worst.rank):
            self.worst = severity


class SessionTable:
    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def get(self, key: str) -> Session | None:
        session = self._sessions.get(key)
        if session is not None:
            self._sessions.move_to_end(key)
        return session

    def open(self, key: str, owner: str, server: str, *, state_lost: bool = False) -> Session:
        session = self.get(key)
        if session is None:
            session = Session(key, owner, server, state_lost=state_lost)
            self._sessions[key] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return session

    def adopt(self, old: Session, session_id: str) -> Session:
        """A new session id from an `initialize` answer: the mirror moves under it."""
        new = self.open(session_id, old.owner, old.server)
        new.pending.update(old.pending)
        return new

    def drop(self, key: str) -> None:
        self._sessions.pop(key, None)

    def __len__(self) -> int:
        return len(self._sessions)
