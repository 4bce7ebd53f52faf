"""The OpenAI Responses API: POST /v1/responses and the routes on a stored response.

Like OpenAI, the simulator keeps server-side state: each stored response remembers its whole context
(the previous response's context and output, then this request's input), so `previous_response_id`
continues a conversation the client no longer sends; `conversation` does the same through a named
conversation. `store: false` keeps nothing. `background: true` answers `queued` at once; the answer is
produced when the response is first retrieved, unless it is cancelled first. Streams are kept so
`GET /v1/responses/{id}?stream=true&starting_after=N` can resume one.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from proxy.simulator import faults, grammar, replies
from proxy.simulator import responses_shapes as shapes
from proxy.simulator.config import STATE_KEY
from proxy.simulator.openai_api import authorized, error_response, read_json

ID_PREFIX = "resp_"
MAX_STORED = 10_000  # oldest responses are forgotten first, as an expiring store would


@dataclass(slots=True)
class Stored:
    response: dict[str, Any]
    inputs: list[dict[str, Any]]  # this request's input items, with ids
    context: list[dict[str, Any]]  # everything the model read, without `instructions`
    events: list[dict[str, Any]]
    pending: bool = False  # a background response not produced yet

    def conversation(self) -> list[dict[str, Any]]:
        """What a follow-up turn continues from: the context, then this response's output."""
        output: list[dict[str, Any]] = self.response["output"]
        return self.context + output


@dataclass(slots=True)
class ResponseStore:
    responses: OrderedDict[str, Stored] = field(default_factory=OrderedDict)
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def put(self, stored: Stored) -> None:
        self.responses[stored.response["id"]] = stored
        self.responses.move_to_end(stored.response["id"])
        while len(self.responses) > MAX_STORED:
            self.responses.popitem(last=False)


STORE_KEY = web.AppKey("sim_responses", ResponseStore)


def add_routes(app: web.Application) -> None:
    app[STORE_KEY] = ResponseStore()
    app.router.add_post("/v1/responses", create)
    app.router.add_get("/v1/responses/{id}", retrieve)
    app.router.add_delete("/v1/responses/{id}", delete)
    app.router.add_post("/v1/responses/{id}/cancel", cancel)
    app.router.add_get("/v1/responses/{id}/input_items", list_input_items)


def check_request(body: Any) -> tuple[str, str | None] | None:
    """(message, param) when the body is not a Responses request the simulator can answer."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object.", None
    if not isinstance(body.get("model"), str):
        return "Missing required parameter: 'model'.", "model"
    raw = body.get("input")
    if raw is not None and not isinstance(raw, str | list):
        return "Invalid type for 'input': expected a string or an array of input items.", "input"
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict):
            return f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]"
        kind = item.get("type", "message")
        if kind not in shapes.INPUT_ITEM_TYPES:
            return f"Invalid value: '{kind}'. Supported values are input item types.", f"input[{i}].type"
    if body.get("previous_response_id") is not None and body.get("conversation") is not None:
        return "Mutually exclusive parameters: 'previous_response_id' and 'conversation'.", "conversation"
    return None


async def create(request: web.Request) -> web.StreamResponse:
    state, store = request.app[STATE_KEY], request.app[STORE_KEY]
    body = await read_json(request)
    config = state.record(body, {name.lower(): value for name, value in request.headers.items()})
    await faults.sleep_ms(config.ttft_ms)
    if not authorized(request.headers.get("Authorization"), config.require_key):
        return error_response(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    problem = check_request(body)
    if problem is not None:
        return error_response(400, problem[0], "invalid_request_error", None, problem[1])
    earlier, missing = _earlier_context(body, store)
    if missing is not None:
        return missing
    fault = state.take_fault()
    if fault is not None:
        broken = await faults.early_fault(request, fault, config, error_response)
        if broken is not None:
            return broken
    rid = replies.reply_id(body, ID_PREFIX)
    inputs = shapes.with_ids(shapes.input_items(body), rid)
    context = earlier + inputs
    transcript = shapes.read_transcript(body, context)
    reply = replies.build_reply(body, transcript, grammar.decide(transcript), prefix=ID_PREFIX)
    reasoning = body.get("reasoning")
    summary = isinstance(reasoning, dict) and reasoning.get("summary") not in (None, "none")
    response = shapes.response_object(body, reply, shapes.output_items(reply, shapes.tool_kinds(body), summary))
    events = shapes.stream_events(response, reply)
    background = body.get("background") is True
    if body.get("store", True) is not False:
        store.put(Stored(response, inputs, context, events, pending=background))
    conversation = shapes.conversation_ref(body.get("conversation"))
    if conversation is not None:
        store.conversations.setdefault(conversation["id"], []).extend(inputs + response["output"])
    if background:
        response = response | {"status": "queued", "output": [], "usage": None}
        if body.get("stream") is not True:
            return web.json_response(response)
    if body.get("stream") is True:
        return await faults.send_events(request, [shapes.sse_event(e) for e in events], config, fault)
    return await faults.send_body(request, json.dumps(response, ensure_ascii=False).encode(), config, fault)


def _earlier_context(body: dict[str, Any], store: ResponseStore) -> tuple[list[dict[str, Any]], web.Response | None]:
    previous = body.get("previous_response_id")
    if isinstance(previous, str):
        stored = store.responses.get(previous)
        if stored is None:
            message = f"Previous response with id '{previous}' not found."
            return [], error_response(400, message, "invalid_request_error", "previous_response_not_found",
                                      "previous_response_id")
        unanswered = _unanswered(stored.response["output"], shapes.input_items(body))
        if unanswered is not None:
            return [], error_response(400, unanswered, "invalid_request_error", None, "input")
        return stored.conversation(), None
    ref = shapes.conversation_ref(body.get("conversation"))
    if ref is not None:
        return list(store.conversations.get(ref["id"], [])), None
    return [], None


# A call the previous response made must be answered by an output item of its own kind, as the
# real API insists ("No tool output found for function call ...").
_ANSWERS = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output",
            "shell_call": "shell_call_output", "local_shell_call": "local_shell_call_output",
            "apply_patch_call": "apply_patch_call_output", "computer_call": "computer_call_output"}


def _unanswered(output: list[dict[str, Any]], inputs: list[dict[str, Any]]) -> str | None:
    answered = {(i.get("type"), i.get("call_id") or i.get("id")) for i in inputs if isinstance(i, dict)}
    for item in output:
        kind = item.get("type")
        if kind in _ANSWERS and (_ANSWERS[kind], item.get("call_id")) not in answered:
            return f"No tool output found for {kind.replace('_', ' ')} {item.get('call_id')}."
    return None


def _stored(request: web.Request) -> Stored | web.Response:
    state = request.app[STATE_KEY]
    config = state.config()
    if not authorized(request.headers.get("Authorization"), config.require_key):
        return error_response(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    rid = request.match_info["id"]
    stored = request.app[STORE_KEY].responses.get(rid)
    if stored is None:
        return error_response(404, f"Response with id '{rid}' not found.", "invalid_request_error", None)
    return stored


async def retrieve(request: web.Request) -> web.StreamResponse:
    stored = _stored(request)
    if isinstance(stored, web.Response):
        return stored
    stored.pending = False  # a background response is produced when it is first looked at
    if request.query.get("stream") == "true":
        after = request.query.get("starting_after", "-1")
        start = int(after) + 1 if after.lstrip("-").isdigit() else 0
        events = [shapes.sse_event(e) for e in stored.events[start:]]
        return await faults.send_events(request, events, request.app[STATE_KEY].config(), None)
    return web.json_response(stored.response)


async def delete(request: web.Request) -> web.Response:
    stored = _stored(request)
    if isinstance(stored, web.Response):
        return stored
    rid = stored.response["id"]
    del request.app[STORE_KEY].responses[rid]
    return web.json_response({"id": rid, "object": "response", "deleted": True})


async def cancel(request: web.Request) -> web.Response:
    stored = _stored(request)
    if isinstance(stored, web.Response):
        return stored
    if not stored.response.get("background"):
        return error_response(400, "Only responses created with background=true can be cancelled.",
                              "invalid_request_error", None)
    if stored.pending:
        stored.pending = False
        stored.response = stored.response | {"status": "cancelled", "output": [], "usage": None}
    return web.json_response(stored.response)


async def list_input_items(request: web.Request) -> web.Response:
    stored = _stored(request)
    if isinstance(stored, web.Response):
        return stored
    items = list(stored.inputs)
    if request.query.get("order", "desc") == "desc":
        items.reverse()
    after = request.query.get("after")
    if after is not None:
        ids = [i.get("id") for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    limit = request.query.get("limit", "20")
    count = max(1, min(100, int(limit))) if limit.isdigit() else 20
    page = items[:count]
    return web.json_response({
        "object": "list", "data": page, "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None, "has_more": len(items) > count,
    })
