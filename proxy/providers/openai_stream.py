"""Accumulates an OpenAI chat.completion.chunk stream into one Output per choice, as the SDK would.

Every choice (`n > 1`) is its own channel with its own text and tool calls. A tool call's name
and id may arrive split over several deltas: they are joined, as the Python SDK joins them (the
Node SDK keeps the last fragment), and such a call is marked so the proxy re-sends it whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from proxy.model import Output, ToolCall, Uninspected
from proxy.providers.openai_response import READ_MESSAGE_KEYS, unread_parts


@dataclass
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    fragments: int = 0  # deltas that carried a piece of the name


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    calls: dict[int, _CallParts] = field(default_factory=dict)
    finish: str | None = None
    unread: dict[str, Uninspected] = field(default_factory=dict)  # path -> what left unread so far


class StreamAccumulator:
    """Feed each SSE `data:` payload; `output(choice)` gives what that choice has said so far."""

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
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
            if not isinstance(choice, dict):
                continue
            acc = self._choices.setdefault(choice_index(choice), _Choice())
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                acc.text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self._take_call(acc, call)
            legacy = delta.get("function_call")
            if isinstance(legacy, dict):  # the legacy single call: judged like any other
                self._take_call(acc, {"index": 0, "function": legacy})
            acc.finish = choice.get("finish_reason") or acc.finish
            self._take_unread(acc, choice, delta)

    @staticmethod
    def _take_unread(acc: _Choice, choice: dict[str, Any], delta: dict[str, Any]) -> None:
        """Delta parts no output stage reads (a refusal, annotations, audio, logprobs), summed per path."""
        unread = {k: v for k, v in delta.items() if k not in READ_MESSAGE_KEYS}
        for entry in unread_parts({**choice, "message": unread}, choice_index(choice)):
            path = entry.path.replace(".message.", ".delta.")
            seen = acc.unread.get(path)
            acc.unread[path] = Uninspected(path, entry.why, entry.chars + (seen.chars if seen else 0))

    @staticmethod
    def _take_call(acc: _Choice, call: dict[str, Any]) -> None:
        parts = acc.calls.setdefault(int(call.get("index") or 0), _CallParts())
        if isinstance(call.get("id"), str):
            parts.id += call["id"]
        fn = call.get("function") or {}
        if isinstance(fn.get("name"), str) and fn["name"]:
            parts.name += fn["name"]
            parts.fragments += 1
        if isinstance(fn.get("arguments"), str):
            parts.arguments.append(fn["arguments"])

    def choices(self) -> list[int]:
        return sorted(self._choices) or [0]

    def split_names(self, choice: int) -> bool:
        """A call of this choice had its name split over deltas (SDKs would disagree on it)."""
        acc = self._choices.get(choice)
        return acc is not None and any(p.fragments > 1 for p in acc.calls.values())

    def output(self, choice: int = 0) -> Output:
        acc = self._choices.get(choice) or _Choice()
        calls = tuple(
            ToolCall(p.id, p.name, "".join(p.arguments), index=i) for i, p in sorted(acc.calls.items())
        )
        return Output(
            text="".join(acc.text),
            tool_calls=calls,
            finish_reason=acc.finish,
            response_id=self._id,
            model=self._model,
            input_tokens=self._usage.get("prompt_tokens"),
            output_tokens=self._usage.get("completion_tokens"),
            # Every choice's: the ledger is built from choice 0's Output.
            uninspected=tuple(u for c in self._choices.values() for u in c.unread.values()),
        )


def choice_index(choice: dict[str, Any]) -> int:
    index = choice.get("index", 0)
    return index if isinstance(index, int) and index >= 0 else 0
