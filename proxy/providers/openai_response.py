"""A non-streamed chat.completion response <-> Output: every choice, legacy `function_call` too.

All choices' tool calls go into `Output.tool_calls` (each with its `choice`), so every call of
every choice is judged; choice 0's text is `Output.text`, the others' are `Output.alternatives`.
`render_output` writes each choice back with exactly the calls left for it.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.model import Choice, Output, ToolCall, Uninspected
from proxy.providers.jsonpath import copy_tree

LEGACY_CALL = "function_call"


def parse_output(response: dict[str, Any]) -> Output:
    choices = [c for c in response.get("choices") or () if isinstance(c, dict)] or [{}]
    usage = response.get("usage") or {}
    calls: list[ToolCall] = []
    alternatives: list[Choice] = []
    unread: list[Uninspected] = []
    for position, choice in enumerate(choices):
        number = choice.get("index", position)
        number = number if isinstance(number, int) else position
        message = choice.get("message") or {}
        calls += _calls(message, number, len(calls))
        unread += unread_parts(choice, number)
        if position:
            alternatives.append(Choice(number, _text(message), choice.get("finish_reason")))
    first = choices[0].get("message") or {}
    return Output(
        text=_text(first),
        tool_calls=tuple(calls),
        finish_reason=choices[0].get("finish_reason"),
        response_id=response.get("id"),
        model=response.get("model"),
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        alternatives=tuple(alternatives),
        uninspected=tuple(unread),
    )


# What the output stages read of a choice (its message's text and calls) and what carries nothing.
READ_MESSAGE_KEYS = frozenset({"role", "content", "tool_calls", "function_call"})
_CHOICE_KEYS = frozenset({"index", "message", "delta", "finish_reason"})
_WHY = {
    "refusal": "a refusal: no output stage reads it",
    "annotations": "message annotations (citation titles, URLs): no output stage reads them",
    "audio": "an audio answer and its transcript: no output stage reads them",
    "logprobs": "log-probabilities repeat the answer's tokens past any rewrite of its text",
}


def unread_parts(choice: dict[str, Any], number: int) -> list[Uninspected]:
    """A choice's parts the client gets that no output stage reads, for the coverage ledger."""
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    out = [_unread(f"output.choices.{number}.message.{k}", k, v) for k, v in message.items()  # type: ignore[union-attr]
           if k not in READ_MESSAGE_KEYS and v not in (None, "", [], {})]
    out += [_unread(f"output.choices.{number}.{k}", k, v) for k, v in choice.items()
            if k not in _CHOICE_KEYS and v not in (None, "", [], {})]
    return out


def _unread(path: str, key: str, value: Any) -> Uninspected:
    why = _WHY.get(key, f"`{key}`: no output stage reads it")
    return Uninspected(path, why, len(value) if isinstance(value, str) else len(json.dumps(value, ensure_ascii=False)))


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _calls(message: dict[str, Any], choice: int, start: int) -> list[ToolCall]:
    out = [
        ToolCall(id=c.get("id", ""), name=(c.get("function") or {}).get("name", ""),
                 arguments=(c.get("function") or {}).get("arguments", ""), index=start + n, choice=choice)
        for n, c in enumerate(message.get("tool_calls") or ())
    ]
    legacy = message.get("function_call")
    if isinstance(legacy, dict):  # the deprecated single call: same scopes, same provenance check
        out.append(ToolCall(id="", name=legacy.get("name", ""), arguments=legacy.get("arguments", ""),
                            index=start + len(out), choice=choice, kind=LEGACY_CALL))
    return out


def render_output(response: dict[str, Any], output: Output) -> dict[str, Any]:
    """The response with each choice's content and tool calls replaced by `output`'s."""
    response = copy_tree(response)  # a parsed JSON tree: the plain copy, not deepcopy's memo and dispatch
    choices = response.get("choices") or [{}]
    response["choices"] = choices
    texts = {a.index: a for a in output.alternatives}
    for position, choice in enumerate(choices):
        number = choice.get("index", position) if isinstance(choice.get("index"), int) else position
        if position == 0:
            text, finish = output.text, output.finish_reason
        elif number in texts:
            text, finish = texts[number].text, texts[number].finish_reason
        else:
            continue
        message = choice.setdefault("message", {"role": "assistant"})
        message["content"] = text or None
        calls = [c for c in output.tool_calls if c.choice == number]
        current = [c for c in calls if c.kind != LEGACY_CALL]
        if current:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in current
            ]
        else:
            message.pop("tool_calls", None)
        legacy = next((c for c in calls if c.kind == LEGACY_CALL), None)
        if legacy is not None:
            message["function_call"] = {"name": legacy.name, "arguments": legacy.arguments}
        else:
            message.pop("function_call", None)
        if finish:
            choice["finish_reason"] = finish
    return response
