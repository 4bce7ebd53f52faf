"""Tool-definition pins: the first definition seen of a server's tool is hashed and kept.

A definition is what the model reads of a tool: its description and input schema. On first sight
it is pinned (approved, unless the injection rules found it poisoned). A later definition with
another hash is a *change*: it is withheld from `tools/list` and kept as pending until a reviewer
approves or rejects it (`guardproxy mcp pins ...`), or the client's policy accepts changes.

Stores: a JSON file (one process, or a shared volume with one writer), or PostgreSQL for replicas
(proxy/mcp/pins_postgres.py). The file store re-reads the file when it changed on disk, so a
reviewer's decision takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from proxy.errors import ConfigError

if TYPE_CHECKING:
    from proxy.settings import Settings


class PinState(StrEnum):
    APPROVED = "approved"  # served
    POISONED = "poisoned"  # first sight carried an injection finding: withheld until approved


class Sight(StrEnum):
    """What one sighting of a definition means for the listing."""

    PINNED = "pinned"  # first sight, pinned now: served
    MATCH = "match"  # the pinned, approved definition: served
    CHANGED = "changed"  # differs from the pin: withheld, pending review
    POISONED = "poisoned"  # withheld: its text carries an injection finding
    REJECTED = "rejected"  # a reviewer rejected this definition: withheld
    ACCEPTED = "accepted"  # changed, and the client's policy accepts changes: re-pinned, served


SERVED = frozenset({Sight.PINNED, Sight.MATCH, Sight.ACCEPTED})


def definition_of(tool: dict[str, Any]) -> dict[str, Any]:
    return {"description": tool.get("description") or "", "inputSchema": tool.get("inputSchema") or {}}


def definition_hash(definition: dict[str, Any]) -> str:
    canonical = json.dumps(definition, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Pending:
    hash: str
    definition: dict[str, Any]
    seen: float
    findings: list[str] = field(default_factory=list)
    rejected: bool = False


@dataclass
class Pin:
    server: str
    tool: str
    hash: str
    definition: dict[str, Any]
    state: PinState
    first_seen: float
    findings: list[str] = field(default_factory=list)  # rule ids that made it poisoned
    pending: Pending | None = None
    rejected: list[str] = field(default_factory=list)  # hashes a reviewer rejected

    @property
    def key(self) -> str:
        return f"{self.server}/{self.tool}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Pin:
        pending = Pending(**d["pending"]) if d.get("pending") else None
        return Pin(**{**d, "state": PinState(d["state"]), "pending": pending})


class PinStore(Protocol):
    async def get(self, server: str, tool: str) -> Pin | None: ...

    async def put(self, pin: Pin) -> None: ...

    async def all(self) -> list[Pin]: ...


def sight(pin: Pin | None, server: str, tool: str, definition: dict[str, Any], findings: list[str],
          accept_changes: bool, now: float | None = None) -> tuple[Sight, Pin | None]:
    """Decide one sighting; returns the verdict and the pin to store (None: nothing to store)."""
    now = time.time() if now is None else now
    digest = definition_hash(definition)
    if pin is None:
        state = PinState.POISONED if findings else PinState.APPROVED
        new = Pin(server, tool, digest, definition, state, now, findings)
        return (Sight.POISONED if findings else Sight.PINNED), new
    if digest == pin.hash:
        if pin.state is PinState.POISONED:
            return Sight.POISONED, None
        return Sight.MATCH, (replace(pin, pending=None) if pin.pending else None)
    if digest in pin.rejected:
        return Sight.REJECTED, None
    if findings:
        return Sight.POISONED, _with_pending(pin, digest, definition, findings, now)
    if accept_changes:
        return Sight.ACCEPTED, replace(pin, hash=digest, definition=definition, state=PinState.APPROVED,
                                       findings=[], pending=None)
    return Sight.CHANGED, _with_pending(pin, digest, definition, findings, now)


def _with_pending(pin: Pin, digest: str, definition: dict[str, Any], findings: list[str], now: float) -> Pin | None:
    if pin.pending is not None and pin.pending.hash == digest:
        return None  # already recorded
    return replace(pin, pending=Pending(digest, definition, now, findings))


def approve(pin: Pin) -> Pin:
    """The pending definition (or a poisoned first sight) becomes the approved pin."""
    if pin.pending is not None:
        return replace(pin, hash=pin.pending.hash, definition=pin.pending.definition, state=PinState.APPROVED,
                       findings=[], pending=None)
    return replace(pin, state=PinState.APPROVED, findings=[])


def reject(pin: Pin) -> Pin:
    """The pending definition is refused for good; the approved one (if any) stays served."""
    if pin.pending is not None:
        return replace(pin, rejected=[*pin.rejected, pin.pending.hash], pending=None)
    return replace(pin, rejected=[*pin.rejected, pin.hash])


class FilePinStore:
    """All pins in one JSON file, written atomically (temp file + rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pins: dict[str, Pin] = {}
        self._mtime: float | None = None
        self._lock = asyncio.Lock()

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._pins, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        self._pins = {k: Pin.from_dict(v) for k, v in data.get("pins", {}).items()}
        self._mtime = mtime

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"pins": {k: p.as_dict() for k, p in sorted(self._pins.items())}}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".mcp-pins-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime

    async def get(self, server: str, tool: str) -> Pin | None:
        self._reload()
        return self._pins.get(f"{server}/{tool}")

    async def put(self, pin: Pin) -> None:
        async with self._lock:
            self._reload()
            self._pins[pin.key] = pin
            self._write()

    async def all(self) -> list[Pin]:
        self._reload()
        return list(self._pins.values())

    async def close(self) -> None:
        return None


def open_store(settings: Settings) -> PinStore:
    """The store the settings name: `mcp.pins_backend` files (default) or postgres."""
    mcp = settings.mcp
    if mcp.pins_backend == "postgres":
        from proxy.mcp.pins_postgres import PostgresPinStore

        if mcp.pins_dsn is None:
            raise ConfigError("mcp.pins_backend is postgres but mcp.pins_dsn is not set")
        return PostgresPinStore(mcp.pins_dsn.get_secret_value())
    return FilePinStore(mcp.pins_path)
