"""Output guards over a stream: what to send for each upstream event, decided part by part.

Text parts pass the hold-back gate of the streaming output guards. Tool-call parts are held until
the model's turn ends (finish_reason / message_delta), then the other output guards (tool scopes)
judge the accumulated Output once: allow releases the held events unchanged, a transform is sent
as fresh events (the kept calls, the guard's notice, a fitting stop reason), a block ends the
stream cleanly. A stopped stream always ends with the wire format's own final events and a stated
reason, never a cut connection. Records go through the pipeline, the Exchange's only writer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from httpx_sse import ServerSentEvent

from proxy.guards.base import StreamingGuard
from proxy.holdback import Inspecting, Stop, TextGate
from proxy.model import Action, Decision, Exchange, Phase, Verdict, VerdictKind
from proxy.pipeline import Pipeline, Stage
from proxy.providers.base import Part, PartKind, StreamCodec

NOTICE = "[guardproxy stopped this response: {reason}]"


@dataclass(frozen=True, slots=True)
class StreamLimits:
    window: int = 32
    max_hold: int = 4096


@dataclass
class StreamSession:
    pipeline: Pipeline
    exchange: Exchange
    codec: StreamCodec
    limits: StreamLimits = field(default_factory=StreamLimits)
    stopped: Stop | None = None
    events_sent: int = 0
    _gates: dict[int, TextGate] = field(default_factory=dict)
    _last_text: dict[int, Part] = field(default_factory=dict)
    _held: list[Part] | None = None  # tool parts and everything after them, until the turn ends
    _tools_decided: bool = False
    _checked: bool = False  # the non-streamed output stages have run
    _streamed: list[Stage] = field(default_factory=list)
    _others: list[Stage] = field(default_factory=list)
    _started: float = field(default_factory=time.perf_counter)
    _first_text_ms: float | None = None

    def __post_init__(self) -> None:
        for stage in self.pipeline.stages:
            if Phase.OUTPUT not in stage.guard.phases or not stage.settings.enabled:
                continue
            if isinstance(stage.guard, StreamingGuard):
                self._streamed.append(stage)
            else:
                self._others.append(stage)

    # --- per event ----------------------------------------------------------------------------------

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
        if self._held is not None and kind not in (PartKind.FINISH, PartKind.DONE):
            self._held.append(part)
            return []
        if kind is PartKind.TEXT:
            return self._text(part)
        if kind is PartKind.TOOL:
            if self._tools_decided or not self._others:
                return [self.codec.encode(part)]
            self._held = [part]
            return []
        if kind is PartKind.BOUNDARY:
            return [*self._flush(), self.codec.encode(part)]
        if kind is PartKind.FINISH:
            out = self._flush()
            if self._held is not None:
                return out + await self._decide(part)
            return [*out, self.codec.encode(part)]
        if kind is PartKind.DONE:
            return self._flush()  # the caller sends the DONE event itself, after on_end
        return [self.codec.encode(part)]

    def _text(self, part: Part) -> list[ServerSentEvent]:
        gate = self._gate(part.channel)
        if gate is None:
            return [self._mark_text(self.codec.encode(part))]
        self._last_text[part.channel] = part
        released = gate.feed(part.text)
        if gate.stopped is not None:
            return self._stop(gate.stopped)
        if not released:
            return []
        # Most deltas leave whole and unchanged: relay the upstream's own bytes, no re-encoding.
        event = self.codec.encode(part) if released == part.text else self.codec.text_event(part, released)
        return [self._mark_text(event)]

    def _flush(self) -> list[ServerSentEvent]:
        out = []
        for channel, gate in self._gates.items():
            released = gate.flush()
            if released:
                out.append(self._mark_text(self.codec.text_event(self._last_text[channel], released)))
        return out

    def _mark_text(self, event: ServerSentEvent) -> ServerSentEvent:
        if self._first_text_ms is None:
            self._first_text_ms = (time.perf_counter() - self._started) * 1000
        return event

    def _gate(self, channel: int) -> TextGate | None:
        if not self._streamed:
            return None
        gate = self._gates.get(channel)
        if gate is None:
            entries = []
            for stage in self._streamed:
                inspector = stage.guard.stream_inspector(self.exchange)  # type: ignore[attr-defined]
                if inspector is not None:
                    entries.append(Inspecting(stage.name, inspector, stage.settings.failure_mode == "open"))
            gate = TextGate(entries, self.limits.window, self.limits.max_hold)
            self._gates[channel] = gate
        return gate

    # --- the turn's tool calls ------------------------------------------------------------------------

    async def _decide(self, finish: Part) -> list[ServerSentEvent]:
        held, self._held = self._held or [], None
        self._tools_decided = True
        verdict = await self.check_output()
        if verdict.kind is VerdictKind.BLOCK:
            reason = verdict.message or "; ".join(verdict.decision.reasons if verdict.decision else ())
            return self._stop(Stop(verdict.decision.stage if verdict.decision else "output", reason, verdict))
        output = self.exchange.output or self.codec.output()
        transformed = verdict.kind is VerdictKind.TRANSFORM and output != self.codec.output()
        out: list[ServerSentEvent] = []
        for part in held:
            if transformed and part.kind is PartKind.TOOL:
                self.codec.withhold(part)
                continue
            out.extend(await self._process(part))
            if self.stopped is not None:
                return out
        if not transformed:
            return [*out, *self._flush(), self.codec.encode(finish)]
        out.extend(self._flush())
        out.extend(self.codec.tool_events(output.tool_calls))
        out.extend(self.codec.notice_events(_appended(self.codec.output().text, output.text)))
        out.append(self.codec.finish_event(finish, output))
        return out

    async def check_output(self) -> Verdict:
        """Run the non-streamed output stages once over what the upstream sent so far."""
        self.exchange.output = self.codec.output()
        self._checked = True
        return await self.pipeline.subset(self._others).run(self.exchange, Phase.OUTPUT)

    # --- ending ---------------------------------------------------------------------------------------

    def _stop(self, stop: Stop) -> list[ServerSentEvent]:
        self.stopped = stop
        self._held = None
        sent_text = any(g.sent for g in self._gates.values())
        notice = ("\n\n" if sent_text else "") + NOTICE.format(reason=stop.reason)
        return self.codec.end_blocked(stop.reason, notice)

    def abort(self) -> None:
        """The upstream failed mid-stream: whatever is held is dropped, never sent unchecked."""
        self._held = None
        self.stopped = self.stopped or Stop("upstream", "the upstream stream failed")

    async def finish(self, outcome: str) -> None:
        """Close the inspectors, run the remaining output stages, and record what was sent."""
        exchange = self.exchange
        exchange.output = self.codec.output()
        for gate in self._gates.values():
            for entry in gate.close():
                self._record(entry)
        if self.stopped is not None and self.stopped.stage == "stream":
            decision = Decision(stage="stream", action=Action.BLOCK, reasons=(self.stopped.reason,))
            self.pipeline.record(exchange, "stream", Phase.OUTPUT, Verdict(VerdictKind.BLOCK, decision=decision))
        if not self._checked and self._others:
            await self.check_output()  # records only: the bytes have left
        withheld = sum(g.held_chars for g in self._gates.values())
        exchange.attributes["stream"] = {
            "outcome": outcome,  # complete | stopped | upstream_error
            "stopped_by": self.stopped.stage if self.stopped and outcome == "stopped" else None,
            "reason": self.stopped.reason if self.stopped and outcome == "stopped" else None,
            "sent_text": "".join("".join(g.sent) for g in self._gates.values()) if self._gates else None,
            "withheld_chars": withheld,
            "events_sent": self.events_sent,
            "first_text_ms": self._first_text_ms,
        }

    def _record(self, entry: Inspecting) -> None:
        verdict = entry.verdict or Verdict()
        status = entry.status
        self.pipeline.record(self.exchange, entry.stage, Phase.OUTPUT, verdict, status=status, detail=entry.detail)


def _appended(upstream: str, final: str) -> str:
    """The text a transform added after what the model said (a guard's notice), else ""."""
    return final[len(upstream):] if final.startswith(upstream) else ""


__all__ = ["NOTICE", "StreamLimits", "StreamSession"]
