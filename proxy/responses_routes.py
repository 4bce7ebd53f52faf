"""The Responses API routes, each authenticated like chat, none a way around the guards.

`POST /v1/responses` (plain and SSE) runs the whole pipeline like chat, with the earlier turns of
`previous_response_id` / `conversation` restored from the response state first, and what this turn
adds remembered once the answer is known (before the client can ask for the next turn). Calls the
proxy withheld in a turn the provider stored are answered for the client on the next turn (the
provider insists on an output for every call it made).

`GET /v1/responses/{id}` and `POST /v1/responses/{id}/cancel` return a response object the proxy
may never have seen (background mode, another replica): it goes through the output guards against
the remembered conversation (unknown: tainted, no tools vouched for) and is rewritten like a fresh
one. `?stream=true` (resume) is served as the judged response's events, numbered from 0, after
`starting_after`. `DELETE` forgets the state too; `input_items` lists what the client itself sent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from httpx_sse import ServerSentEvent

from proxy.body import read_json
from proxy.errors import GuardProxyError, InvalidRequest, NotFound
from proxy.model import Conversation, Exchange, Phase, Provenance, Timings, ToolSpec, Trust, VerdictKind
from proxy.policy.auth import api_key_from
from proxy.policy.spec import ClientPolicy, Policy, Scope, hash_key
from proxy.policy.store import PolicyStore
from proxy.providers import openai_responses as adapter
from proxy.providers.labels import enforce
from proxy.providers.openai_responses_output import parse_output, render_output
from proxy.providers.openai_responses_stream import ResponsesCodec
from proxy.relay import ChatRelay, blocked_error, guard_headers
from proxy.response_state import Remembered, StateStore, open_state, remember, with_history
from proxy.settings import Settings
from proxy.streaming.sse import encode_event
from proxy.upstream import Upstream, forwarded_headers, relay_headers

log = logging.getLogger("guardproxy.responses")
WITHHELD_OUTPUT = "[guardproxy] This call was withheld by policy and was not run."
_ENDS = ("response.completed", "response.incomplete")


def add_routes(app: FastAPI, settings: Settings, policies: PolicyStore) -> None:
    cfg = settings.response_state
    state = open_state(cfg.backend, cfg.url.get_secret_value() if cfg.url else None, cfg.ttl_s, cfg.max_entries)
    app.state.response_state = state

    def authenticate(request: Request) -> tuple[Policy, ClientPolicy, dict[str, Any]]:
        policy = policies.current
        api_key = api_key_from(request.headers)
        client = policy.authenticate(api_key)
        return policy, client, ({"client_key_id": hash_key(api_key)[:16]} if api_key else {})

    @app.post("/v1/responses")
    async def create(request: Request) -> Response:
        received = time.perf_counter()
        raw, body = await read_json(request, max_bytes=settings.max_body_bytes,
                                    timeout_s=settings.timeouts.client_body_s)
        policy, client, attributes = authenticate(request)
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        reference, key = _reference(body)
        remembered = await _recall(state, key)
        body, injected = _answer_withheld(body, remembered)
        if injected:
            raw = json.dumps(body).encode()
        conversation = _relabel(adapter.parse(body), injected)
        enforce(conversation, settings.unknown_shapes)  # the closed contract: read it or refuse it
        if settings.allowed_models and conversation.model not in settings.allowed_models:
            raise NotFound(f"model {conversation.model!r} is not served through this proxy",
                           code="model_not_found", param="model")
        if reference is not None:
            conversation = with_history(conversation, remembered, reference)
        conversation = _approval_for_side_effects(conversation, policy)
        exchange = Exchange(
            request_id=request.state.request_id, conversation=conversation, client=client.name, policy=policy,
            client_policy=client, received_conversation=conversation, timings=Timings(received=received),
            attributes=attributes,
        )
        request.state.exchange = exchange
        relay: ChatRelay = request.app.state.relay
        response = await relay.handle(exchange, forwarded_headers(request.headers.items()), raw, adapter.RESPONSES)
        if response.status_code != 200:
            return response

        async def keep(final: dict[str, Any]) -> None:
            record = remember(exchange, final, remembered, settings.response_state.max_chars)
            rid = final.get("id")
            try:
                if isinstance(rid, str) and body.get("store", True) is not False:
                    await state.put(rid, record)
                conv_key = _conversation_key(body)
                if conv_key:
                    await state.put(conv_key, record)
            except Exception:  # the next turn then finds no state: it counts as tainted, never clean
                log.exception("response state not kept for %s", rid)

        if isinstance(response, StreamingResponse):
            response.body_iterator = _remembering(response.body_iterator, keep)
            return response
        await keep(json.loads(bytes(response.body)))
        return response

    async def forward(request: Request, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        upstream: Upstream = request.app.state.upstream
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "stream"]
        suffix = ("?" + urlencode(query)) if query else ""
        response = await upstream.send(method, path + suffix, headers=upstream.headers(
            request.headers, has_body=method == "POST", auth=adapter.RESPONSES.upstream_auth),
            content=b"{}" if method == "POST" else None, vendor=adapter.VENDOR)
        try:
            data = await response.aread()
        finally:
            await response.aclose()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return response.status_code, parsed if parsed is not None else data, relay_headers(response.headers)

    async def judged(request: Request, method: str, path: str) -> Response:
        policy, client, attributes = authenticate(request)
        rid = request.path_params["response_id"]
        status, data, headers = await forward(request, method, path)
        if status != 200 or not isinstance(data, dict):
            return _relayed(status, data, headers)
        remembered = await _recall(state, rid)
        data, exchange = await _judge_retrieved(request, data, remembered, rid, policy, client, attributes)
        if remembered is not None and not remembered.complete and data.get("status") not in ("queued", "in_progress"):
            await state.put(rid, remember(exchange, data, remembered, settings.response_state.max_chars))
        headers |= guard_headers(exchange)
        if request.query_params.get("stream") == "true":
            after = request.query_params.get("starting_after", "")
            start = int(after) + 1 if after.lstrip("-").isdigit() else 0
            events = synthesized_events(data)[max(0, start):]
            return Response(b"".join(encode_event(e) for e in events), media_type="text/event-stream",
                            headers=headers)
        return JSONResponse(data, headers=headers)

    @app.get("/v1/responses/{response_id}")
    async def retrieve(request: Request, response_id: str) -> Response:
        return await judged(request, "GET", _stored(response_id))

    @app.post("/v1/responses/{response_id}/cancel")
    async def cancel(request: Request, response_id: str) -> Response:
        return await judged(request, "POST", _stored(response_id, "/cancel"))

    @app.delete("/v1/responses/{response_id}")
    async def delete(request: Request, response_id: str) -> Response:
        authenticate(request)
        status, data, headers = await forward(request, "DELETE", _stored(response_id))
        if status == 200:
            await state.delete(response_id)
        return _relayed(status, data, headers)

    @app.get("/v1/responses/{response_id}/input_items")
    async def input_items(request: Request, response_id: str) -> Response:
        # What the client itself sent (judged when it was sent); it is not model output.
        authenticate(request)
        status, data, headers = await forward(request, "GET", _stored(response_id, "/input_items"))
        return _relayed(status, data, headers)


def _stored(response_id: str, action: str = "") -> str:
    """The upstream path of a stored response. The id arrives percent-decoded: escaped again, a "?",
    "#" or "/" inside it stays part of the id instead of starting a query (a raw stream the proxy
    would relay unjudged), a fragment or another route."""
    return f"/responses/{quote(response_id, safe='')}{action}"


async def _recall(state: StateStore, key: str | None) -> Remembered | None:
    """The remembered turn, or None (unknown: tainted) when there is none or the store fails."""
    if key is None:
        return None
    try:
        return await state.get(key)
    except Exception:
        log.exception("response state unreadable for %s: treated as unknown history", key)
        return None


def _relayed(status: int, data: Any, headers: dict[str, str]) -> Response:
    if isinstance(data, bytes):
        return Response(data, status_code=status, headers=headers)
    return JSONResponse(data, status_code=status, headers=headers)


def _reference(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(what the request continues, its state key): a previous response or a conversation."""
    previous = body.get("previous_response_id")
    if isinstance(previous, str) and previous:
        return previous, previous
    key = _conversation_key(body)
    return (key.removeprefix("conversation:"), key) if key else (None, None)


def _conversation_key(body: dict[str, Any]) -> str | None:
    conv = body.get("conversation")
    cid = conv.get("id") if isinstance(conv, dict) else conv
    return f"conversation:{cid}" if isinstance(cid, str) and cid else None


def _answer_withheld(body: dict[str, Any], remembered: Remembered | None) -> tuple[dict[str, Any], set[int]]:
    """The body with an output for each call the proxy withheld last turn (the client never saw them)."""
    if remembered is None or not remembered.withheld_calls:
        return body, set()
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    items = list(items) if isinstance(items, list) else []
    answered = {i.get("call_id") or i.get("id") for i in items if isinstance(i, dict)}
    missing = [c for c in remembered.withheld_calls if c not in answered]
    if not missing:
        return body, set()
    names = {call_id: name for call_id, name, _ in remembered.calls}
    custom = {t.get("name") for t in remembered.tools if isinstance(t, dict) and t.get("type") == "custom"}
    added = [_withheld_output(c, names.get(c, ""), custom) for c in missing]
    return body | {"input": added + items}, set(range(len(added)))


def _withheld_output(call_id: str, name: str, custom: set[Any]) -> dict[str, Any]:
    """The output item the provider expects for a call of this kind, saying it was not run."""
    if name == "shell":
        return {"type": "shell_call_output", "call_id": call_id, "output": [
            {"stdout": "", "stderr": WITHHELD_OUTPUT, "outcome": {"type": "exit", "exit_code": 1}}]}
    if name == "local_shell":
        return {"type": "local_shell_call_output", "id": call_id, "output": WITHHELD_OUTPUT}
    if name == "apply_patch":
        return {"type": "apply_patch_call_output", "call_id": call_id, "status": "failed", "output": WITHHELD_OUTPUT}
    kind = "custom_tool_call_output" if name in custom else "function_call_output"
    return {"type": kind, "call_id": call_id, "output": WITHHELD_OUTPUT}


def _approval_for_side_effects(conv: Conversation, policy: Policy) -> Conversation:
    """A remote MCP server the provider calls directly runs its tools out of the proxy's sight; when
    the policy gives it side effects (undeclared: it has them), every call must come back first as an
    `mcp_approval_request`, which the output stages judge like any call before the client can approve it."""
    tools, changed = [], False
    for tool in conv.tools:
        if (tool.raw.get("type") == "mcp" and tool.raw.get("require_approval") != "always"
                and policy.tool(tool.name).scope is Scope.SIDE_EFFECT):
            tool, changed = dataclasses.replace(tool, raw=tool.raw | {"require_approval": "always"}), True
        tools.append(tool)
    return conv.with_tools(tuple(tools)) if changed else conv


def _relabel(conv: Conversation, injected: set[int]) -> Conversation:
    """The proxy's own answers to withheld calls are its words, not retrieved content."""
    if not injected:
        return conv
    segments = [
        s.__class__(s.index, s.role, s.text, Trust.TRUSTED, Provenance("guardproxy"), s.location)
        if s.location is not None and s.location.path[:1] == ("input",) and s.location.path[1] in injected else s
        for s in conv.segments
    ]
    return conv.with_segments(segments)


async def _remembering(events: Any, keep: Any) -> AsyncIterator[Any]:
    """Pass the stream on; the final event's response is remembered before it leaves."""
    async for chunk in events:
        raw = chunk.encode() if isinstance(chunk, str) else chunk
        if any(end.encode() in raw for end in _ENDS):
            data = _event_data(raw)
            if data is not None and data.get("type") in _ENDS and isinstance(data.get("response"), dict):
                await keep(data["response"])
        yield chunk


def _event_data(raw: bytes) -> dict[str, Any] | None:
    lines = [line[5:].strip() for line in raw.decode(errors="replace").splitlines() if line.startswith("data:")]
    try:
        data = json.loads("\n".join(lines))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def _judge_retrieved(
    request: Request, data: dict[str, Any], remembered: Remembered | None, rid: str, policy: Policy,
    client: ClientPolicy, attributes: dict[str, Any],
) -> tuple[dict[str, Any], Exchange]:
    """Run the output guards over a response the proxy did not produce in this exchange."""
    relay: ChatRelay = request.app.state.relay
    tools = tuple(ToolSpec(name=adapter.tool_name(t), raw=dict(t)) for t in (remembered.tools if remembered else ()))
    base = Conversation(api=adapter.API, vendor=adapter.VENDOR, model=str(data.get("model") or ""), stream=False,
                        segments=(), tools=tools, raw={})
    conv = with_history(base, remembered, rid)
    exchange = Exchange(request_id=request.state.request_id, conversation=conv, client=client.name, policy=policy,
                        client_policy=client, received_conversation=conv,
                        timings=Timings(received=time.perf_counter()), attributes=attributes)
    request.state.exchange = exchange
    exchange.output = parse_output(data)
    for observer in relay.observers:
        begin = getattr(observer, "begin", None)
        if begin is not None:
            begin(exchange)
    verdict = await relay.pipeline.run(exchange, Phase.OUTPUT)
    for observer in relay.observers:
        try:
            await observer(exchange)
        except GuardProxyError:
            raise
        except Exception:  # an observer's failure must not break the answer
            log.exception("observer failed for %s", exchange.request_id)
    if verdict.kind is VerdictKind.BLOCK:
        raise blocked_error(verdict, exchange)
    if verdict.kind is VerdictKind.TRANSFORM and exchange.output is not None:
        data = render_output(data, exchange.output)
    return data, exchange


def synthesized_events(response: dict[str, Any]) -> list[ServerSentEvent]:
    """A judged response as the event stream that would have produced it (resume of a stream)."""
    codec = ResponsesCodec()
    pending = response | {"status": "in_progress", "output": [], "usage": None}
    events = [codec.synthetic("response.created", {"response": pending}),
              codec.synthetic("response.in_progress", {"response": pending})]
    for item in response.get("output") or []:
        if isinstance(item, dict):
            events.extend(codec.whole_item(item))
    status = response.get("status")
    end = "response.completed" if status == "completed" else f"response.{status}"
    events.append(codec.synthetic(end, {"response": response}))
    return events
