"""Accumulates an OpenAI chat.completion.chunk stream into one Output, as the SDK would."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from proxy.model import Output, ToolCall


@dataclass
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class StreamAccumulator:
    """Feed each SSE `data:` payload; `output()` gives what the client has received so far."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, _CallParts] = {}
        self._finish: str | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._usage: dict[str, Any] = {}
        self.done = False  # saw [DONE]

    def feed(self, data: str) -> dict[str, Any] | None:
        """Take one event's data; return the parsed chunk (None for [DONE] or non-JSON)."""
        if data.strip() == "[DONE]":
            self.done = True
            return None
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            return None
        if isinstance(chunk, dict):
            self._take(chunk)
            return chunk
        return None

    def _take(self, chunk: dict[str, Any]) -> None:
        self._id = chunk.get("id", self._id)
        self._model = chunk.get("model", self._model)
        self._usage = chunk.get("usage") or self._usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self._text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                self._take_call(call)
            self._finish = choice.get("finish_reason") or self._finish

    def _take_call(self, call: dict[str, Any]) -> None:
        parts = self._calls.setdefault(int(call.get("index", 0)), _CallParts())
        parts.id = call.get("id") or parts.id
        fn = call.get("function") or {}
        parts.name = fn.get("name") or parts.name
        if isinstance(fn.get("arguments"), str):
            parts.arguments.append(fn["arguments"])

    def output(self) -> Output:
        calls = tuple(
            ToolCall(p.id, p.name, "".join(p.arguments), index=i) for i, p in sorted(self._calls.items())
        )
        return Output(
            text="".join(self._text),
            tool_calls=calls,
            finish_reason=self._finish,
            response_id=self._id,
            model=self._model,
            input_tokens=self._usage.get("prompt_tokens"),
            output_tokens=self._usage.get("completion_tokens"),
        )
