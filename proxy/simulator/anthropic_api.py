"""The Anthropic-compatible API (POST /v1/messages): reading its requests, serving its replies.

The same obedient grammar answers as for OpenAI: an Anthropic body becomes the neutral Transcript
(system text, user turns, `tool_result` blocks as tool turns named through their `tool_use` ids,
document text read like any other), and the reply is sent as a `message` or as Anthropic's event
stream (message_start, content_block_start/delta/stop, ping, message_delta, message_stop). Faults
and the error shape work as Anthropic's do.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from proxy.simulator import faults, grammar, replies
from proxy.simulator.config import STATE_KEY
from proxy.simulator.grammar import Call, Transcript, Turn

DEFAULT_MODEL = "sim-claude"
ID_PREFIX = "msg_sim_"
_TYPES = {"server_error": "api_error"}  # the faults module speaks OpenAI's words


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)


def error_response(status: int, message: str, type_: str, code: str | None = None) -> web.Response:
    """An error in Anthropic's shape: {"type": "error", "error": {"type", "message"}}."""
    body = {"type": "error", "error": {"type": _TYPES.get(type_, type_), "message": message}}
    return web.json_response(body, status=status)


async def messages(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    body = await _read_json(request)
    config = state.record(body, {name.lower(): value for name, value in request.headers.items()})
    await faults.sleep_ms(config.ttft_ms)
    if not authorized(request.headers, config.require_key):
        return error_response(401, "invalid x-api-key", "authentication_error")
    if not request.headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required", "invalid_request_error")
    problem = check_request(body)
    if problem is not None:
        return error_response(400, problem, "invalid_request_error")
    fault = state.take_fault()
    if fault is not None:
        broken = await faults.early_fault(request, fault, config, error_response)
        if broken is not None:
            return broken
    transcript = read_transcript(body)
    reply = replies.build_reply(body, transcript, grammar.decide(transcript), prefix=ID_PREFIX)
    model = body["model"] if isinstance(body.get("model"), str) else DEFAULT_MODEL
    if body.get("stream") is True:
        events = [sse_event(e) for e in stream_events(reply, model)]
        return await faults.send_events(request, events, config, fault)
    payload = json.dumps(message(reply, model), ensure_ascii=False).encode()
    return await faults.send_body(request, payload, config, fault)


def authorized(headers: Any, required_key: str | None) -> bool:
    """Anthropic's API takes the key as x-api-key; newer SDKs send it as a bearer token."""
    if required_key is None:
        return True
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    bearer = scheme.lower() == "bearer" and token.strip() == required_key
    return bool(headers.get("x-api-key") == required_key or bearer)


async def _read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


def check_request(body: Any) -> str | None:
    """A message when the body is not a Messages request the simulator can answer."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if isinstance(body.get("max_tokens"), bool) or not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
    return None


# --- Replies -------------------------------------------------------------------------------------


def _calls(reply: replies.Reply) -> list[dict[str, Any]]:
    return [
        {"type": "tool_use", "id": "toolu_" + c.id.removeprefix("call_"), "name": c.name,
         "input": json.loads(c.arguments)}
        for c in reply.tool_calls
    ]


def stop_reason(reply: replies.Reply) -> str:
    return "tool_use" if reply.tool_calls else "end_turn"


def usage(reply: replies.Reply) -> dict[str, int]:
    return {"input_tokens": reply.prompt_tokens, "output_tokens": reply.completion_tokens}


def message(reply: replies.Reply, model: str) -> dict[str, Any]:
    """The non-streaming `message` object."""
    content = _calls(reply) if reply.tool_calls else [{"type": "text", "text": reply.text}]
    return {
        "id": reply.id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop_reason(reply), "stop_sequence": None, "usage": usage(reply),
    }


def stream_events(reply: replies.Reply, model: str) -> list[dict[str, Any]]:
    """The stream's events in order, each with its `type` (also the SSE event name)."""
    start = message(reply, model) | {"content": [], "stop_reason": None,
                                     "usage": {"input_tokens": reply.prompt_tokens, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if reply.tool_calls:
        for index, call in enumerate(_calls(reply)):
            events.append({"type": "content_block_start", "index": index, "content_block": {**call, "input": {}}})
            if index == 0:
                events.append({"type": "ping"})
            arguments = json.dumps(call["input"], ensure_ascii=False, separators=(",", ":"))
            pieces = [""] + [arguments[i : i + replies.ARGUMENT_PIECE_CHARS]
                             for i in range(0, len(arguments), replies.ARGUMENT_PIECE_CHARS)]
            events.extend({"type": "content_block_delta", "index": index,
                           "delta": {"type": "input_json_delta", "partial_json": p}} for p in pieces)
            events.append({"type": "content_block_stop", "index": index})
    else:
        events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        events.append({"type": "ping"})
        events.extend({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
                      for t in reply.tokens)
        events.append({"type": "content_block_stop", "index": 0})
    events.append({"type": "message_delta", "delta": {"stop_reason": stop_reason(reply), "stop_sequence": None},
                   "usage": {"output_tokens": reply.completion_tokens}})
    events.append({"type": "message_stop"})
    return events


def sse_event(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


# --- Reading a request: Anthropic body -> Transcript --------------------------------------------


def read_transcript(body: dict[str, Any]) -> Transcript:
    """The grammar's view of a Messages body; malformed parts are skipped, never fatal."""
    turns: list[Turn] = []
    system = _text_of(body.get("system"))
    if system:
        turns.append(Turn(role="system", text=system))
    names: dict[str, str] = {}
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            turns.extend(_turns(m, names))
    choice = body.get("tool_choice")
    return Transcript(
        turns=tuple(turns),
        tool_names=frozenset(t["name"] for t in body.get("tools") or [] if isinstance(t, dict)
                             and isinstance(t.get("name"), str)),
        tools_allowed=not (isinstance(choice, dict) and choice.get("type") == "none"),
    )


def _turns(message: dict[str, Any], names: dict[str, str]) -> list[Turn]:
    role, content = str(message.get("role")), message.get("content")
    blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
    blocks = [b for b in blocks if isinstance(b, dict)]
    if role == "assistant":
        calls = []
        for b in blocks:
            name = b.get("name")
            if b.get("type") == "tool_use" and isinstance(name, str):
                names[str(b.get("id"))] = name
                calls.append(Call(name, b.get("input")))
        return [Turn(role="assistant", text=_text_of(blocks), calls=tuple(calls))]
    turns = [
        Turn(role="tool", text=_text_of(b.get("content")), tool=names.get(str(b.get("tool_use_id"))))
        for b in blocks if b.get("type") == "tool_result"
    ]
    # Documents are read like the user's own text: the simulator is obedient to all it reads.
    text = _text_of([b for b in blocks if b.get("type") != "tool_result"])
    if text or not turns:
        turns.append(Turn(role="user", text=text))
    return turns


def _text_of(value: Any) -> str:
    """A string, or the text of text/document blocks joined by newlines."""
    if isinstance(value, str):
        return value
    parts: list[str] = []
    for b in value if isinstance(value, list) else []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text" and isinstance(b.get("text"), str):
            parts.append(b["text"])
        elif b.get("type") == "document" and isinstance(b.get("source"), dict):
            source = b["source"]
            parts.append(source["data"] if isinstance(source.get("data"), str) else _text_of(source.get("content")))
    return "\n".join(p for p in parts if p)
