"""The coverage ledger: what each exchange's stages inspected, and what nobody did and why.

"Not scanned" must never read as "passed". Every item the model read (each string a segment came
from, each non-text part, each shape passed unread) and every output item (each choice's text,
each tool call) gets one entry naming the stages that ran over it; an entry no stage covered
says why. The ledger goes into the evidence bundle, the SERVER span and the
`x-guardproxy-coverage` response header (`complete`, or `partial;uninspected=N`).

The request and plain-response entries are derived from the finished Exchange (its conversation,
output and stage records). The stream machinery adds what only it knows through the Exchange's
`stream_coverage` (a `proxy.model.StreamCoverage`): `inspected(item, stage)` when a stage judged
a stream item before it left, and `not_inspected(item, why, chars)` when bytes left unjudged
(e.g. "output: released past the hold bound").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.model import Exchange, Output, Phase, StageStatus, StreamCoverage, Trust

HEADER = "x-guardproxy-coverage"


@dataclass(frozen=True, slots=True)
class Entry:
    item: str  # where: "messages.3.content", "tools.0.function.description", "output.choices.1.text"
    kind: str  # text | opaque | unread | output_text | tool_call | stream
    trust: str | None  # for request items: who wrote it
    chars: int
    stages: tuple[str, ...]  # the stages that inspected it; empty: nobody did
    why: str = ""  # for an uninspected item: why not

    @property
    def inspected(self) -> bool:
        return bool(self.stages)

    def as_dict(self) -> dict[str, Any]:
        return {"item": self.item, "kind": self.kind, "trust": self.trust, "chars": self.chars,
                "stages": list(self.stages), "why": self.why or None}


@dataclass(frozen=True, slots=True)
class Ledger:
    entries: tuple[Entry, ...]

    @property
    def uninspected(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if not e.inspected)

    @property
    def complete(self) -> bool:
        return not self.uninspected

    def header(self) -> str:
        return "complete" if self.complete else f"partial;uninspected={len(self.uninspected)}"

    def as_dict(self) -> dict[str, Any]:
        return {"complete": self.complete, "uninspected": len(self.uninspected),
                "entries": [e.as_dict() for e in self.entries]}


def uninspected_count(exchange: Exchange) -> int:
    """How many ledger entries no stage inspected, without building the ledger (the header and
    the span need only this, on every request; `ledger` agrees with it, see the tests)."""
    conv = exchange.received_conversation or exchange.conversation
    count = len(conv.opaque) + sum(1 for u in conv.uninspected if u.chars)
    if conv.segments and not _any_ran(exchange, Phase.INPUT):
        count += len({s.location.path for s in conv.segments if s.location is not None})
    out = exchange.output
    if out is not None and not _any_ran(exchange, Phase.OUTPUT):
        produced = exchange.attributes.get("upstream_output")
        out = produced if isinstance(produced, Output) else out
        count += 1 + sum(1 for a in out.alternatives if a.text) + len(out.tool_calls)
    if out is not None:
        count += sum(1 for u in _unread_output(exchange).uninspected if u.chars)
    return count + len(exchange.stream_coverage.gaps)


def header(exchange: Exchange) -> str:
    n = uninspected_count(exchange)
    return "complete" if n == 0 else f"partial;uninspected={n}"


def _any_ran(exchange: Exchange, phase: Phase) -> bool:
    return any(r.phase is phase and r.status is StageStatus.OK and r.verdict is not None for r in exchange.stages)


def ledger(exchange: Exchange) -> Ledger:
    """The exchange's ledger as of now (call it again once the output is in)."""
    ran_in, why_in = _ran(exchange, Phase.INPUT)
    entries = _request_entries(exchange, ran_in, why_in)
    if exchange.output is not None:
        ran_out, why_out = _ran(exchange, Phase.OUTPUT)
        entries += _output_entries(exchange, ran_out, why_out)
    entries += _stream_entries(exchange.stream_coverage)
    return Ledger(tuple(entries))


def _ran(exchange: Exchange, phase: Phase) -> tuple[tuple[str, ...], str]:
    """The stages that ran to a verdict in `phase`, and why the others did not."""
    ran, missed = [], []
    for record in exchange.stages:
        if record.phase is not phase:
            continue
        if record.status is StageStatus.OK and record.verdict is not None:
            if record.name not in ran:
                ran.append(record.name)
        else:
            missed.append(f"{record.name}: {record.status.value}{' (' + record.detail + ')' if record.detail else ''}")
    why = "; ".join(missed) if missed else f"no {phase.value} stage ran"
    return tuple(ran), why


def _request_entries(exchange: Exchange, ran: tuple[str, ...], why: str) -> list[Entry]:
    conv = exchange.received_conversation or exchange.conversation
    texts: dict[str, tuple[str, int]] = {}
    for seg in conv.segments:
        if seg.location is None:
            continue
        item = _dotted(seg.location.path)
        trust, chars = texts.get(item, (seg.trust.value, 0))
        # One string, split by markup, is as untrusted as its least trusted piece.
        texts[item] = (Trust.UNTRUSTED.value if seg.trust is Trust.UNTRUSTED else trust, chars + len(seg.text))
    entries = [Entry(item, "text", trust, chars, ran, "" if ran else why) for item, (trust, chars) in texts.items()]
    entries += [Entry(_dotted(o.path), "opaque", o.trust.value, 0, (),
                      f"{o.kind}: no stage reads non-text content" + (
                          " (the conversation counts as untrusted)" if o.trust is Trust.UNTRUSTED else ""))
                for o in conv.opaque]
    entries += [Entry(u.path, "unread", None, u.chars, (), u.why) for u in conv.uninspected if u.chars]
    return entries


def _output_entries(exchange: Exchange, ran: tuple[str, ...], why: str) -> list[Entry]:
    produced = exchange.attributes.get("upstream_output")  # before a guard rewrote it
    out = produced if isinstance(produced, Output) else exchange.output
    assert out is not None
    entries = [Entry("output.choices.0.text", "output_text", None, len(out.text), ran, "" if ran else why)]
    entries += [Entry(f"output.choices.{a.index}.text", "output_text", None, len(a.text), ran, "" if ran else why)
                for a in out.alternatives if a.text]
    entries += [Entry(f"output.choices.{c.choice}.tool_calls.{c.id or c.index}", "tool_call", None,
                      len(c.arguments), ran, "" if ran else why)
                for c in out.tool_calls]
    entries += [Entry(u.path, "output_unread", None, u.chars, (), u.why)
                for u in _unread_output(exchange).uninspected if u.chars]
    return entries


def _unread_output(exchange: Exchange) -> Output:
    """The answer as the upstream gave it: what it carried past the output stages reached the client
    whatever a guard later rewrote in the text."""
    produced = exchange.attributes.get("upstream_output")
    out = produced if isinstance(produced, Output) else exchange.output
    assert out is not None
    return out


def _stream_entries(stream: StreamCoverage) -> list[Entry]:
    entries = [Entry(item, "stream", None, 0, tuple(stages)) for item, stages in stream.inspected_by.items()
               if item not in stream.gaps]
    entries += [Entry(item, "stream", None, chars, (), why) for item, (why, chars) in stream.gaps.items()]
    return entries


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)
