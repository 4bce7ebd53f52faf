"""JSON-RPC messages on the MCP wire: validated with the official SDK's types, errors built here.

Every message a client sends is checked against `mcp_types`' JSON-RPC envelope and, for the
methods the gateway judges, against the SDK's params models, so a malformed message gets a precise
JSON-RPC error instead of reaching a tool server. Protocol versions are the ones the installed
`mcp` SDK speaks (`mcp_types.version`); any other is refused with -32022 and the supported list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp_types import jsonrpc
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, KNOWN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from proxy.body import parse_json
from proxy.errors import GuardProxyError

Message = jsonrpc.JSONRPCMessage
Request = jsonrpc.JSONRPCRequest
Notification = jsonrpc.JSONRPCNotification
Response = jsonrpc.JSONRPCResponse
ErrorResponse = jsonrpc.JSONRPCError
RequestId = int | str

# guardproxy's own codes sit in the implementation-defined band (-32000..-32019).
POLICY_DENIED = -32010  # the key's policy does not allow this server, tool, resource or prompt
TOOL_WITHHELD = -32011  # the tool's definition is withheld (changed since pinned, or poisoned)
UPSTREAM_FAILED = -32012  # the tool server stalled, reset or answered garbage
RESULT_WITHHELD = -32013  # the result was withheld (quarantined source or blocking finding)

# params models for the methods the gateway judges (the SDK's own, so the checks match it)
PARAMS: dict[str, type[BaseModel]] = {
    "tools/call": types.CallToolRequestParams,
    "resources/read": types.ReadResourceRequestParams,
    "prompts/get": types.GetPromptRequestParams,
}


class McpError(Exception):
    """A refusal in JSON-RPC's shape, with the HTTP status it leaves with."""

    def __init__(self, code: int, message: str, *, status: int = 400, id: RequestId | None = None,
                 data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.id, self.data = code, message, status, id, data

    def body(self) -> dict[str, Any]:
        return error_body(self.id, self.code, self.message, self.data)


def error_body(id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": id, "error": error}


def parse_body(raw: bytes) -> Message:
    """One client message. Batches are refused: MCP removed them in 2025-06-18, and no SDK sends them."""
    try:
        value = parse_json(raw)
    except GuardProxyError as exc:
        raise McpError(jsonrpc.PARSE_ERROR, f"parse error: {exc.message}") from None
    if isinstance(value, list):
        raise McpError(jsonrpc.INVALID_REQUEST,
                       f"JSON-RPC batches are not accepted (got {len(value)} messages in one body); "
                       "send one message per POST (batching was removed from MCP in 2025-06-18)")
    return parse_message(value)


def parse_message(value: Any) -> Message:
    id = value.get("id") if isinstance(value, dict) and isinstance(value.get("id"), int | str) else None
    try:
        message: Message = jsonrpc.jsonrpc_message_adapter.validate_python(value, by_name=False)
    except ValidationError as exc:
        raise McpError(jsonrpc.INVALID_REQUEST, f"invalid JSON-RPC message: {_describe(exc)}", id=id) from None
    return message


def params_of(message: Request) -> BaseModel | None:
    """The SDK model of a judged method's params (None for methods passed as they are)."""
    model = PARAMS.get(message.method)
    if model is None:
        return None
    try:
        return model.model_validate(message.params or {}, by_name=False)
    except ValidationError as exc:
        raise McpError(jsonrpc.INVALID_PARAMS, f"invalid params for {message.method}: {_describe(exc)}",
                       id=message.id) from None


def check_version(header: str | None, message: Message) -> str | None:
    """The protocol version this message speaks, refused with -32022 when the SDK does not know it."""
    id = message.id if isinstance(message, Request) else None
    versions = [header] if header else []
    params: dict[str, Any] = (message.params or {}) if isinstance(message, Request | Notification) else {}
    meta: dict[str, Any] = params["_meta"] if isinstance(params.get("_meta"), dict) else {}
    if isinstance(meta.get(types.PROTOCOL_VERSION_META_KEY), str):
        versions.append(meta[types.PROTOCOL_VERSION_META_KEY])
    if isinstance(message, Request) and message.method == "initialize":
        offered = params.get("protocolVersion")
        if offered not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise unsupported(str(offered), list(HANDSHAKE_PROTOCOL_VERSIONS), id)
        versions.append(offered)
    for version in versions:
        if version not in KNOWN_PROTOCOL_VERSIONS:
            raise unsupported(version, list(KNOWN_PROTOCOL_VERSIONS), id)
    return versions[-1] if versions else None


def unsupported(requested: str, supported: list[str], id: RequestId | None) -> McpError:
    return McpError(
        jsonrpc.UNSUPPORTED_PROTOCOL_VERSION,
        f"MCP protocol version {requested!r} is not supported by guardproxy; supported: {', '.join(supported)}",
        id=id, data={"supported": supported, "requested": requested},
    )


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()[:3]
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors)


@dataclass(frozen=True, slots=True)
class Pending:
    """A client request the gateway forwarded and must judge the answer of."""

    method: str
    target: str | None = None  # tool or prompt name, resource URI
