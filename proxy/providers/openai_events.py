"""OpenAI chat.completion.chunk streams: the per-stream event codec the stream session drives.

Splits each upstream chunk into parts of one kind and one choice (text to inspect, tool-call parts
to hold, the finish, [DONE]) while the accumulator builds each choice's Output, and writes the
chunks the proxy adds. A chunk that is already one part is relayed as its own bytes. Every chunk
the proxy writes copies the stream's own id/model/created, and the first chunk the client gets for
a choice always says `role: assistant` (SDK stream helpers require it), whatever was withheld.
"""

from __future__ import annotations

import json
from typing import Any

from httpx_sse import ServerSentEvent

from proxy.errors import GuardProxyError
from proxy.model import Output, ToolCall
from proxy.providers.base import Part, PartKind
from proxy.providers.openai_stream import StreamAccumulator, choice_index

DONE = ServerSentEvent(data="[DONE]")
_TOOL_KEYS = ("tool_calls", "function_call")


class OpenAICodec:
    def __init__(self) -> None:
        self.acc = StreamAccumulator()
        self._last: dict[str, Any] = {"object": "chat.completion.chunk"}
        self._roled: set[int] = set()  # choices whose role the client has been told

    @property
    def _template(self) -> dict[str, Any]:
        """The stream's own id/object/created/model, for chunks the proxy writes."""
        return {k: v for k, v in self._last.items() if k not in ("choices", "usage")}

    @property
    def done(self) -> bool:
        return self.acc.done

    def channels(self) -> list[int]:
        return self.acc.choices()

    def output(self, channel: int = 0) -> Output:
        return self.acc.output(channel)

    def must_resend(self, channel: int) -> bool:
        return self.acc.split_names(channel)

    def parts(self, event: ServerSentEvent) -> list[Part]:
        chunk = self.acc.feed(event.data)
        if self.acc.done:
            return [Part(PartKind.DONE, event)]
        if chunk is None:
            return [Part(PartKind.PASS, event)]
        if "error" in chunk and "choices" not in chunk:
            return [Part(PartKind.ERROR, event, chunk)]
        self._last = chunk
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return [Part(PartKind.PASS, event, chunk)]  # e.g. the usage chunk
        if len(choices) == 1 and isinstance(choice := choices[0], dict) and not choice.get("finish_reason"):
            # The hot path, one text delta: no splitting to consider.
            delta = choice.get("delta")
            if isinstance(delta, dict) and len(delta) == 1 and isinstance(text := delta.get("content"), str) and text:
                index = choice.get("index", 0)
                return [Part(PartKind.TEXT, event, chunk, index if type(index) is int and index >= 0 else 0, text)]
        pieces = [p for c in choices if isinstance(c, dict) for p in _pieces(c)]
        if len(pieces) == 1:  # the common case: relay the upstream's own bytes
            kind, choice, text = pieces[0]
            return [Part(kind, event, chunk, choice_index(choice), text)]
        base = {k: v for k, v in chunk.items() if k != "choices"}
        out = []
        for kind, choice, text in pieces:
            data = {**base, "choices": [choice]}
            out.append(Part(kind, _event(data), data, choice_index(choice), text))
        return out

    # --- what goes to the client ------------------------------------------------------------------

    def encode(self, part: Part) -> ServerSentEvent:
        data = part.data
        if part.channel in self._roled or data is None or part.kind in (PartKind.DONE, PartKind.ERROR):
            return part.event
        choices = data.get("choices")
        if not isinstance(choices, list) or len(choices) != 1:
            return part.event
        self._roled.add(part.channel)
        delta = choices[0].get("delta")
        if isinstance(delta, dict) and "role" in delta:
            return part.event
        return _event({**data, "choices": [{**choices[0], "delta": {"role": "assistant", **(delta or {})}}]})

    def text_event(self, part: Part, text: str) -> ServerSentEvent:
        chunk = dict(part.data or self._template)
        choices = []
        for choice in chunk.get("choices") or [{"index": part.channel}]:
            if choice_index(choice) == part.channel:
                delta = {**self._role(part.channel), **(choice.get("delta") or {}), "content": text}
                choice = {**choice, "delta": delta, "finish_reason": None}  # the finish is its own chunk
            choices.append(choice)
        chunk["choices"] = choices
        return _event(chunk)

    def tool_events(self, calls: tuple[ToolCall, ...], channel: int = 0) -> list[ServerSentEvent]:
        return [
            self._chunk({"tool_calls": [{"index": i, "id": c.id, "type": "function",
                                         "function": {"name": c.name, "arguments": c.arguments}}]}, channel)
            for i, c in enumerate(calls)
        ]

    def notice_events(self, text: str, channel: int = 0) -> list[ServerSentEvent]:
        return [self._chunk({"content": text}, channel)] if text else []

    def finish_event(self, part: Part, output: Output, trace: dict[str, Any] | None = None) -> ServerSentEvent:
        chunk = dict(part.data or self._template)
        choices = []
        for choice in chunk.get("choices") or [{"index": part.channel, "delta": {}}]:
            if choice_index(choice) == part.channel:
                delta = {k: v for k, v in (choice.get("delta") or {}).items() if k not in ("content", *_TOOL_KEYS)}
                reason = finish_reason(output, choice.get("finish_reason"))
                choice = {**choice, "delta": {**self._role(part.channel), **delta}, "finish_reason": reason}
            choices.append(choice)
        chunk["choices"] = choices
        if trace:
            # Extra keys are kept by the SDKs' models: a client can read what the proxy withheld.
            chunk["guardproxy"] = trace
        return _event(chunk)

    def end_blocked(self, reason: str, notice: str) -> list[ServerSentEvent]:
        events = self.notice_events(notice)
        final = json.loads(self._chunk({}, 0, finish="content_filter").data)
        return [*events, _event(final | {"guardproxy": {"stopped": True, "reason": reason}}), DONE]

    def error_event(self, error: GuardProxyError, request_id: str) -> ServerSentEvent:
        return _event(error.body(request_id))

    def _role(self, channel: int) -> dict[str, str]:
        """`role` for the first chunk the client gets on a choice, else nothing."""
        if channel in self._roled:
            return {}
        self._roled.add(channel)
        return {"role": "assistant"}

    def _chunk(self, delta: dict[str, Any], channel: int, finish: str | None = None) -> ServerSentEvent:
        delta = {**self._role(channel), **delta}
        choice = {"index": channel, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _event({**self._template, "choices": [choice]})


def _pieces(choice: dict[str, Any]) -> list[tuple[PartKind, dict[str, Any], str]]:
    """One choice's delta as parts of one kind each: text, tool calls, the finish (in that order)."""
    raw = choice.get("delta")
    delta: dict[str, Any] = raw if isinstance(raw, dict) else {}
    content = delta.get("content")
    text = content if isinstance(content, str) else ""
    has_text = bool(text)
    has_tools = any(delta.get(k) for k in _TOOL_KEYS)
    finish = choice.get("finish_reason")
    if has_text + has_tools + bool(finish) <= 1:
        kind = PartKind.TEXT if has_text else PartKind.TOOL if has_tools else \
            PartKind.FINISH if finish else PartKind.PASS
        return [(kind, choice, text)]
    # Several at once (e.g. the last text or a whole tool call riding on the finish chunk): each is
    # judged on its own; the role and any other keys go with the first piece.
    rest = {k: v for k, v in delta.items() if k not in ("content", *_TOOL_KEYS)}
    common = {k: v for k, v in choice.items() if k not in ("delta", "finish_reason")}
    out: list[tuple[PartKind, dict[str, Any], str]] = []
    if has_text:
        out.append((PartKind.TEXT, {**common, "delta": {**rest, "content": text}, "finish_reason": None}, text))
        rest = {}
    if has_tools:
        tools = {k: delta[k] for k in _TOOL_KEYS if delta.get(k)}
        out.append((PartKind.TOOL, {**common, "delta": {**rest, **tools}, "finish_reason": None}, ""))
        rest = {}
    if finish:
        out.append((PartKind.FINISH, {**common, "delta": rest, "finish_reason": finish}, ""))
    return out


def finish_reason(output: Output, original: str | None) -> str:
    """OpenAI's finish_reason for `output`: tool_calls exactly when calls remain."""
    if output.tool_calls:
        return "tool_calls"
    reason = output.finish_reason or original or "stop"
    return {"tool_calls": "stop", "tool_use": "stop", "end_turn": "stop", "refusal": "content_filter",
            "max_tokens": "length"}.get(reason, reason)


def _event(chunk: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(chunk, ensure_ascii=False, separators=(",", ":")))
