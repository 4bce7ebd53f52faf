"""Detection counters and cool-downs, in process (default) or in Redis (shared by replicas).

Fixed windows: a counter key lives `window_s` from its first hit, which bounds memory and makes
the Redis form two commands (INCR + EXPIRE NX). A cool-down is a key with a TTL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import redis.asyncio as redis_asyncio


class Counters(Protocol):
    async def hit(self, key: str, window_s: int) -> int: ...

    async def distinct(self, key: str, member: str, window_s: int) -> int: ...

    async def cool_down(self, key: str, seconds: int) -> None: ...

    async def remaining(self, key: str) -> float: ...

    async def remaining_many(self, keys: Sequence[str]) -> list[float]:
        """`remaining` of each key, in one round trip."""
        ...

    async def close(self) -> None: ...


class MemoryCounters:
    """Per-process counters: enough for one replica; state is lost on restart."""

    def __init__(self) -> None:
        self._now = time.monotonic
        self._counts: dict[str, tuple[float, int]] = {}  # key -> (window end, count)
        self._until: dict[str, float] = {}
        self._members: dict[str, tuple[float, set[str]]] = {}  # key -> (window end, members)

    async def hit(self, key: str, window_s: int) -> int:
        now = self._now()
        end, count = self._counts.get(key, (0.0, 0))
        if now >= end:
            end, count = now + window_s, 0
        self._counts[key] = (end, count + 1)
        if len(self._counts) > 100_000:  # bound memory under a flood of distinct sources
            self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
        return count + 1

    async def distinct(self, key: str, member: str, window_s: int) -> int:
        """Add `member` to the key's set for this window; how many distinct members it holds."""
        now = self._now()
        end, members = self._members.get(key, (0.0, set()))
        if now >= end:
            end, members = now + window_s, set()
        if len(members) < 1024:  # a threshold is a handful of keys; the set need not grow past it
            members.add(member)
        self._members[key] = (end, members)
        if len(self._members) > 100_000:
            self._members = {k: v for k, v in self._members.items() if v[0] > now}
        return len(members)

    async def cool_down(self, key: str, seconds: int) -> None:
        self._until[key] = self._now() + seconds

    async def remaining(self, key: str) -> float:
        return self.left(key)

    async def remaining_many(self, keys: Sequence[str]) -> list[float]:
        return [self.left(key) for key in keys]

    def left(self, key: str) -> float:
        """Seconds of cool-down left (0.0: none); in process, so no need to wait for it."""
        until = self._until.get(key)
        if until is None:
            return 0.0
        left = until - self._now()
        if left <= 0:
            del self._until[key]
            return 0.0
        return left

    async def close(self) -> None:
        return None


class RedisCounters:
    """Shared counters: every replica sees the same counts and cool-downs."""

    def __init__(self, url: str, prefix: str = "guardproxy:quarantine:") -> None:
        self._redis = redis_asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._prefix = prefix

    async def hit(self, key: str, window_s: int) -> int:
        name = f"{self._prefix}count:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_s, nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def distinct(self, key: str, member: str, window_s: int) -> int:
        name = f"{self._prefix}members:{key}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(name, member)
            pipe.expire(name, window_s, nx=True)
            pipe.scard(name)
            _, _, count = await pipe.execute()
        return int(count)

    async def cool_down(self, key: str, seconds: int) -> None:
        await self._redis.set(f"{self._prefix}until:{key}", "1", ex=seconds)

    async def remaining(self, key: str) -> float:
        ttl = await self._redis.pttl(f"{self._prefix}until:{key}")
        return max(0.0, ttl / 1000) if ttl and ttl > 0 else 0.0

    async def remaining_many(self, keys: Sequence[str]) -> list[float]:
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pttl(f"{self._prefix}until:{key}")
            ttls = await pipe.execute()
        return [max(0.0, ttl / 1000) if ttl and ttl > 0 else 0.0 for ttl in ttls]

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
