"""The one extension contract: a guard has a name, the phases it runs in, and an async `inspect`.

A guard reads the Exchange and never mutates it; it answers with a Verdict (allow, transform,
block) carrying findings. A guard that can check a stream also hands out a per-stream inspector.
Raising means the guard itself failed; the pipeline then applies its failure mode.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from proxy.model import Exchange, Phase, Verdict


class StreamAction(StrEnum):
    RELEASE = "release"  # everything fed so far may go to the client
    HOLD = "hold"  # keep the tail back until more text arrives
    BLOCK = "block"  # end the stream; `close()` says why


@runtime_checkable
class StreamInspector(Protocol):
    def feed(self, delta: str) -> StreamAction: ...

    def close(self) -> Verdict: ...


# (start, end, replacement): character offsets into all the text the inspector has been fed.
Redaction = tuple[int, int, str]


@runtime_checkable
class RedactingInspector(StreamInspector, Protocol):
    """Optional: an inspector that redacts spans in flight and settles partial matches at boundaries.

    After each `feed` the stream guard takes the new redactions and applies them to text it still
    holds; a span whose start has already left is redacted from the first character still held.
    `end_of_text` is called at a boundary (end of a text block or of the turn), before the held
    text is released: the text so far is complete, so partial matches must be decided now.
    """

    def take_redactions(self) -> list[Redaction]: ...

    def end_of_text(self) -> StreamAction: ...


@runtime_checkable
class Guard(Protocol):
    name: str
    phases: frozenset[Phase]

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict: ...


@runtime_checkable
class SyncGuard(Guard, Protocol):
    """Optional: a guard whose judgement never waits on I/O offers it as a plain call, which the
    pipeline may make directly (no coroutine, no deadline: nothing could interrupt it before it
    returns anyway); its `inspect` gives the same verdict."""

    def check(self, exchange: Exchange, phase: Phase) -> Verdict: ...


@runtime_checkable
class InlineGuard(Guard, Protocol):
    """Optional: a guard that usually answers without waiting (a short text scanned in the loop, a
    counter held in process) offers that answer as a plain call; None means this exchange needs the
    awaited `inspect` (a long text for a worker thread, a shared store). When it answers, its
    verdict is the one `inspect` would give."""

    def inline(self, exchange: Exchange, phase: Phase) -> Verdict | None: ...


@runtime_checkable
class StreamingGuard(Guard, Protocol):
    def stream_inspector(self, exchange: Exchange) -> StreamInspector | None: ...


@runtime_checkable
class Lifecycle(Protocol):
    """Optional: a guard with background work (e.g. hot reload) is started and closed by the app."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Readiness(Protocol):
    """Optional: a guard that needs something loaded says whether it is ready, and why not."""

    def ready(self) -> tuple[bool, str]: ...


class OutputReach(StrEnum):
    """What an output guard without a stream inspector needs held back on a stream for it.

    A stream runs such guards once, at the end of the model's turn, before the turn's last event
    leaves; what they may still change depends on what was held for them.
    """

    WHOLE = "whole"  # judges (or rewrites) the text: all of it is held, up to stream.max_hold_chars
    TOOL_CALLS = "tool_calls"  # judges tool calls only: calls are held, text flows
    RECORD = "record"  # for this exchange it can only tag or allow: nothing is held for it


@runtime_checkable
class ReachDeclaring(Protocol):
    """Optional: an output guard without a stream inspector says what it needs held (default WHOLE)."""

    def output_reach(self, exchange: Exchange) -> OutputReach: ...


@runtime_checkable
class TextRewriter(Protocol):
    """Rewrites one channel of streamed text (e.g. restores masked PII); may hold a partial tail."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...

    def whole(self, text: str) -> str:
        """A complete text (a tool call's arguments), rewritten at once."""
        ...


@runtime_checkable
class RewritingGuard(Protocol):
    """Optional: a guard that rewrites the text a stream hands the client: it gives a factory
    (called once per channel, at any time during the stream), or None when it has nothing to do."""

    def stream_rewriter(self, exchange: Exchange) -> Callable[[], TextRewriter] | None: ...


@runtime_checkable
class ExchangeObserver(Protocol):
    """Optional: a guard that learns from each finished exchange (called after the response)."""

    async def observe(self, exchange: Exchange) -> None: ...


@runtime_checkable
class ChangeAnnouncer(Protocol):
    """Optional: a guard whose configuration changes at run time (hot-reloaded rules) announces it."""

    def subscribe(self, hook: Callable[[dict[str, Any]], None]) -> None: ...
