"""Build the deterministic reply to a decision (ids, tokens, usage) and its OpenAI shapes. Pure.

`build_reply` is provider-neutral (a later Anthropic module reuses it with its own id prefix);
`chat_completion` and `chat_chunks` render it as OpenAI chat completions JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from proxy.simulator.grammar import Decision, Transcript

CREATED = 1_700_000_000  # constant so the same request always yields the same bytes
ARGUMENT_PIECE_CHARS = 8
_TOKEN = re.compile(r"\s*\S+\s*")  # a word with its trailing space; leading space joins the first


@dataclass(frozen=True, slots=True)
class ToolCallOut:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI sends it


@dataclass(frozen=True, slots=True)
class Reply:
    id: str
    text: str
    tokens: tuple[str, ...]  # `text` split for streaming; joined they give `text` back
    tool_calls: tuple[ToolCallOut, ...]
    prompt_tokens: int
    completion_tokens: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def canonical_json(body: Any) -> str:
    """One spelling per JSON value (sorted keys, no spaces), so equal requests hash equally."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def reply_id(body: Any, prefix: str = "chatcmpl-sim-") -> str:
    """`prefix` + the first 16 hex digits of sha256 of the canonical request JSON."""
    return prefix + hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16]


def tool_call_id(request_id: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{request_id}{index}".encode()).hexdigest()[:8]


def split_tokens(text: str) -> tuple[str, ...]:
    """Words with their trailing whitespace; whitespace-only text stays one token."""
    tokens = tuple(_TOKEN.findall(text))
    return tokens if tokens or not text else (text,)


def prompt_tokens(transcript: Transcript) -> int:
    """ceil(characters of all message texts / 4), the usual rough token estimate."""
    return math.ceil(sum(len(turn.text) for turn in transcript.turns) / 4)


def build_reply(body: Any, transcript: Transcript, decision: Decision, prefix: str = "chatcmpl-sim-") -> Reply:
    """The reply for `decision`, with ids derived from the request `body`."""
    rid = reply_id(body, prefix)
    calls = tuple(
        ToolCallOut(
            id=tool_call_id(rid, i),
            name=call.name,
            arguments=json.dumps(call.arguments, ensure_ascii=False, separators=(",", ":")),
        )
        for i, call in enumerate(decision.calls)
    )
    tokens = () if calls else split_tokens(decision.text)
    completion = sum(math.ceil(len(c.arguments) / 4) for c in calls) if calls else len(tokens)
    return Reply(
        id=rid,
        text="" if calls else decision.text,
        tokens=tokens,
        tool_calls=calls,
        prompt_tokens=prompt_tokens(transcript),
        completion_tokens=completion,
    )


def usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


# --- OpenAI chat completions ----------------------------------------------------------------------


def chat_completion(reply: Reply, model: str) -> dict[str, Any]:
    """The non-streaming `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": usage(reply),
    }


def chat_chunks(reply: Reply, model: str, include_usage: bool = False) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a stream, in order, without the final [DONE]."""
    deltas = _tool_deltas(reply) if reply.tool_calls else _text_deltas(reply)
    chunks = [_chunk(reply, model, delta, None, include_usage) for delta in deltas]
    chunks.append(_chunk(reply, model, {}, reply.finish_reason, include_usage))
    if include_usage:
        # OpenAI's last chunk when usage is asked for: no choices, just the usage.
        last = _chunk(reply, model, {}, None, include_usage)
        last["choices"] = []
        last["usage"] = usage(reply)
        chunks.append(last)
    return chunks


def _text_deltas(reply: Reply) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": ""}] + [{"content": t} for t in reply.tokens]


def _tool_deltas(reply: Reply) -> list[dict[str, Any]]:
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(reply.tool_calls):
        header: dict[str, Any] = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        # Like OpenAI, the role rides on the first tool call's header rather than its own chunk.
        delta = {"role": "assistant", "content": None} if index == 0 else {}
        deltas.append({**delta, "tool_calls": [header]})
        for start in range(0, len(call.arguments), ARGUMENT_PIECE_CHARS):
            piece = call.arguments[start : start + ARGUMENT_PIECE_CHARS]
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas


def _chunk(reply: Reply, model: str, delta: dict[str, Any], finish: str | None, include_usage: bool) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": reply.id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if include_usage:
        chunk["usage"] = None  # OpenAI sends null usage on every chunk but the last
    return chunk
