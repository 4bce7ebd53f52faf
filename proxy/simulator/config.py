"""The run-time settings (SimConfig) and the thread-safe state that holds them and the stats.

Tests change the config from their own thread while the server runs on another, so every read and
write of the live config and counters goes through one lock.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

FAULTS = ("500", "429", "stall", "reset", "truncate", "stall_mid", "garbage")


@dataclass
class SimConfig:
    """How the simulator misbehaves. Invalid values raise ValueError at construction.

    `fault_count` limits the fault to the next N chat requests; the countdown restarts from
    `fault_count` whenever `fault` or `fault_count` is changed.
    """

    ttft_ms: float = 0.0  # delay before response headers/first chunk
    token_ms: float = 0.0  # delay between streamed events
    fault: str | None = None  # None or one of FAULTS
    fault_count: int | None = None  # apply the fault to the next N chat requests; None = all
    stall_s: float = 30.0  # how long "stall"/"stall_mid" sleep
    require_key: str | None = None  # chat requests must send `Authorization: Bearer <key>`

    def __post_init__(self) -> None:
        for name in ("ttft_ms", "token_ms", "stall_s"):
            value = getattr(self, name)
            # bool is an int subclass; `"ttft_ms": true` is a mistake, not 1 ms.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"fault must be null or one of {', '.join(FAULTS)}; got {self.fault!r}")
        count = self.fault_count
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise ValueError(f"fault_count must be null or an integer >= 0, got {count!r}")
        if self.require_key is not None and not isinstance(self.require_key, str):
            raise ValueError(f"require_key must be null or a string, got {self.require_key!r}")

    def updated(self, changes: Mapping[str, Any]) -> SimConfig:
        """A copy with `changes` applied; ValueError names unknown fields or bad values."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)


class SimState:
    """The live config plus the request counters, shared by the server thread and its callers."""

    def __init__(self, config: SimConfig) -> None:
        self._lock = threading.Lock()
        self._config = dataclasses.replace(config)  # our own copy: the caller's stays untouched
        self._fault_left = config.fault_count
        self._requests = 0
        self._faults_applied = 0
        self._last_request: dict[str, Any] | None = None

    def config(self) -> SimConfig:
        """A snapshot of the current config."""
        with self._lock:
            return dataclasses.replace(self._config)

    def configure(self, changes: Mapping[str, Any]) -> SimConfig:
        """Apply `changes` atomically (all or nothing) and return the new config."""
        with self._lock:
            self._config = self._config.updated(changes)
            if "fault" in changes or "fault_count" in changes:
                self._fault_left = self._config.fault_count
            return dataclasses.replace(self._config)

    def record(self, body: Any, headers: Mapping[str, str]) -> SimConfig:
        """Count a chat request, keep it for /_sim/stats, and return the config it runs under."""
        with self._lock:
            self._requests += 1
            self._last_request = {"body": body, "headers": dict(headers)}
            return dataclasses.replace(self._config)

    def take_fault(self) -> str | None:
        """The fault for this request, if any, counting it against `fault_count`."""
        with self._lock:
            fault = self._config.fault
            if fault is None or self._fault_left == 0:
                return None
            if self._fault_left is not None:
                self._fault_left -= 1
            self._faults_applied += 1
            return fault

    def stats(self) -> dict[str, Any]:
        """What GET /_sim/stats returns: a deep copy, safe to keep and mutate."""
        with self._lock:
            return {
                "requests": self._requests,
                "faults_applied": self._faults_applied,
                "last_request": copy.deepcopy(self._last_request),
            }


STATE_KEY = web.AppKey("sim_state", SimState)
