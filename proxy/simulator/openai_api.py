"""The OpenAI-compatible API (chat completions, models): reading its requests, serving its replies.

Each chat request is recorded for /_sim/stats, then checked (key, shape), then possibly broken by
the configured fault, then answered from the grammar's decision.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from proxy.simulator import faults, grammar, replies
from proxy.simulator.config import STATE_KEY
from proxy.simulator.grammar import TOOL_RESULT_ROLES, Call, Transcript, Turn

MODELS = ("sim-gpt", "sim-gpt-mini", "sim-reasoner")
DEFAULT_MODEL = MODELS[0]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)


def error_response(status: int, message: str, type_: str, code: str | None, param: str | None = None) -> web.Response:
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status)


async def list_models(request: web.Request) -> web.Response:
    data = [
        {"id": m, "object": "model", "created": replies.CREATED, "owned_by": "guardproxy-simulator"} for m in MODELS
    ]
    return web.json_response({"object": "list", "data": data})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    body = await read_json(request)
    config = state.record(body, {name.lower(): value for name, value in request.headers.items()})
    await faults.sleep_ms(config.ttft_ms)
    if not authorized(request.headers.get("Authorization"), config.require_key):
        return error_response(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    problem = check_request(body)
    if problem is not None:
        message, param = problem
        return error_response(400, message, "invalid_request_error", None, param)
    # Faults only hit valid, authorized requests: they stand for upstream failures, not client bugs.
    fault = state.take_fault()
    if fault is not None:
        broken = await faults.early_fault(request, fault, config, error_response)
        if broken is not None:
            return broken
    transcript = read_transcript(body)
    reply = replies.build_reply(body, transcript, grammar.decide(transcript))
    model = body.get("model") if isinstance(body.get("model"), str) else DEFAULT_MODEL
    if body.get("stream") is True:
        events = [sse_event(c) for c in replies.chat_chunks(reply, model, include_usage(body))]
        events.append(b"data: [DONE]\n\n")
        return await faults.send_events(request, events, config, fault)
    payload = json.dumps(replies.chat_completion(reply, model), ensure_ascii=False).encode()
    return await faults.send_body(request, payload, config, fault)


async def read_json(request: web.Request) -> Any:
    """The parsed body, or None when it is not JSON (check_request then rejects it)."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return None


def authorized(header: str | None, required_key: str | None) -> bool:
    if required_key is None:
        return True
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and token.strip() == required_key


def check_request(body: Any) -> tuple[str, str | None] | None:
    """(message, param) when the body is not a chat request the simulator can answer."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object.", None
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "'messages' is required and must be an array.", "messages"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] must be an object.", f"messages[{i}]"
    return None


def include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def sse_event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


# --- Reading a request: OpenAI body -> Transcript ----------------------------------------------


def read_transcript(body: dict[str, Any]) -> Transcript:
    """The grammar's view of a chat completions body; malformed parts are skipped, never fatal."""
    messages = body.get("messages")
    turns = _name_results(
        tuple(_turn(m) for m in (messages if isinstance(messages, list) else []) if isinstance(m, dict)),
        [m for m in (messages if isinstance(messages, list) else []) if isinstance(m, dict)],
    )
    return Transcript(
        turns=turns,
        tool_names=_tool_names(body.get("tools")),
        tools_allowed=body.get("tool_choice") != "none",
    )


def _name_results(turns: tuple[Turn, ...], messages: list[dict[str, Any]]) -> tuple[Turn, ...]:
    """Tag each tool-result turn with the tool that produced it (via the assistant's call ids)."""
    names: dict[str, str] = {}
    out = []
    for turn, message in zip(turns, messages, strict=True):
        for tc in message.get("tool_calls") or [] if message.get("role") == "assistant" else []:
            if isinstance(tc, dict) and isinstance(tc.get("function"), dict):
                names[str(tc.get("id"))] = str(tc["function"].get("name"))
        tool = names.get(str(message.get("tool_call_id"))) if turn.role == "tool" else message.get("name")
        out.append(dataclasses.replace(turn, tool=tool) if turn.role in TOOL_RESULT_ROLES else turn)
    return tuple(out)


def message_text(content: Any) -> str:
    """The text of an OpenAI message `content`: the string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = [
        p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
    ]
    return "\n".join(parts)


def _turn(message: dict[str, Any]) -> Turn:
    role = message.get("role")
    role = role if isinstance(role, str) else ""
    calls: list[Call] = []
    if role == "assistant":
        raw_calls = message.get("tool_calls")
        for tc in raw_calls if isinstance(raw_calls, list) else []:
            if isinstance(tc, dict) and isinstance(tc.get("function"), dict):
                calls.extend(_past_call(tc["function"]))
        if isinstance(message.get("function_call"), dict):  # the legacy single-call form
            calls.extend(_past_call(message["function_call"]))
    return Turn(role=role, text=message_text(message.get("content")), calls=tuple(calls))


def _past_call(function: dict[str, Any]) -> list[Call]:
    name, raw = function.get("name"), function.get("arguments")
    if not isinstance(name, str):
        return []
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = raw
    return [Call(name, arguments)]


def _tool_names(tools: Any) -> frozenset[str]:
    names: set[str] = set()
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return frozenset(names)
