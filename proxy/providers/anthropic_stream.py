"""Anthropic Messages streams: the accumulator (events -> Output) and the per-stream event codec.

The codec classifies each upstream event for the stream guard and writes the events the proxy adds.
Anthropic SDKs address content blocks by position (`content[index]`), so when the proxy withholds
a tool_use block every later block is re-numbered on the way out: the client always sees indexes
0, 1, 2 ... with each block started, filled and stopped in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from httpx_sse import ServerSentEvent

from proxy.errors import GuardProxyError
from proxy.model import Output, ToolCall, Uninspected
from proxy.providers.anthropic_errors import anthropic_error_body
from proxy.providers.base import Part, PartKind

# Calls the model makes: client-executed `tool_use`, and the ones Anthropic's servers run for it
# (`server_tool_use`, `mcp_tool_use`): all are held and judged; a stream cannot take them back.
TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use", "mcp_tool_use"})


def arguments_json(value: Any) -> str:
    return json.dumps(value if value is not None else {}, ensure_ascii=False, separators=(",", ":"))


def tool_use_block(call: ToolCall) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments) if call.arguments else {}
    except json.JSONDecodeError:
        arguments = {}
    return {"type": "tool_use", "id": call.id, "name": call.name,
            "input": arguments if isinstance(arguments, dict) else {}}


def stop_reason(output: Output, original: str | None) -> str:
    """Anthropic's stop_reason for `output`: tool_use exactly when calls remain."""
    if output.tool_calls:
        return "tool_use"
    reason = output.finish_reason or original or "end_turn"
    # Guards may speak OpenAI's words; a turn whose calls were all withheld ended its turn.
    return {"tool_use": "end_turn", "tool_calls": "end_turn", "stop": "end_turn",
            "length": "max_tokens", "content_filter": "refusal"}.get(reason, reason)


@dataclass
class _Block:
    type: str
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)  # text, or the tool input's partial JSON
    start: dict[str, Any] = field(default_factory=dict)  # the content_block as it started
    unread: list[Any] = field(default_factory=list)  # deltas no stage reads (thinking, citations)

    def as_sent(self) -> dict[str, Any]:
        """The block as the client assembles it, as far as the ledger needs it."""
        if self.type == "text":
            return {"type": "text", "citations": [*(self.start.get("citations") or ()), *self.unread]}
        return {**self.start, "deltas": self.unread} if self.unread else self.start

    def arguments(self) -> str:
        # As the SDKs assemble it: the input's JSON deltas if any came, else the input the block
        # started with (a server may send it whole in content_block_start).
        if self.parts:
            return "".join(self.parts)
        return arguments_json(self.start.get("input") or {})


class StreamAccumulator:
    """Feed each event's (name, data); `output()` gives what the upstream has sent so far."""

    def __init__(self) -> None:
        self.blocks: dict[int, _Block] = {}
        self.message: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.output_tokens: int | None = None
        self.done = False  # saw message_stop (or an error event, which ends the stream too)

    def feed(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "message_start":
            self.message = data.get("message") or {}
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if not isinstance(block, dict):
                block = {}
            self.blocks[int(data.get("index", 0))] = _Block(
                type=str(block.get("type", "")), id=str(block.get("id", "")), name=str(block.get("name", "")),
                parts=[block["text"]] if isinstance(block.get("text"), str) and block["text"] else [],
                start=block,
            )
        elif kind == "content_block_delta":
            self._delta(int(data.get("index", 0)), data.get("delta") or {})
        elif kind == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.output_tokens = (data.get("usage") or {}).get("output_tokens", self.output_tokens)
        elif kind in ("message_stop", "error"):
            self.done = True

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self.blocks.setdefault(index, _Block(type="text"))
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            block.parts.append(delta["text"])
        elif delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            block.parts.append(delta["partial_json"])
        elif delta.get("type") == "thinking_delta":
            block.unread.append(delta.get("thinking"))
        elif delta.get("type") == "citations_delta":
            block.unread.append(delta.get("citation"))

    def block_type(self, index: int) -> str:
        block = self.blocks.get(index)
        return block.type if block else ""

    def output(self) -> Output:
        ordered = [self.blocks[i] for i in sorted(self.blocks)]
        calls = tuple(
            ToolCall(b.id, b.name, b.arguments(), index=n, kind=b.type)
            for n, b in enumerate(b for b in ordered if b.type in TOOL_BLOCKS)
        )
        usage = self.message.get("usage") or {}
        return Output(
            text="".join("".join(b.parts) for b in ordered if b.type == "text"),
            tool_calls=calls,
            finish_reason=self.stop_reason,
            response_id=self.message.get("id"),
            model=self.message.get("model"),
            input_tokens=input_tokens(usage),
            output_tokens=self.output_tokens if self.output_tokens is not None else usage.get("output_tokens"),
            uninspected=unread_blocks([b.as_sent() for b in ordered]),
        )


_UNREAD_WHY = {
    "thinking": "the model's thinking: no output stage reads it",
    "redacted_thinking": "redacted thinking (encrypted by the provider): no stage can read it",
}


def unread_blocks(blocks: list[dict[str, Any]]) -> tuple[Uninspected, ...]:
    """What the client gets besides text and judged calls, for the coverage ledger: thinking, a text
    block's citations (cited titles and quoted text), a server tool's result blocks."""
    out = []
    for n, block in enumerate(blocks):
        kind = str(block.get("type"))
        if kind == "text":
            if block.get("citations"):
                out.append(Uninspected(f"output.content.{n}.citations",
                                       "citations (cited titles and quoted text): no output stage reads them",
                                       len(json.dumps(block["citations"], ensure_ascii=False))))
        elif kind not in TOOL_BLOCKS:
            content = {k: v for k, v in block.items() if k not in ("type", "id", "tool_use_id", "signature")}
            why = _UNREAD_WHY.get(kind, f"a {kind} block: no output stage reads it")
            out.append(Uninspected(f"output.content.{n}", why, len(json.dumps(content, ensure_ascii=False))))
    return tuple(out)


class AnthropicCodec:
    """Classifies upstream events and writes the proxy's own, tracking what the client has seen."""

    def __init__(self) -> None:
        self.acc = StreamAccumulator()
        self._index: dict[int, int] = {}  # upstream block index -> client block index
        self._next = 0  # the client's next block index
        self._open: tuple[int, str] | None = None  # the client's open block: (index, type)
        self._started = False  # message_start has gone to the client

    @property
    def done(self) -> bool:
        return self.acc.done

    def output(self, channel: int = 0) -> Output:
        return self.acc.output()

    def channels(self) -> list[int]:
        return [0]

    def must_resend(self, channel: int) -> bool:
        return False

    def parts(self, event: ServerSentEvent) -> list[Part]:
        try:
            data = json.loads(event.data)
        except json.JSONDecodeError:
            return [Part(PartKind.PASS, event)]
        if not isinstance(data, dict):
            return [Part(PartKind.PASS, event)]
        self.acc.feed(data)
        return [Part(self._kind(data), event, data, text=_delta_text(data))]

    def _kind(self, data: dict[str, Any]) -> PartKind:
        kind = data.get("type")
        if kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            block = self.acc.block_type(int(data.get("index", 0)))
            if block in TOOL_BLOCKS:
                return PartKind.TOOL
            if kind == "content_block_delta" and (data.get("delta") or {}).get("type") == "text_delta":
                return PartKind.TEXT
            if kind == "content_block_stop" and block == "text":
                return PartKind.BOUNDARY
            return PartKind.PASS
        return {
            "message_delta": PartKind.FINISH,
            "message_stop": PartKind.DONE,
            "ping": PartKind.PING,
            "error": PartKind.ERROR,
        }.get(str(kind), PartKind.PASS)

    # --- what goes to the client ------------------------------------------------------------------

    def encode(self, part: Part) -> ServerSentEvent:
        data = part.data
        if data is None:
            return part.event
        kind = data.get("type")
        if kind == "message_start":
            self._started = True
        if kind not in ("content_block_start", "content_block_delta", "content_block_stop"):
            return part.event
        upstream = int(data.get("index", 0))
        if kind == "content_block_start":
            self._index[upstream] = self._next
            self._open = (self._next, (data.get("content_block") or {}).get("type", ""))
            self._next += 1
        client = self._index.get(upstream, upstream)
        if kind == "content_block_stop":
            self._open = None
        if client == upstream:
            return part.event
        return _event(kind, {**data, "index": client})

    def text_event(self, part: Part, text: str) -> ServerSentEvent:
        upstream = int((part.data or {}).get("index", 0))
        index = self._index.get(upstream, upstream)
        return _event("content_block_delta",
                      {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})

    def tool_events(self, calls: tuple[ToolCall, ...], channel: int = 0) -> list[ServerSentEvent]:
        events = self._close_open()
        started = {b.id: b.start for b in self.acc.blocks.values() if b.type in TOOL_BLOCKS}
        for call in calls:
            index = self._next
            self._next += 1
            # The block as it started (server and MCP calls keep their type and server name).
            start = {**started.get(call.id, {}), **tool_use_block(call), "input": {}}
            start["type"] = started.get(call.id, {}).get("type", "tool_use")
            events.append(_event("content_block_start",
                                 {"type": "content_block_start", "index": index, "content_block": start}))
            events.append(_event("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": arguments_json(tool_use_block(call)["input"])},
            }))
            events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        return events

    def notice_events(self, text: str, channel: int = 0) -> list[ServerSentEvent]:
        if not text:
            return []
        if self._open is not None and self._open[1] == "text":
            index = self._open[0]
            return [_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "text_delta", "text": text}})]
        events = self._close_open()
        index = self._next
        self._next += 1
        events.append(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                     "content_block": {"type": "text", "text": ""}}))
        events.append(_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": "text_delta", "text": text}}))
        events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        return events

    def finish_event(self, part: Part, output: Output, trace: dict[str, Any] | None = None) -> ServerSentEvent:
        data = dict(part.data or {"type": "message_delta", "usage": {"output_tokens": 0}})
        delta = dict(data.get("delta") or {})
        delta["stop_reason"] = stop_reason(output, delta.get("stop_reason"))
        data["delta"] = delta
        if trace:
            data["guardproxy"] = trace  # the SDK keeps extra keys: what the proxy withheld, and why
        return _event("message_delta", data)

    def end_blocked(self, reason: str, notice: str) -> list[ServerSentEvent]:
        events = []
        if not self._started:
            events.append(_event("message_start", {"type": "message_start", "message": self._empty_message()}))
            self._started = True
        events.extend(self.notice_events(notice))
        events.extend(self._close_open())
        usage = {"output_tokens": self.acc.output_tokens or 0}
        events.append(_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": "refusal", "stop_sequence": None,
                      "stop_details": {"type": "refusal", "category": None, "explanation": reason}},
            "usage": usage,
        }))
        events.append(_event("message_stop", {"type": "message_stop"}))
        return events

    def error_event(self, error: GuardProxyError, request_id: str) -> ServerSentEvent:
        return _event("error", anthropic_error_body(error, request_id))

    def _close_open(self) -> list[ServerSentEvent]:
        if self._open is None:
            return []
        index, self._open = self._open[0], None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _empty_message(self) -> dict[str, Any]:
        out = self.acc.output()
        return {"id": out.response_id or "msg_guardproxy", "type": "message", "role": "assistant",
                "model": out.model or "", "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": out.input_tokens or 0, "output_tokens": 0}}


def _delta_text(data: dict[str, Any]) -> str:
    delta = data.get("delta")
    if isinstance(delta, dict) and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
        return str(delta["text"])
    return ""


def _event(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(event=name, data=json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def input_tokens(usage: dict[str, Any]) -> int | None:
    """All input tokens, cached ones included (GenAI semconv), from an Anthropic `usage` object."""
    parts = [usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
    counted = [p for p in parts if isinstance(p, int)]
    return sum(counted) if counted else None
