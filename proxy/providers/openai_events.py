"""OpenAI chat.completion.chunk streams: the per-stream event codec the stream guard drives.

Classifies each upstream chunk (text to inspect, tool-call parts to hold, the finish chunk,
[DONE]) while the accumulator builds the Output, and writes the chunks the proxy adds. Every chunk
the proxy writes copies the stream's own id/model/created, so the SDK cannot tell them apart.
"""

from __future__ import annotations

import json
from typing import Any

from httpx_sse import ServerSentEvent

from proxy.errors import GuardProxyError
from proxy.model import Output, ToolCall
from proxy.providers.base import Part, PartKind
from proxy.providers.openai_stream import StreamAccumulator

DONE = ServerSentEvent(data="[DONE]")


class OpenAICodec:
    def __init__(self) -> None:
        self.acc = StreamAccumulator()
        self._last: dict[str, Any] = {"object": "chat.completion.chunk"}

    @property
    def _template(self) -> dict[str, Any]:
        """The stream's own id/object/created/model, for chunks the proxy writes."""
        return {k: v for k, v in self._last.items() if k not in ("choices", "usage")}

    @property
    def done(self) -> bool:
        return self.acc.done

    def output(self) -> Output:
        return self.acc.output()

    def classify(self, event: ServerSentEvent) -> Part:
        chunk = self.acc.feed(event.data)
        if self.acc.done:
            return Part(PartKind.DONE, event)
        if chunk is None:
            return Part(PartKind.PASS, event)
        if "error" in chunk and "choices" not in chunk:
            return Part(PartKind.ERROR, event, chunk)
        self._last = chunk
        kind, channel, text = PartKind.PASS, 0, ""
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            if delta.get("tool_calls"):
                return Part(PartKind.TOOL, event, chunk)
            content = delta.get("content")
            if choice.get("finish_reason"):
                # Some servers send the last text with the finish_reason: it is inspected too.
                kind, channel, text = PartKind.FINISH, int(choice.get("index", 0)), content or ""
            elif kind is PartKind.PASS and isinstance(content, str) and content:
                kind, channel, text = PartKind.TEXT, int(choice.get("index", 0)), content
        return Part(kind, event, chunk, channel=channel, text=text if isinstance(text, str) else "")

    def encode(self, part: Part) -> ServerSentEvent:
        return part.event

    def withhold(self, part: Part) -> None:
        """Nothing to track: tool calls are addressed by their own `index`, re-numbered on release."""

    def text_event(self, part: Part, text: str) -> ServerSentEvent:
        chunk = dict(part.data or self._template)
        choices = []
        for choice in chunk.get("choices") or [{"index": part.channel}]:
            if int(choice.get("index", 0)) == part.channel:
                delta = {**(choice.get("delta") or {}), "content": text}
                choice = {**choice, "delta": delta, "finish_reason": None}  # the finish is its own chunk
            choices.append(choice)
        chunk["choices"] = choices
        return _event(chunk)

    def tool_events(self, calls: tuple[ToolCall, ...]) -> list[ServerSentEvent]:
        return [
            self._chunk({"tool_calls": [{"index": i, "id": c.id, "type": "function",
                                         "function": {"name": c.name, "arguments": c.arguments}}]})
            for i, c in enumerate(calls)
        ]

    def notice_events(self, text: str) -> list[ServerSentEvent]:
        return [self._chunk({"content": text})] if text else []

    def finish_event(self, part: Part, output: Output) -> ServerSentEvent:
        chunk = dict(part.data or self._template)
        choices = []
        for choice in chunk.get("choices") or [{"index": 0, "delta": {}}]:
            if int(choice.get("index", 0)) == 0:
                delta = {k: v for k, v in (choice.get("delta") or {}).items() if k != "content"}
                choice = {**choice, "delta": delta, "finish_reason": finish_reason(output, choice.get("finish_reason"))}
            choices.append(choice)
        chunk["choices"] = choices
        return _event(chunk)

    def end_blocked(self, reason: str, notice: str) -> list[ServerSentEvent]:
        final = self._chunk({}, finish="content_filter")
        # Extra keys are kept by the SDK's models: a client can read why the stream ended.
        data = json.loads(final.data) | {"guardproxy": {"stopped": True, "reason": reason}}
        return [*self.notice_events(notice), _event(data), DONE]

    def error_event(self, error: GuardProxyError, request_id: str) -> ServerSentEvent:
        return _event(error.body(request_id))

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> ServerSentEvent:
        chunk = {**self._template,
                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return _event(chunk)


def finish_reason(output: Output, original: str | None) -> str:
    """OpenAI's finish_reason for `output`: tool_calls exactly when calls remain."""
    if output.tool_calls:
        return "tool_calls"
    reason = output.finish_reason or original or "stop"
    return {"tool_calls": "stop", "tool_use": "stop", "end_turn": "stop", "refusal": "content_filter",
            "max_tokens": "length"}.get(reason, reason)


def _event(chunk: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(chunk, ensure_ascii=False, separators=(",", ":")))
