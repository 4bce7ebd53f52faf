"""OpenAI Responses API event streams: the per-stream codec the stream guard drives.

Upstream `response.*` events are classified (output_text deltas are TEXT; every event of a call
item (`function_call`, `custom_tool_call`, a client-run `shell_call`...) is TOOL, held until the
turn ends; `response.completed` and `response.incomplete` end the turn; `error` and
`response.failed` are the upstream's own error).
Whatever the proxy withholds or adds, the client sees one consistent stream, as the SDK's strict
accumulator requires: `sequence_number` counts every event the client gets from 0, `output_index`
numbers only the items it gets, the `.done` events and the final `response` carry the text that was
actually sent, and the final `response.output` lists exactly the items sent.
"""

from __future__ import annotations

import json
from typing import Any

from httpx_sse import ServerSentEvent

from proxy.errors import GuardProxyError
from proxy.model import Output, ToolCall
from proxy.providers.base import Part, PartKind
from proxy.providers.openai_responses_output import CALL_ITEMS, NOTICE_ID, call_of, notice_item, parse_output

_TOOL_EVENTS = frozenset({
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
    "response.shell_call_command.added", "response.shell_call_command.delta", "response.shell_call_command.done",
})
_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_TEXT_DONE = frozenset({"response.output_text.done", "response.refusal.done", "response.content_part.done"})
_ENDS = frozenset({"response.completed", "response.incomplete"})


class ResponsesCodec:
    def __init__(self) -> None:
        self._seq = 0  # the next sequence_number the client sees
        self._index: dict[int, int] = {}  # upstream output_index -> the client's
        self._withheld: set[int] = set()
        self._items: dict[int, dict[str, Any]] = {}  # upstream output_index -> item as the upstream finished it
        self._sent_items: dict[int, dict[str, Any]] = {}  # client output_index -> item as the client got it
        self._sent_text: dict[str, str] = {}  # item id -> text the client got
        self._changed = False  # anything withheld, added or rewritten: the final response is rebuilt
        self._response: dict[str, Any] = {}
        self._final: dict[str, Any] | None = None
        self._done = False
        self._upstream_text: list[str] = []
        self._open: tuple[str, int] | None = None  # the message item sent but not finished: (id, index)

    @property
    def done(self) -> bool:
        return self._done

    # --- reading ------------------------------------------------------------------------------------

    def channels(self) -> list[int]:
        return [0]  # one response, one output stream

    def must_resend(self, channel: int) -> bool:
        return False

    def parts(self, event: ServerSentEvent) -> list[Part]:
        return [self.classify(event)]

    def classify(self, event: ServerSentEvent) -> Part:
        try:
            data = json.loads(event.data)
        except ValueError:
            return Part(PartKind.PASS, event)
        if not isinstance(data, dict):
            return Part(PartKind.PASS, event)
        kind = str(data.get("type") or event.event)
        if isinstance(data.get("response"), dict):
            self._response = data["response"]
        if kind in ("error", "response.failed"):
            self._done = True
            return Part(PartKind.ERROR, event, data)
        if kind in _ENDS:
            self._done, self._final = True, data["response"] if isinstance(data.get("response"), dict) else {}
            return Part(PartKind.FINISH, event, data)
        item = data.get("item") if isinstance(data.get("item"), dict) else None
        if item is not None and not isinstance(item.get("type"), str):
            item = None
        if kind == "response.output_item.done" and item is not None:
            self._items[int(data.get("output_index", 0))] = item
        if kind in _TEXT_DELTAS and isinstance(data.get("delta"), str):
            self._upstream_text.append(data["delta"])
            return Part(PartKind.TEXT, event, data, text=data["delta"])
        if kind in _TOOL_EVENTS or (item is not None and item.get("type") in CALL_ITEMS):
            return Part(PartKind.TOOL, event, data)
        if kind in _TEXT_DONE or (kind == "response.output_item.done" and item is not None):
            return Part(PartKind.BOUNDARY, event, data)
        return Part(PartKind.PASS, event, data)

    def output(self, channel: int = 0) -> Output:
        """What the upstream sent so far, as the SDK would assemble it."""
        response = dict(self._final or self._response)
        if not isinstance(response.get("output"), list) or not response["output"] or self._final is None:
            response["output"] = [self._items[k] for k in sorted(self._items)]
        out = parse_output(response)
        if self._final is None:  # mid-stream: text of items not finished yet counts too
            out = Output(text="".join(self._upstream_text), tool_calls=out.tool_calls, response_id=out.response_id,
                         model=out.model, uninspected=out.uninspected)
        return out

    # --- writing ------------------------------------------------------------------------------------

    def encode(self, part: Part) -> ServerSentEvent:
        data = part.data
        if data is None:
            return part.event
        kind = str(data.get("type"))
        if kind in _TEXT_DELTAS:
            self._note_text(data, str(data.get("delta", "")))
        if kind in _ENDS:
            return self.finish_event(part, self.output())
        return self._emit(self._fitted(data))

    def withhold(self, part: Part) -> None:
        if part.data is not None and "output_index" in part.data:
            self._withheld.add(int(part.data["output_index"]))
            self._changed = True

    def text_event(self, part: Part, text: str) -> ServerSentEvent:
        data = dict(part.data or {})
        data["delta"] = text
        self._note_text(data, text)
        if text != part.text:
            self._changed = True
        return self._emit(self._fitted(data))

    def tool_events(self, calls: tuple[ToolCall, ...], channel: int = 0) -> list[ServerSentEvent]:
        self._changed = True  # the held calls are sent anew: whatever is not among them was withheld
        by_id = {call_of(item, 0).id: item for item in self._items.values() if item.get("type") in CALL_ITEMS}
        out = []
        for call in calls:
            item = by_id.get(call.id) or {"type": "function_call", "id": "fc_" + call.id, "call_id": call.id,
                                          "name": call.name, "arguments": call.arguments, "status": "completed"}
            out.extend(self._item_events(item))
        return out

    def notice_events(self, text: str, channel: int = 0) -> list[ServerSentEvent]:
        if not text:
            return []
        self._changed = True
        if self._open is not None:  # text a guard rewrote: it belongs to the message being sent
            item_id, index = self._open
            data = {"type": "response.output_text.delta", "item_id": item_id, "output_index": index,
                    "content_index": 0, "delta": text, "logprobs": []}
            self._note_text(data, text)
            return [self._emit(data)]
        return self._item_events(notice_item(text.lstrip("\n")))

    def finish_event(self, part: Part, output: Output, trace: dict[str, Any] | None = None) -> ServerSentEvent:
        data = dict(part.data or {"type": "response.completed"})
        if trace:
            data["guardproxy"] = trace  # what the proxy withheld, readable by the client
        response = dict(data.get("response") or self._response)
        if self._changed:
            response["output"] = [self._sent_items[k] for k in sorted(self._sent_items)]
        data["response"] = response
        return self._emit(data)

    def end_blocked(self, reason: str, notice: str) -> list[ServerSentEvent]:
        events = self.notice_events(notice)
        response = dict(self._response) | {
            "status": "incomplete", "incomplete_details": {"reason": "content_filter"},
            "output": [self._sent_items[k] for k in sorted(self._sent_items)],
        }
        # Extra keys are kept by the SDK's models: a client can read why the stream ended.
        final = {"type": "response.incomplete", "response": response,
                 "guardproxy": {"stopped": True, "reason": reason}}
        return [*events, self._emit(final)]

    def error_event(self, error: GuardProxyError, request_id: str) -> ServerSentEvent:
        body = error.body(request_id)
        # The Responses `error` event, plus the `error` object that makes the SDK raise an APIError.
        data = {"type": "error", "code": error.code, "message": error.message, "param": error.param, **body}
        return self._emit(data)

    # --- helpers -----------------------------------------------------------------------------------

    def _note_text(self, data: dict[str, Any], text: str) -> None:
        key = str(data.get("item_id"))
        self._sent_text[key] = self._sent_text.get(key, "") + text

    def _fitted(self, data: dict[str, Any]) -> dict[str, Any]:
        """`data` with the client's output_index and the text actually sent in `.done` events."""
        if "output_index" in data:
            upstream = int(data["output_index"])
            index = self._index.setdefault(upstream, len(self._index))
            if index != upstream:
                data = data | {"output_index": index}
        kind = data.get("type")
        added = data.get("item") if kind == "response.output_item.added" else None
        if isinstance(added, dict) and added.get("type") == "message":
            self._open = (str(added.get("id")), int(data["output_index"]))
        elif kind == "response.output_item.done":
            self._open = None
        # A message's `.done` events carry the text its deltas actually took to the client: none at all
        # when a guard held them back and sent its rewrite as its own message.
        sent = self._sent_text.get(str(data.get("item_id") or (data.get("item") or {}).get("id")), "")
        if kind in ("response.output_text.done", "response.refusal.done"):
            field = "text" if kind == "response.output_text.done" else "refusal"
            data = data | {field: sent}
        elif kind == "response.content_part.done" and isinstance(data.get("part"), dict):
            field = "text" if data["part"].get("type") == "output_text" else "refusal"
            data = data | {"part": data["part"] | {field: sent}}
        elif kind == "response.output_item.done" and isinstance(data.get("item"), dict):
            item = data["item"]
            if item.get("type") == "message":
                parts = item.get("content") or []
                item = item | {"content": [_with_text(p, sent, n == 0) for n, p in enumerate(parts)]}
                data = data | {"item": item}
            self._sent_items[int(data["output_index"])] = item
        return data

    def synthetic(self, kind: str, fields: dict[str, Any]) -> ServerSentEvent:
        """An event the proxy writes itself, numbered in this stream."""
        return self._emit({"type": kind, **fields})

    def whole_item(self, item: dict[str, Any]) -> list[ServerSentEvent]:
        return self._item_events(item)

    def _item_events(self, item: dict[str, Any]) -> list[ServerSentEvent]:
        """A whole item the proxy sends itself (a released call, a notice), at the next index."""
        index = len(self._index)
        self._index[-1 - index] = index  # a slot no upstream index uses
        self._changed = True
        where = {"item_id": item.get("id"), "output_index": index}
        out = []
        kind = item.get("type")
        content = item.get("content")
        first = content[0] if isinstance(content, list) and content else None
        if kind == "message" and isinstance(first, dict) and first.get("type") == "output_text":
            text, part = str(first.get("text") or ""), first
            out = [{"type": "response.output_item.added", "output_index": index,
                    "item": item | {"status": "in_progress", "content": []}},
                   {"type": "response.content_part.added", **where, "content_index": 0, "part": part | {"text": ""}},
                   {"type": "response.output_text.delta", **where, "content_index": 0, "delta": text, "logprobs": []},
                   {"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []},
                   {"type": "response.content_part.done", **where, "content_index": 0, "part": part}]
        elif kind in ("function_call", "custom_tool_call"):
            field = "input" if kind == "custom_tool_call" else "arguments"
            name = "custom_tool_call_input" if kind == "custom_tool_call" else "function_call_arguments"
            value = str(item.get(field) or "")
            out = [{"type": "response.output_item.added", "output_index": index,
                    "item": item | {"status": "in_progress", field: ""}},
                   {"type": f"response.{name}.delta", **where, "delta": value},
                   {"type": f"response.{name}.done", **where, field: value}]
        else:  # a provider-run tool's item, a reasoning item: whole as it is
            out = [{"type": "response.output_item.added", "output_index": index, "item": item}]
        out.append({"type": "response.output_item.done", "output_index": index, "item": item})
        self._sent_items[index] = item
        return [self._emit(e) for e in out]

    def _emit(self, data: dict[str, Any]) -> ServerSentEvent:
        data = data | {"sequence_number": self._seq}
        self._seq += 1
        return ServerSentEvent(event=str(data.get("type")), data=json.dumps(data, ensure_ascii=False,
                                                                            separators=(",", ":")))


def _with_text(part: Any, text: str, first: bool) -> Any:
    if not isinstance(part, dict):
        return part
    field = "refusal" if part.get("type") == "refusal" else "text"
    return part | {field: text if first else ""}


__all__ = ["NOTICE_ID", "ResponsesCodec"]
