"""The stream session: decides, part by part, what of one upstream stream leaves. Sans-I/O.

It runs the pipeline's output stages over a stream as `plan.py` lays them out. Each output
channel (an OpenAI choice; Anthropic has one) has its own state:
- text passes the channel's hold-back gate (incremental inspectors) and text rewriters, then
  leaves as the upstream's own event when unchanged, else re-encoded by the codec;
- tool-call parts are held (with everything after them on that channel) until the channel's turn
  ends; when judges need the whole text, the channel holds from its first part (bounded by
  `max_hold`, past which the stream stops);
- when the channel's turn ends (its finish, or the stream's end) the judges run once over what it
  said, in configured order, and only then does anything held leave: unchanged, or with withheld
  calls left out, kept calls re-sent whole, a notice, a fitting stop reason, and a machine-readable
  `guardproxy` trace of what was withheld; a block ends the stream cleanly.
Records go through the pipeline, the Exchange's only writer.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from httpx_sse import ServerSentEvent

from proxy.guards.base import TextRewriter
from proxy.model import Action, Decision, Exchange, Output, Phase, StageStatus, ToolCall, Verdict, VerdictKind
from proxy.pipeline import Pipeline
from proxy.providers import api_named
from proxy.providers.base import Part, PartKind, StreamCodec
from proxy.streaming.holdback import Inspecting, Stop, TextGate
from proxy.streaming.plan import StageKinds, plan_stream

NOTICE = "[guardproxy stopped this response: {reason}]"


@dataclass(frozen=True, slots=True)
class StreamLimits:
    window: int = 32
    max_hold: int = 4096


@dataclass(slots=True)
class _Channel:
    """One output channel's state."""

    n: int
    gate: TextGate | None
    rewriters: list[TextRewriter]
    held: list[Part] | None = None  # parts waiting for the judges, in order
    held_chars: int = 0
    last_text: Part | None = None
    sent: list[str] = field(default_factory=list)  # text the client got, notices included
    calls_out: tuple[ToolCall, ...] | None = None  # calls the client got; None: the upstream's
    judged: bool = False
    finished: bool = False


class StreamSession:
    def __init__(
        self, pipeline: Pipeline, exchange: Exchange, codec: StreamCodec, limits: StreamLimits | None = None,
        kinds: StageKinds | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.exchange = exchange
        self.codec = codec
        self.limits = limits or StreamLimits()
        self.plan = plan_stream(kinds or StageKinds.of(pipeline), exchange)
        self._judges = pipeline.subset(self.plan.judges)
        self.stopped: Stop | None = None
        self.events_sent = 0
        self.withheld: list[dict[str, Any]] = []  # the trace of calls the client never got
        self._channels: dict[int, _Channel] = {}
        self._started = time.perf_counter()
        self._first_text_ms: float | None = None
        self._dropped_chars = 0  # model text held and dropped at a stop or fault

    # --- per part -----------------------------------------------------------------------------------

    async def process(self, part: Part) -> list[ServerSentEvent]:
        """The events to send for one upstream part (none while held, final ones when stopped)."""
        out = await self._process(part)
        self.events_sent += len(out)
        return out

    async def _process(self, part: Part) -> list[ServerSentEvent]:
        if self.stopped is not None:
            return []
        kind = part.kind
        if kind is PartKind.PING:
            return [self.codec.encode(part)]
        if kind is PartKind.ERROR:
            self.abort()  # held text and calls stay unsent; the caller relays the error event last
            return []
        if kind is PartKind.DONE:  # channels that never finished end here (the caller sends DONE)
            out: list[ServerSentEvent] = []
            for ch in list(self._channels.values()):
                out.extend(self._flush(ch) if ch.finished else await self._end(ch, None))
            return out
        ch = self._channel(part.channel)
        if ch.held is not None:
            return await self._hold(ch, part)
        if kind is PartKind.TEXT:
            return self._text(ch, part)
        if kind is PartKind.TOOL:
            if ch.finished:  # a call after its choice finished: never judged with its turn, so never sent
                self._withhold_late(part)
                return []
            if self.plan.holds_tools:
                ch.held = [part]
                return []
            return [self.codec.encode(part)]
        if kind is PartKind.BOUNDARY:
            return [*self._flush(ch), self.codec.encode(part)]
        if kind is PartKind.FINISH:
            return await self._end(ch, part)
        return [self.codec.encode(part)]

    def _channel(self, n: int) -> _Channel:
        ch = self._channels.get(n)
        if ch is None:
            ch = self._channels[n] = _Channel(n, self._gate(), [make() for make in self.plan.rewriters])
            if self.plan.hold_text_for:
                ch.held = []  # judges read the whole text: nothing of this channel leaves before them
        return ch

    async def _hold(self, ch: _Channel, part: Part) -> list[ServerSentEvent]:
        if part.kind is PartKind.TOOL and ch.finished:
            self._withhold_late(part)
            return []
        assert ch.held is not None
        ch.held.append(part)
        if part.kind is PartKind.FINISH:
            return await self._end(ch, part)
        if part.kind is PartKind.TEXT:
            ch.held_chars += len(part.text)
            if ch.held_chars > self.limits.max_hold:
                names = ", ".join(self.plan.hold_text_for) or "the output stages"
                return self._stop(Stop("stream", f"{names} judge the model's whole turn, and it passed "
                                                 f"stream.max_hold_chars ({self.limits.max_hold}) before it ended"))
        return []

    def _text(self, ch: _Channel, part: Part) -> list[ServerSentEvent]:
        if ch.gate is None and not ch.rewriters:  # no inspector, no rewriter: the upstream's own bytes
            ch.sent.append(part.text)
            self._mark_text()
            return [self.codec.encode(part)]
        ch.last_text = part
        released = part.text
        if ch.gate is not None:
            released = ch.gate.feed(released)
            if ch.gate.stopped is not None:
                return self._stop(ch.gate.stopped)
        for rewriter in ch.rewriters:
            released = rewriter.feed(released)
        if not released:
            return []
        ch.sent.append(released)
        self._mark_text()
        # Most deltas leave whole and unchanged: relay the upstream's own bytes, no re-encoding.
        return [self.codec.encode(part) if released == part.text else self.codec.text_event(part, released)]

    def _flush(self, ch: _Channel) -> list[ServerSentEvent]:
        """A boundary: inspectors settle, rewriters release their tails, held text leaves."""
        text = ""
        if ch.gate is not None:
            text = ch.gate.flush()
            if ch.gate.stopped is not None:
                return self._stop(ch.gate.stopped)
        for rewriter in ch.rewriters:
            text = rewriter.feed(text) + rewriter.flush()
        if not text or ch.last_text is None:
            return []
        ch.sent.append(text)
        self._mark_text()
        return [self.codec.text_event(ch.last_text, text)]

    def _mark_text(self) -> None:
        if self._first_text_ms is None:
            self._first_text_ms = (time.perf_counter() - self._started) * 1000

    def _gate(self) -> TextGate | None:
        entries = [
            Inspecting(stage.name, inspector, stage.settings.failure_mode)
            for stage, guard in self.plan.incremental
            if (inspector := guard.stream_inspector(self.exchange)) is not None
        ]
        return TextGate(entries, self.limits.window, self.limits.max_hold) if entries else None

    # --- the end of a channel's turn ----------------------------------------------------------------

    async def _end(self, ch: _Channel, finish: Part | None) -> list[ServerSentEvent]:
        """The channel's turn ended: judge it, then release what was held, fitted to the verdict."""
        ch.finished = ch.finished or finish is not None
        held, ch.held = ch.held or [], None
        upstream = final = self.codec.output(ch.n)
        decisions: list[Decision] = []
        if self.plan.judges and not ch.judged:
            verdict, final, decisions = await self._judge(ch)
            if verdict.kind is VerdictKind.BLOCK:
                reason = verdict.message or "; ".join(verdict.decision.reasons if verdict.decision else ())
                return self._stop(Stop(verdict.decision.stage if verdict.decision else "output", reason, verdict))
        calls = self._rewritten_calls(ch, final.tool_calls)
        held_calls = any(p.kind is PartKind.TOOL for p in held)  # else any calls have left already
        resend = held_calls and (calls != upstream.tool_calls or self.codec.must_resend(ch.n))
        replaced = bool(self.plan.hold_text_for) and not final.text.startswith(upstream.text)
        out: list[ServerSentEvent] = []
        for part in held:
            if part.kind is PartKind.FINISH or (resend and part.kind is PartKind.TOOL) or \
                    (replaced and part.kind is PartKind.TEXT):
                continue
            out.extend(self._replay(ch, part))
            if self.stopped is not None:
                return out
        out.extend(self._flush(ch))
        if self.stopped is not None:
            return out
        if resend:
            ch.calls_out = calls
            out.extend(self.codec.tool_events(calls, ch.n))
        elif held_calls:
            ch.calls_out = upstream.tool_calls
        notice = final.text if replaced else _appended(upstream.text, final.text)
        if notice:
            ch.sent.append(notice)
            out.extend(self.codec.notice_events(notice, ch.n))
        trace = self._trace(ch, upstream.tool_calls, calls, decisions)
        self._covered(ch, upstream)
        if finish is not None:
            changed = resend or notice or trace or final.finish_reason != upstream.finish_reason
            out.append(self.codec.finish_event(finish, final, trace) if changed else self.codec.encode(finish))
        return out

    def _replay(self, ch: _Channel, part: Part) -> list[ServerSentEvent]:
        """A held part, now judged, on its way out (text still passes the gate and rewriters)."""
        if part.kind is PartKind.TEXT:
            return self._text(ch, part)
        if part.kind is PartKind.BOUNDARY:
            return [*self._flush(ch), self.codec.encode(part)]
        return [self.codec.encode(part)]

    async def _judge(self, ch: _Channel) -> tuple[Verdict, Output, list[Decision]]:
        """Run the judges once over what this channel said, in their configured order."""
        ch.judged = True
        exchange = self.exchange
        upstream = exchange.output = self.codec.output(ch.n)
        before = len(exchange.decisions)
        verdict = await self._judges.run(exchange, Phase.OUTPUT)
        return verdict, exchange.output or upstream, exchange.decisions[before:]

    def _rewritten_calls(self, ch: _Channel, calls: tuple[ToolCall, ...]) -> tuple[ToolCall, ...]:
        if not ch.rewriters:
            return calls
        out = []
        for call in calls:
            arguments = call.arguments
            for rewriter in ch.rewriters:
                arguments = rewriter.whole(arguments)
            out.append(call if arguments == call.arguments else dataclasses.replace(call, arguments=arguments))
        return tuple(out)

    def _trace(
        self, ch: _Channel, upstream: tuple[ToolCall, ...], sent: tuple[ToolCall, ...], decisions: list[Decision]
    ) -> dict[str, Any] | None:
        """What the client never got, for the turn's last event (the headers had already left)."""
        kept = {(c.id, c.name) for c in sent}
        withheld = [{"id": c.id, "name": c.name, "choice": ch.n} for c in upstream if (c.id, c.name) not in kept]
        if not withheld:
            return None
        self.withheld.extend(withheld)
        trace: dict[str, Any] = {"withheld": withheld, "reasons": [r for d in decisions for r in d.reasons]}
        approvals = [a for d in decisions for a in d.approvals]
        if approvals:
            trace["approval_ids"] = approvals  # what the application may approve (see the approvals API)
        return trace

    def _covered(self, ch: _Channel, upstream: Output) -> None:
        """Tell the coverage ledger who read this choice's items before they left."""
        coverage = self.exchange.stream_coverage
        item = f"output.choices.{ch.n}.text"
        readers = [e.stage for e in ch.gate.inspectors if e.status is StageStatus.OK] if ch.gate else []
        for name in [*readers, *(self.plan.text_judges if ch.judged else ())]:
            coverage.inspected(item, name)
        for call in upstream.tool_calls if ch.judged else ():
            for judge in self.plan.judges:
                coverage.inspected(f"output.choices.{ch.n}.tool_calls.{call.id or call.index}", judge.name)

    def _withhold_late(self, part: Part) -> None:
        self.withheld.append({"id": "", "name": "", "choice": part.channel,
                              "reason": "a tool call after its choice had finished"})

    # --- ending ---------------------------------------------------------------------------------------

    def _stop(self, stop: Stop) -> list[ServerSentEvent]:
        self.stopped = stop
        self._drop_held()
        first = self._channel(0)
        notice = ("\n\n" if "".join(first.sent) else "") + NOTICE.format(reason=stop.reason)
        first.sent.append(notice)
        return self.codec.end_blocked(stop.reason, notice)

    def abort(self) -> None:
        """The upstream failed mid-stream: whatever is held is dropped, never sent unchecked."""
        self._drop_held()
        self.stopped = self.stopped or Stop("upstream", "the upstream stream failed")

    def _drop_held(self) -> None:
        for ch in self._channels.values():
            if ch.calls_out is None and (ch.held is not None or self.plan.holds_tools):
                ch.calls_out = ()  # calls are held for judging: none had left yet
            self._dropped_chars += sum(len(p.text) for p in ch.held or () if p.kind is PartKind.TEXT)
            ch.held = None

    async def finish(self, outcome: str) -> None:
        """Close the inspectors, judge channels whose turn never ended (for the record: nothing of
        theirs was released unjudged), and record what was sent."""
        exchange = self.exchange
        for ch in self._channels.values():
            for entry in ch.gate.close() if ch.gate is not None else ():
                self.pipeline.record(exchange, entry.stage, Phase.OUTPUT, entry.verdict or Verdict(),
                                     status=entry.status, detail=entry.detail)
                if entry.status is not StageStatus.OK and entry.failure_mode == "open":
                    exchange.stream_coverage.not_inspected(
                        f"output.choices.{ch.n}.text.after_{entry.stage}_failed",
                        f"{entry.stage}: its inspector failed ({entry.detail}) and fails open: "
                        "the text after the failure left without it")
        if self.stopped is not None and self.stopped.stage == "stream":
            decision = Decision(stage="stream", action=Action.BLOCK, reasons=(self.stopped.reason,))
            self.pipeline.record(exchange, "stream", Phase.OUTPUT, Verdict(VerdictKind.BLOCK, decision=decision))
        for ch in list(self._channels.values()) or [self._channel(0)]:
            if self.plan.judges and not ch.judged:
                await self._judge(ch)
        upstream = self.codec.output(0)
        first = self._channel(0)
        sent = "".join(first.sent)
        delivered = dataclasses.replace(
            upstream, text=sent,
            tool_calls=first.calls_out if first.calls_out is not None else upstream.tool_calls,
            finish_reason=api_named(exchange.conversation.api).stopped_reason if outcome == "stopped"
            else upstream.finish_reason,
        )
        if delivered != upstream:
            exchange.attributes.setdefault("upstream_output", upstream)
        exchange.output = delivered
        gates = [ch.gate for ch in self._channels.values() if ch.gate is not None]
        exchange.attributes["stream"] = {
            "outcome": outcome,  # complete | stopped | upstream_error
            "stopped_by": self.stopped.stage if self.stopped and outcome == "stopped" else None,
            "reason": self.stopped.reason if self.stopped and outcome == "stopped" else None,
            "sent_text": sent,
            "withheld_calls": self.withheld,
            "withheld_chars": sum(g.held_chars for g in gates) + self._dropped_chars,
            "events_sent": self.events_sent,
            "first_text_ms": self._first_text_ms,
        }


def _appended(upstream: str, final: str) -> str:
    """The text a transform added after what the model said (a guard's notice), else ""."""
    return final[len(upstream):] if final.startswith(upstream) else ""


__all__ = ["NOTICE", "StreamLimits", "StreamSession"]
