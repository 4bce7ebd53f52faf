"""MCP's entry in the wire-API registry (`proxy.providers.APIS["mcp"]`).

The gateway (proxy/mcp/gateway.py) serves `/mcp/{server}` itself; this entry answers the
registry's questions for what flows elsewhere: evidence renders an MCP exchange's record as is,
errors on `/mcp...` routes take JSON-RPC's shape, telemetry names the operation, and the phase
plan is the model APIs' turned around (a `tools/call` request is judged like a model's tool
call, OUTPUT; its result like retrieved content, INPUT). A chat-style POST to `/mcp` itself is
refused with a pointer to the per-server routes. Kept free of the MCP SDK, so the registry
imports cheaply.
"""

from __future__ import annotations

from typing import Any, NoReturn

from proxy.errors import GuardProxyError, InvalidRequest
from proxy.model import Conversation, Output, Phase
from proxy.providers.base import PhasePlan, RequestParams, StreamCodec, WireAPI

NAME = "mcp"
ROUTE = "/mcp"


def _parse(body: dict[str, Any]) -> NoReturn:
    raise InvalidRequest("MCP servers are served at /mcp/{server} (Streamable HTTP), not at /mcp",
                         code="mcp_route", param="path")


def _render(conv: Conversation) -> dict[str, Any]:
    return conv.raw  # the gateway's record of the message and its answer, as forwarded


def _no_output(response: dict[str, Any]) -> Output:
    raise InvalidRequest("MCP answers are judged by the gateway, not as model output", code="mcp_route")


def _no_render_output(response: dict[str, Any], output: Output) -> dict[str, Any]:
    raise InvalidRequest("MCP answers are judged by the gateway, not as model output", code="mcp_route")


def _no_codec() -> StreamCodec:
    raise InvalidRequest("MCP streams are relayed by the gateway", code="mcp_route")


def error_body(error: GuardProxyError, request_id: str | None) -> dict[str, Any]:
    """JSON-RPC's error shape; the guardproxy details ride in `data`."""
    data: dict[str, Any] = {"type": error.error_type, "code": error.code}
    if request_id:
        data["request_id"] = request_id
    return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": error.message, "data": data}}


MCP = WireAPI(
    name=NAME, vendor=NAME, route=ROUTE, upstream_path="",
    parse=_parse, render=_render, parse_output=_no_output, render_output=_no_render_output,
    stream_codec=_no_codec, error_body=error_body,
    request_params=lambda body: RequestParams(), message_count=lambda body: 1,
    stopped_reason="stop", operation="execute_tool",
    phases=PhasePlan(request=Phase.OUTPUT, response=Phase.INPUT),
)
