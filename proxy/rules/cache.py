"""Scan results of recently seen segments, so a text the engine has judged is not judged again.

Agent loops and chat clients resend the whole conversation every turn: the system prompt, the
user's earlier turns and every earlier tool result come back unchanged, and scanning them again
makes a conversation's total scan cost grow with the square of its length. The engine is a pure
function of (text, trust) for one compiled rule set and model, so its result can be reused; the
cache lives inside one Engine, and a reloaded rule set builds a new Engine with an empty cache.
Entries are kept per partition (the policy client): one client's traffic never warms the cache for
another, so response times cannot tell a client whether someone else sent a text.
Bounded in entries and in characters held (oldest out first); safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from proxy.model import Trust

V = TypeVar("V")

MAX_ENTRIES = 4096
MAX_CHARS = 8 << 20  # characters of text held as keys, across every entry
MAX_TEXT_CHARS = 256 << 10  # longer texts are scanned every time rather than pin that much memory


class ScanCache(Generic[V]):
    def __init__(self, max_entries: int = MAX_ENTRIES, max_chars: int = MAX_CHARS) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._items: OrderedDict[tuple[str | None, Trust, str], V] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, text: str, trust: Trust, partition: str | None = None) -> V | None:
        key = (partition, trust, text)
        with self._lock:
            found = self._items.get(key)
            if found is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found

    def put(self, text: str, trust: Trust, value: V, partition: str | None = None) -> None:
        if len(text) > MAX_TEXT_CHARS or self.max_entries <= 0:
            return
        key = (partition, trust, text)
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._chars += len(text)
            while len(self._items) > self.max_entries or self._chars > self.max_chars:
                (_, _, old), _ = self._items.popitem(last=False)
                self._chars -= len(old)

    def __len__(self) -> int:
        return len(self._items)
