"""Tool-definition pins in PostgreSQL, so replicas of the gateway share one set of pins and reviews.

One row per `server/tool` holding the pin as JSON; a write is an upsert (the decision logic in
proxy/mcp/pins.py is the same for both stores). psycopg's async connection, opened on first use.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from proxy.mcp.pins import Pin

SCHEMA = """create table if not exists guardproxy_mcp_pins (
    key text primary key, pin jsonb not null, updated timestamptz not null default now())"""


class PostgresPinStore:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._db: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._lock = asyncio.Lock()

    async def _conn(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        if self._db is None or self._db.closed:
            self._db = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=5)
            await self._db.execute(SCHEMA)
        return self._db

    async def get(self, server: str, tool: str) -> Pin | None:
        async with self._lock:
            cur = await (await self._conn()).execute("select pin from guardproxy_mcp_pins where key = %s",
                                                     (f"{server}/{tool}",))
            row = await cur.fetchone()
        return Pin.from_dict(_obj(row[0])) if row else None

    async def put(self, pin: Pin) -> None:
        async with self._lock:
            await (await self._conn()).execute(
                "insert into guardproxy_mcp_pins (key, pin) values (%s, %s) "
                "on conflict (key) do update set pin = excluded.pin, updated = now()",
                (pin.key, Jsonb(pin.as_dict())))

    async def all(self) -> list[Pin]:
        async with self._lock:
            cur = await (await self._conn()).execute("select pin from guardproxy_mcp_pins order by key")
            rows = await cur.fetchall()
        return [Pin.from_dict(_obj(r[0])) for r in rows]

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()


def _obj(value: object) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value  # psycopg decodes jsonb already
    if not isinstance(loaded, dict):
        raise ValueError("a pin row must hold a JSON object")
    return loaded
