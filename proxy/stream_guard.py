"""Output guards over a stream: what to send for each upstream event, decided part by part.

Text parts pass the hold-back gate of the streaming output guards. Tool-call parts are held until
the model's turn ends (finish_reason / message_delta), then the other output guards (tool scopes)
judge the accumulated Output once: allow releases the held events unchanged, a transform is sent
as fresh events (the kept calls, the guard's notice, a fitting stop reason), a block ends the
stream cleanly. A stopped stream always ends with the wire format's own final events and a stated
reason, never a cut connection. Records go through the pipeline, the Exchange's only writer.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

from httpx_sse import ServerSentEvent

from proxy.guards.base import StreamingGuard
from proxy.holdback import Inspecting, Stop, TextGate
from proxy.model import Action, Decision, Exchange, Phase, ToolCall, Verdict, VerdictKind
from proxy.pipeline import Pipeline, Stage
from proxy.providers import api_named
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
    _sent: list[str] = field(default_factory=list)  # text the client got, notices included
    _calls_out: list[ToolCall] | None = None  # tool calls the client got; None: the upstream's
    _dropped_chars: int = 0  # model text held behind tool calls and dropped at a stop or fault

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
        if kind is PartKind.ERROR:
            self.abort()  # held text and calls stay unsent; the caller relays the error event last
            return []
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
            out = []
            if part.text:  # some servers put the last text in the finish chunk: it is text like any other
                out = self._text(dataclasses.replace(part, kind=PartKind.TEXT), raw=False)
                if self.stopped is not None:
                    return out
                event = self.codec.finish_event(dataclasses.replace(part, text=""), self.codec.output())
                part = Part(PartKind.FINISH, event, json.loads(event.data), part.channel)
            out.extend(self._flush())
            if self._held is not None:
                return out + await self._decide(part)
            return [*out, self.codec.encode(part)]
        if kind is PartKind.DONE:
            return self._flush()  # the caller sends the DONE event itself, after on_end
        return [self.codec.encode(part)]

    def _text(self, part: Part, raw: bool = True) -> list[ServerSentEvent]:
        """`raw`: the part's own event may be relayed when its text leaves unchanged."""
        gate = self._gate(part.channel)
        if gate is None:
            self._sent.append(part.text)
            return [self._mark_text(self.codec.encode(part) if raw else self.codec.text_event(part, part.text))]
        self._last_text[part.channel] = part
        released = gate.feed(part.text)
        if gate.stopped is not None:
            return self._stop(gate.stopped)
        if not released:
            return []
        self._sent.append(released)
        # Most deltas leave whole and unchanged: relay the upstream's own bytes, no re-encoding.
        event = self.codec.encode(part) if raw and released == part.text else self.codec.text_event(part, released)
        return [self._mark_text(event)]

    def _flush(self) -> list[ServerSentEvent]:
        out = []
        for channel, gate in self._gates.items():
            released = gate.flush()
            if released:
                self._sent.append(released)
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
            self._calls_out = list(self.codec.output().tool_calls)
            return [*out, *self._flush(), self.codec.encode(finish)]
        out.extend(self._flush())
        self._calls_out = list(output.tool_calls)
        out.extend(self.codec.tool_events(output.tool_calls))
        notice = _appended(self.codec.output().text, output.text)
        self._sent.append(notice)
        out.extend(self.codec.notice_events(notice))
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
        self._drop_held()
        notice = ("\n\n" if "".join(self._sent) else "") + NOTICE.format(reason=stop.reason)
        self._sent.append(notice)
        return self.codec.end_blocked(stop.reason, notice)

    def abort(self) -> None:
        """The upstream failed mid-stream: whatever is held is dropped, never sent unchecked."""
        self._drop_held()
        self.stopped = self.stopped or Stop("upstream", "the upstream stream failed")

    def _drop_held(self) -> None:
        if self._calls_out is None and (self._held is not None or self._others):
            self._calls_out = []  # calls are held for judging: none had left yet
        self._dropped_chars += sum(len(p.text) for p in self._held or () if p.kind is PartKind.TEXT)
        self._held = None

    async def finish(self, outcome: str) -> None:
        """Close the inspectors, run the remaining output stages, and record what was sent."""
        exchange = self.exchange
        upstream = self.codec.output()
        exchange.output = upstream
        for gate in self._gates.values():
            for entry in gate.close():
                self._record(entry)
        if self.stopped is not None and self.stopped.stage == "stream":
            decision = Decision(stage="stream", action=Action.BLOCK, reasons=(self.stopped.reason,))
            self.pipeline.record(exchange, "stream", Phase.OUTPUT, Verdict(VerdictKind.BLOCK, decision=decision))
        if not self._checked and self._others:
            await self.check_output()  # records only: the bytes have left
        # The evidence shows what the client received as the output, and what the model said apart.
        sent = "".join(self._sent)
        delivered = dataclasses.replace(
            upstream, text=sent,
            tool_calls=tuple(self._calls_out) if self._calls_out is not None else upstream.tool_calls,
            finish_reason=api_named(exchange.conversation.api).stopped_reason if outcome == "stopped"
            else upstream.finish_reason,
        )
        if delivered != upstream:
            exchange.attributes.setdefault("upstream_output", upstream)
        exchange.output = delivered
        exchange.attributes["stream"] = {
            "outcome": outcome,  # complete | stopped | upstream_error
            "stopped_by": self.stopped.stage if self.stopped and outcome == "stopped" else None,
            "reason": self.stopped.reason if self.stopped and outcome == "stopped" else None,
            "sent_text": sent,
            "withheld_chars": sum(g.held_chars for g in self._gates.values()) + self._dropped_chars,
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
