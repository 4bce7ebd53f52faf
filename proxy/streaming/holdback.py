"""Text hold-back: streamed text passes the incremental output inspectors before it may leave. Sans-I/O.

Every delta is fed to each inspector; the gate then releases all text except the last `window`
characters, so a finding that spans chunk boundaries is seen before the text that completes it has
left. An inspector that reports partial matches itself (HOLD) may state a smaller need as a
`holdback_chars` attribute, read after every delta (so it may track, e.g., an unfinished word);
the gate keeps back the largest need of its active inspectors, so the window (and the first
token's delay) is only as large as the guards in force require. An inspector answering HOLD
keeps everything unreleased back until it decides (bounded by `max_hold`: past it the gate ends
the stream, failing closed, since a guard that never decides must not stall a stream forever or
let its text out unread). BLOCK ends the stream; redactions from a
RedactingInspector are applied to held text as it is released. A boundary (end of a text block,
end of the turn) releases the tail: no more text can complete a finding there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from proxy.guards.base import RedactingInspector, StreamAction, StreamInspector
from proxy.model import StageStatus, Verdict, VerdictKind
from proxy.pipeline import failure_verdict

log = logging.getLogger("guardproxy.streaming")
DEFAULT_WINDOW = 32
DEFAULT_MAX_HOLD = 4096


@dataclass(slots=True)
class Inspecting:
    """One stage's inspector over one stream of text."""

    stage: str
    inspector: StreamInspector
    failure_mode: str = "closed"
    status: StageStatus = StageStatus.OK
    detail: str = ""
    verdict: Verdict | None = None  # set once closed
    active: bool = True
    redacting: bool = False  # a RedactingInspector (checked once: protocol checks are slow)
    states_window: bool = False  # the inspector states its own hold-back need (`holdback_chars`)

    def __post_init__(self) -> None:
        self.redacting = isinstance(self.inspector, RedactingInspector)
        self.states_window = hasattr(self.inspector, "holdback_chars")

    def window(self, default: int) -> int:
        if not self.states_window:
            return default
        own = getattr(self.inspector, "holdback_chars", default)  # may change with every delta
        return own if isinstance(own, int) and own >= 0 else default


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    replacement: str


@dataclass(frozen=True, slots=True)
class Stop:
    stage: str
    reason: str
    verdict: Verdict | None = None


@dataclass
class TextGate:
    inspectors: list[Inspecting]
    window: int = DEFAULT_WINDOW
    max_hold: int = DEFAULT_MAX_HOLD
    stopped: Stop | None = None
    sent: list[str] = field(default_factory=list)  # what left, redactions applied
    _held: str = ""  # text not yet released
    _base: int = 0  # offset of _held[0] in all text fed
    _redactions: list[_Span] = field(default_factory=list)  # pending, in offsets of all text fed

    @property
    def total(self) -> int:
        return self._base + len(self._held)

    @property
    def held_chars(self) -> int:
        return len(self._held)

    def feed(self, delta: str) -> str:
        """Take a delta; return the text that may leave now ("" when nothing may)."""
        if self.stopped is not None:
            return ""
        self._held += delta
        hold = False
        for entry in self.inspectors:
            if not entry.active:
                continue
            action = self._feed_one(entry, delta)
            if self.stopped is not None:
                return ""
            hold = hold or action is StreamAction.HOLD
        if hold:
            if len(self._held) > self.max_hold:
                self.stopped = Stop("stream", f"an output guard held more than {self.max_hold} characters "
                                              "without deciding; the stream fails closed")
            return ""
        return self._release(self.total - self._window())

    def _window(self) -> int:
        """The largest hold-back any active inspector needs (the configured one if it states none)."""
        return max((e.window(self.window) for e in self.inspectors if e.active), default=0)

    def flush(self) -> str:
        """A boundary: inspectors settle partial matches, then everything held leaves (redacted)."""
        if self.stopped is not None:
            return ""
        for entry in self.inspectors:
            if entry.active and entry.redacting:
                self._feed_one(entry, None)
                if self.stopped is not None:
                    return ""
        return self._release(self.total)

    def close(self) -> list[Inspecting]:
        """Close every inspector (once) and return them with their verdicts and statuses."""
        for entry in self.inspectors:
            if entry.verdict is None and entry.status is StageStatus.OK:
                entry.verdict = self._close_one(entry)
        return self.inspectors

    def _feed_one(self, entry: Inspecting, delta: str | None) -> StreamAction:
        """Feed a delta (None: a boundary) and take its redactions, applying the failure mode."""
        try:
            inspector = entry.inspector
            if delta is None:
                action = inspector.end_of_text() if entry.redacting else StreamAction.RELEASE  # type: ignore[attr-defined]
            else:
                action = inspector.feed(delta)
            if entry.redacting:
                for start, end, replacement in inspector.take_redactions():  # type: ignore[attr-defined]
                    self._add_redaction(start, end, replacement)
        except Exception as exc:  # the guard's own failure: the pipeline's failure policy decides
            log.exception("stream inspector of %s failed", entry.stage)
            entry.status, entry.detail, entry.active = StageStatus.ERROR, f"{type(exc).__name__}: {exc}", False
            verdict = entry.verdict = failure_verdict(entry.stage, entry.failure_mode, entry.detail)
            if verdict.kind is VerdictKind.BLOCK:
                self.stopped = Stop(entry.stage, verdict.message, verdict)
            return StreamAction.RELEASE
        if action is StreamAction.BLOCK:
            entry.verdict = self._close_one(entry)
            entry.active = False
            self.stopped = Stop(entry.stage, _reason(entry), entry.verdict)
        return action

    def _close_one(self, entry: Inspecting) -> Verdict | None:
        try:
            return entry.inspector.close()
        except Exception as exc:
            log.exception("stream inspector of %s failed to close", entry.stage)
            entry.status, entry.detail = StageStatus.ERROR, f"{type(exc).__name__}: {exc}"
            return None

    def _add_redaction(self, start: int, end: int, replacement: str) -> None:
        start, end = max(start, self._base), min(end, self.total)
        if end <= start:
            return  # it had all left already: the finding records the leak
        for r in self._redactions:
            if start <= r.end and r.start <= end:  # overlapping or touching: one redaction
                r.start, r.end = min(r.start, start), max(r.end, end)
                return
        self._redactions.append(_Span(start, end, replacement))
        self._redactions.sort(key=lambda r: r.start)

    def _release(self, target: int) -> str:
        target = max(target, self._base)
        for r in self._redactions:  # never cut a redaction in two: release all of it or none
            if r.start < target < r.end:
                target = r.end
        if target <= self._base:
            return ""
        pieces, pos = [], self._base
        keep = []
        for r in self._redactions:
            if r.end <= target:
                pieces.append(self._held[pos - self._base : r.start - self._base])
                pieces.append(r.replacement)
                pos = r.end
            else:
                keep.append(r)
        pieces.append(self._held[pos - self._base : target - self._base])
        self._redactions = keep
        self._held = self._held[target - self._base :]
        self._base = target
        out = "".join(pieces)
        if out:
            self.sent.append(out)
        return out


def _reason(entry: Inspecting) -> str:
    verdict = entry.verdict
    if verdict is not None and verdict.message:
        return verdict.message
    if verdict is not None and verdict.decision is not None and verdict.decision.reasons:
        return "; ".join(verdict.decision.reasons)
    return f"output blocked by guard {entry.stage!r}"

