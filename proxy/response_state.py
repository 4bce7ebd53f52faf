"""Taint that survives `previous_response_id`: what the proxy knew about each Responses API response.

With `previous_response_id` (or `conversation`) the earlier turns live at the provider, out of the
proxy's sight. So after each response the proxy remembers, per response id (and per conversation),
the labelled segments the model read (text, trust, provenance), the model's reply text and the
results of provider-run tools (untrusted), the tools offered, the findings, and the calls it
withheld. A later turn gets that history back as context segments (never forwarded: the provider
has it), so injection scans, tool scopes and argument provenance judge it against the whole
conversation, exactly as for a chat client that resends its history.

A reference the proxy does not know (expired, another replica without shared state, a response
made elsewhere) is never clean: it becomes an untrusted segment saying so. State lives in process
by default, or in Redis / PostgreSQL so replicas share it (`response_state.backend`).

The texts are kept, not only hashes: argument provenance asks whether a value appears in trusted or
untrusted text, which hashes of whole segments cannot answer. The store is bounded per record
(`max_chars`; older text beyond it collapses to one untrusted "history truncated" segment) and
expires after `ttl_s`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import redis.asyncio as redis_asyncio

from proxy.model import Conversation, Exchange, Location, Provenance, Segment, ToolCall, Trust
from proxy.providers.openai_responses import CONTEXT_ROOT, read_items, unread_segment
from proxy.providers.openai_responses_output import CALL_ITEMS, call_of

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Remembered:
    """One response as the proxy knew it, enough to judge the next turn."""

    segments: tuple[dict[str, Any], ...]  # {role, text, trust, kind, source, tool_call_id}
    tools: tuple[dict[str, Any], ...] = ()  # tool entries forwarded upstream
    findings: tuple[str, ...] = ()  # rule ids found anywhere in the conversation so far
    withheld_calls: tuple[str, ...] = ()  # call ids the provider made but the client never got
    complete: bool = True  # False: the proxy never saw this response's output (background)
    # (call id, tool name, arguments) of every call made so far: names a later output's source, and
    # tells argument provenance which record a result came from (a source the user designated).
    calls: tuple[tuple[str, str, str], ...] = ()

    def to_json(self) -> str:
        return json.dumps({"v": FORMAT, "segments": self.segments, "tools": self.tools, "findings": self.findings,
                           "withheld_calls": self.withheld_calls, "complete": self.complete,
                           "calls": self.calls},
                          ensure_ascii=False, separators=(",", ":"))

    @staticmethod
    def from_json(text: str | bytes) -> Remembered | None:
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("v") != FORMAT:
            return None  # a record this version cannot read counts as unknown: tainted
        calls = tuple((str(c[0]), str(c[1]), str(c[2]) if len(c) == 3 else "") for c in data.get("calls") or ()
                      if isinstance(c, list) and len(c) in (2, 3))
        return Remembered(tuple(data.get("segments") or ()), tuple(data.get("tools") or ()),
                          tuple(data.get("findings") or ()), tuple(data.get("withheld_calls") or ()),
                          bool(data.get("complete", False)), calls)


def segment_record(seg: Segment) -> dict[str, Any]:
    p = seg.provenance
    return {"role": seg.role, "text": seg.text, "trust": seg.trust.value, "kind": p.kind, "source": p.source,
            "tool_call_id": p.tool_call_id}


def bounded(segments: list[dict[str, Any]], max_chars: int) -> list[dict[str, Any]]:
    """The newest segments within `max_chars`; what falls off becomes one untrusted marker."""
    total, keep = 0, len(segments)
    for n in range(len(segments) - 1, -1, -1):
        total += len(segments[n]["text"])
        if total > max_chars:
            break
        keep = n
    if keep == 0:
        return segments
    marker = {"role": "tool", "text": "", "trust": Trust.UNTRUSTED.value, "kind": "history_truncated",
              "source": f"{keep} earlier segments", "tool_call_id": None}
    return [marker, *segments[keep:]]


def with_history(conv: Conversation, remembered: Remembered | None, reference: str) -> Conversation:
    """`conv` with the earlier turns in front, as context segments; unknown history is untrusted."""
    if remembered is None:
        prior = [Segment(0, "tool", "", Trust.UNTRUSTED, Provenance("unknown_history", reference),
                         Location((CONTEXT_ROOT, "history", 0)))]
    else:
        prior = [_segment(n, r) for n, r in enumerate(remembered.segments)]
        if not remembered.complete:
            prior.append(Segment(0, "tool", "", Trust.UNTRUSTED, Provenance("unseen_output", reference),
                                 Location((CONTEXT_ROOT, "history", len(prior)))))
    calls = remembered.calls if remembered else ()
    names = {call_id: name for call_id, name, _ in calls}
    earlier = tuple(ToolCall(call_id, name, arguments) for call_id, name, arguments in calls)
    restored = conv.with_segments([*prior, *(_named(s, names) for s in conv.segments)])
    return dataclasses.replace(restored, calls=(*earlier, *conv.calls))


def _named(seg: Segment, names: dict[str, str]) -> Segment:
    """A tool output answering a call made in an earlier turn gets that tool's name as its source."""
    p = seg.provenance
    if p.source is None and p.tool_call_id in names:
        return dataclasses.replace(seg, provenance=dataclasses.replace(p, source=names[str(p.tool_call_id)]))
    return seg


def _segment(n: int, r: dict[str, Any]) -> Segment:
    try:
        trust = Trust(str(r.get("trust")))
    except ValueError:
        trust = Trust.UNTRUSTED
    prov = Provenance(str(r.get("kind") or "history"), r.get("source"), r.get("tool_call_id"))
    return Segment(n, str(r.get("role") or "tool"), str(r.get("text") or ""), trust, prov,
                   Location((CONTEXT_ROOT, "history", n)))


def remember(exchange: Exchange, response: dict[str, Any], previous: Remembered | None,
             max_chars: int) -> Remembered:
    """What to keep after a turn: everything read (history included), the reply as the client got
    it (message text, provider-run tools' results as untrusted), tools offered, findings, withheld calls."""
    received = exchange.received_conversation or exchange.conversation
    output = response.get("output")
    segments = [segment_record(s) for s in received.segments if s.provenance.kind != "guardproxy"]
    # Shapes passed unread (unknown_shapes: pass_uninspected) stay taint in every later turn.
    segments += [segment_record(unread_segment(u)) for u in received.uninspected if u.chars]
    segments += [segment_record(s) for s in read_items(output if isinstance(output, list) else [])]
    findings = sorted({f.rule_id for f in exchange.findings} | set(previous.findings if previous else ()))
    got = exchange.output
    upstream = exchange.attributes.get("upstream_output") or got
    calls = {call_id: (name, arguments) for call_id, name, arguments in (previous.calls if previous else ())}
    for item in [*(received.raw.get("input") or [] if isinstance(received.raw.get("input"), list) else []),
                 *(output if isinstance(output, list) else [])]:
        if isinstance(item, dict) and item.get("type") in CALL_ITEMS and isinstance(item.get("call_id"), str):
            call = call_of(item, 0)
            calls[call.id] = (call.name, call.arguments)
    withheld = set()
    if got is not None:
        sent = {c.id for c in got.tool_calls}
        made = {c.id: c for c in (*got.withheld, *getattr(upstream, "tool_calls", ())) if c.id not in sent}
        # The provider wants an output for each call it made; an MCP approval request needs no
        # answer (unanswered, it never runs), so the proxy sends none.
        withheld = {cid for cid, c in made.items() if not c.name.startswith("mcp:")}
        calls |= {cid: (made[cid].name, made[cid].arguments) for cid in withheld}
    return Remembered(
        calls=tuple((call_id, name, arguments) for call_id, (name, arguments) in calls.items()),
        segments=tuple(bounded(segments, max_chars)),
        tools=tuple(t.raw for t in exchange.conversation.tools),
        findings=tuple(findings),
        withheld_calls=tuple(sorted(withheld)),
        complete=response.get("status") not in ("queued", "in_progress"),
    )


# --- stores ---------------------------------------------------------------------------------------


class StateStore(Protocol):
    async def get(self, key: str) -> Remembered | None: ...

    async def put(self, key: str, value: Remembered) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryState:
    """Per process, least recently used first out, entries expire after `ttl_s`."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._now = time.monotonic

    async def get(self, key: str) -> Remembered | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._now():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return Remembered.from_json(entry[1])

    async def put(self, key: str, value: Remembered) -> None:
        self._data[key] = (self._now() + self._ttl, value.to_json())  # stored serialised: no shared mutables
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def close(self) -> None:
        return None


class RedisState:
    def __init__(self, url: str, ttl_s: float, prefix: str = "guardproxy:responses:") -> None:
        self._redis = redis_asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._ttl = max(1, int(ttl_s))
        self._prefix = prefix

    async def get(self, key: str) -> Remembered | None:
        raw = await self._redis.get(self._prefix + key)
        return None if raw is None else Remembered.from_json(raw)

    async def put(self, key: str, value: Remembered) -> None:
        await self._redis.set(self._prefix + key, value.to_json(), ex=self._ttl)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def close(self) -> None:
        await self._redis.aclose()


_SCHEMA = """create table if not exists guardproxy_response_state (
  key text primary key, body text not null, expires double precision not null)"""


class PostgresState:
    """Shared through PostgreSQL; expired rows are ignored on read and pruned on write."""

    def __init__(self, dsn: str, ttl_s: float) -> None:
        self._dsn = dsn
        self._ttl = ttl_s
        self._db: psycopg.AsyncConnection[Any] | None = None

    async def _conn(self) -> psycopg.AsyncConnection[Any]:
        if self._db is None or self._db.closed or self._db.broken:
            self._db = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=5)
            await self._db.execute(_SCHEMA)
        return self._db

    async def get(self, key: str) -> Remembered | None:
        db = await self._conn()
        cur = await db.execute("select body from guardproxy_response_state where key = %s and expires > %s",
                               (key, time.time()))
        row = await cur.fetchone()
        return None if row is None else Remembered.from_json(row[0])

    async def put(self, key: str, value: Remembered) -> None:
        db = await self._conn()
        now = time.time()
        await db.execute(
            "insert into guardproxy_response_state (key, body, expires) values (%s, %s, %s) "
            "on conflict (key) do update set body = excluded.body, expires = excluded.expires",
            (key, value.to_json(), now + self._ttl))
        await db.execute("delete from guardproxy_response_state where expires <= %s", (now,))

    async def delete(self, key: str) -> None:
        db = await self._conn()
        await db.execute("delete from guardproxy_response_state where key = %s", (key,))

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()


def open_state(backend: str, url: str | None, ttl_s: float, max_entries: int) -> StateStore:
    if backend == "redis" and url:
        return RedisState(url, ttl_s)
    if backend == "postgres" and url:
        return PostgresState(url, ttl_s)
    return MemoryState(ttl_s, max_entries)
