"""The MCP routes: `/mcp/{name}` over Streamable HTTP (POST, the GET SSE channel, DELETE).

A thin relay around the Judge: authenticate the guardproxy key, validate the client's message,
judge it, forward it with the server's own credentials, then judge every message of the answer
(a JSON body or an SSE stream, event ids and `retry` kept so `Last-Event-ID` resumption works
end to end) before it reaches the client. Every refusal is a JSON-RPC error; transport faults of
the tool server are too, and never take the proxy down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from proxy.errors import ConfigError, GuardProxyError
from proxy.mcp import access
from proxy.mcp.config import McpServer
from proxy.mcp.inspect import Inspector
from proxy.mcp.jsonrpc import (
    POLICY_DENIED,
    McpError,
    Pending,
    check_version,
    dumps,
    error_body,
    params_of,
    parse_body,
    parse_message,
)
from proxy.mcp.jsonrpc import (
    Request as RpcRequest,
)
from proxy.mcp.jsonrpc import (
    Response as RpcResponse,
)
from proxy.mcp.judge import Context, Judge
from proxy.mcp.ledger import Ledger, label
from proxy.mcp.pins import PinStore, open_store
from proxy.mcp.sessions import Session, SessionTable
from proxy.mcp.telemetry import McpTelemetry
from proxy.mcp.upstream import McpUpstream, forward_headers
from proxy.model import Conversation, Exchange
from proxy.pipeline import Pipeline
from proxy.policy.auth import api_key_from
from proxy.policy.spec import ClientPolicy, Policy, hash_key
from proxy.policy.store import PolicyStore
from proxy.settings import Settings
from proxy.telemetry import Telemetry

log = logging.getLogger("guardproxy.mcp")
Observer = Callable[[Exchange], Awaitable[None]]
UNAUTHORIZED = -32014
SESSION_HEADER = "mcp-session-id"
SERVER_TEXT_METHODS = frozenset({"sampling/createMessage", "elicitation/create"})


class McpGateway:
    def __init__(self, settings: Settings, pipeline: Pipeline, policies: PolicyStore,
                 observers: Sequence[Observer] = (), telemetry: Telemetry | None = None,
                 pin_store: PinStore | None = None) -> None:
        names = [s.name for s in settings.mcp_servers]
        if len(names) != len(set(names)):
            raise ConfigError(f"mcp_servers: duplicate server names in {names}")
        self.settings = settings.mcp
        self.client_body_s = settings.timeouts.client_body_s
        self.servers = {s.name: s for s in settings.mcp_servers}
        self.policies = policies
        self.observers = list(observers)
        self.telemetry = McpTelemetry(telemetry or Telemetry.disabled())
        self.pins = pin_store or open_store(settings)
        self.ledger = Ledger(self.settings.ledger_size)
        self.sessions = SessionTable(self.settings.max_sessions)
        self.judge = Judge(Inspector(pipeline), self.pins, self.ledger)
        self._upstreams: dict[str, McpUpstream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.transport: httpx.AsyncBaseTransport | None = None  # tests inject faults here
        self.app = Starlette(routes=[Route("/{name}", self.endpoint, methods=["GET", "POST", "DELETE"])])

    def label(self, conv: Conversation) -> Conversation:
        return label(conv, self.ledger)

    def upstream(self, server: McpServer) -> McpUpstream:
        up = self._upstreams.get(server.name)
        if up is None:
            up = self._upstreams[server.name] = McpUpstream(server, self.settings, self.transport)
        return up

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        for up in self._upstreams.values():
            await up.aclose()
        close = getattr(self.pins, "close", None)
        if close is not None:
            await close()

    # --- the route ---------------------------------------------------------------------------------
    async def endpoint(self, request: Request) -> Response:
        request_id = getattr(request.state, "request_id", None) or "req_" + secrets.token_hex(12)
        try:
            server, policy, client, key_id = self._admit(request)
            session = self._session(request, server.name, key_id)
            if request.method == "POST":
                return await self._post(request, request_id, server, policy, client, key_id, session)
            if request.method == "GET":
                return await self._get(request, request_id, server, policy, client, key_id, session)
            return await self._delete(request, server, session)
        except McpError as exc:
            self.telemetry.refused(exc.code)
            return JSONResponse(exc.body(), status_code=exc.status)

    def _admit(self, request: Request) -> tuple[McpServer, Policy, ClientPolicy, str]:
        name = request.path_params["name"]
        policy = self.policies.current
        try:
            api_key = api_key_from(request.headers)
            client = policy.authenticate(api_key)
        except GuardProxyError as exc:
            raise McpError(UNAUTHORIZED, exc.message, status=exc.status_code) from None
        server = self.servers.get(name)
        if server is None:
            known = ", ".join(sorted(self.servers)) or "none configured"
            raise McpError(POLICY_DENIED, f"no MCP server named {name!r} (servers: {known})", status=404)
        if not access.server_allowed(client, name):
            raise McpError(POLICY_DENIED, f"MCP server {name!r} is not allowed by "
                           f"{access.policy_name(policy, client)}", status=403)
        key_id = hash_key(api_key)[:16] if api_key else f"client:{client.name}"
        return server, policy, client, key_id

    def _session(self, request: Request, server: str, key_id: str) -> Session:
        sid = request.headers.get(SESSION_HEADER)
        if not sid:
            return self.sessions.open(f"key:{key_id}:{server}", key_id, server)
        session = self.sessions.get(sid)
        if session is None:
            return self.sessions.open(sid, key_id, server, state_lost=True)
        if session.owner != key_id or session.server != server:
            # Another key's session: answered as the upstream answers an unknown one.
            raise McpError(POLICY_DENIED, "session not found", status=404)
        return session

    def _context(self, request_id: str, server: str, policy: Policy, client: ClientPolicy, key_id: str,
                 session: Session) -> Context:
        def new_exchange(conv: Conversation) -> Exchange:
            return Exchange(request_id=request_id, conversation=conv, client=client.name, policy=policy,
                            client_policy=client, received_conversation=conv,
                            attributes={"client_key_id": key_id, "mcp_server": server})
        return Context(server, request_id, policy, client, session, new_exchange)

    async def _post(self, request: Request, request_id: str, server: McpServer, policy: Policy,
                    client: ClientPolicy, key_id: str, session: Session) -> Response:
        raw = await self._body(request)
        message = parse_body(raw)
        check_version(request.headers.get("mcp-protocol-version"), message)
        ctx = self._context(request_id, server.name, policy, client, key_id, session)
        ctx.message = message.model_dump(mode="json", by_alias=True, exclude_none=True)
        pending: Pending | None = None
        if isinstance(message, RpcRequest):
            span = self.telemetry.operation(message, server.name, session)
            try:
                pending = await self.judge.request(ctx, message, params_of(message))
            except McpError as exc:
                span.refused(exc)
                await self._record_refusal(ctx, message, exc)
                return JSONResponse(exc.body(), status_code=exc.status)
            session.expect(message.id, pending)
        else:
            span = None
        upstream = self.upstream(server)
        try:
            response = await upstream.open("POST", forward_headers(request.headers, server), raw)
        except McpError as exc:
            exc.id = message.id if isinstance(message, RpcRequest) else None
            if span:
                span.refused(exc)
            return JSONResponse(exc.body(), status_code=exc.status)
        headers = _relayed_headers(response)
        new_sid = response.headers.get(SESSION_HEADER)
        if new_sid and new_sid != request.headers.get(SESSION_HEADER):
            ctx.session = self.sessions.adopt(session, new_sid)
        ctype = response.headers.get("content-type", "")
        if response.status_code == 200 and ctype.startswith("text/event-stream"):
            ids = [message.id] if isinstance(message, RpcRequest) else []
            return StreamingResponse(self._relay_events(upstream, response, ctx, ids, span),
                                     headers=headers, media_type="text/event-stream")
        try:
            body = await upstream.read(response)
        except McpError as exc:
            exc.id = message.id if isinstance(message, RpcRequest) else None
            if span:
                span.refused(exc)
            return JSONResponse(exc.body(), status_code=exc.status)
        if response.status_code == 200 and body.strip():
            # Every answer is judged: one that is not JSON-RPC over JSON never reaches the client.
            try:
                if not ctype.startswith("application/json"):
                    raise McpError(-32012, f"MCP server {server.name!r} answered with content type "
                                   f"{ctype.split(';')[0] or 'none'!r}", status=502)
                body = dumps(await self._judged(ctx, body))
            except McpError as exc:
                exc.id = message.id if isinstance(message, RpcRequest) else None
                body, ctype = dumps(exc.body()), "application/json"
        await self._finish(ctx, span)
        return Response(body, status_code=response.status_code, headers=headers,
                        media_type=ctype.split(";")[0] or None)

    async def _get(self, request: Request, request_id: str, server: McpServer, policy: Policy,
                   client: ClientPolicy, key_id: str, session: Session) -> Response:
        upstream = self.upstream(server)
        response = await upstream.open("GET", forward_headers(request.headers, server))
        ctype = response.headers.get("content-type", "")
        if response.status_code == 200 and ctype.startswith("text/event-stream"):
            ctx = self._context(request_id, server.name, policy, client, key_id, session)
            return StreamingResponse(self._relay_events(upstream, response, ctx, [], None),
                                     headers=_relayed_headers(response), media_type="text/event-stream")
        body = await upstream.read(response)
        return Response(body, status_code=response.status_code, headers=_relayed_headers(response))

    async def _delete(self, request: Request, server: McpServer, session: Session) -> Response:
        upstream = self.upstream(server)
        response = await upstream.open("DELETE", forward_headers(request.headers, server))
        body = await upstream.read(response)
        if response.status_code < 300:
            self.sessions.drop(session.key)
        return Response(body, status_code=response.status_code, headers=_relayed_headers(response))

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_message_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise McpError(-32600, f"message of {declared} bytes exceeds the limit of {limit} bytes", status=413)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.client_body_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise McpError(-32600, f"message exceeds the limit of {limit} bytes", status=413)
                    chunks.append(chunk)
        except TimeoutError:
            raise McpError(-32600, "message body not received in time", status=408) from None
        except ClientDisconnect:
            raise McpError(-32600, "client disconnected while sending the message") from None
        return b"".join(chunks)

    async def _judged(self, ctx: Context, data: bytes | str) -> dict[str, Any]:
        """One message from the tool server, judged; garbage raises McpError."""
        try:
            value = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise McpError(-32012, f"MCP server {ctx.server!r} sent a message that is not JSON", status=502) from None
        if not isinstance(value, dict):
            raise McpError(-32012, f"MCP server {ctx.server!r} sent a JSON-RPC batch or a non-object", status=502)
        try:
            message = parse_message(value)
        except McpError:
            raise McpError(-32012, f"MCP server {ctx.server!r} sent an invalid JSON-RPC message", status=502) from None
        if isinstance(message, RpcResponse):
            # An answer to a request this mirror never saw (state lost) is judged by its shape.
            pending = ctx.session.answered(message.id) or _by_shape(message.result)
            _check_initialized(pending, message)
            return {**value, "result": await self.judge.answer(ctx, pending, message.result, message.id)}
        if isinstance(message, RpcRequest) and message.method in SERVER_TEXT_METHODS:
            return {**value, "params": await self.judge.server_request(ctx, message.method, message.params or {})}
        return value

    async def _relay_events(self, upstream: McpUpstream, response: httpx.Response, ctx: Context,
                            ids: list[Any], span: Any) -> AsyncIterator[bytes]:
        try:
            async for event in upstream.events(response):
                data = event.data
                if data:
                    try:
                        judged = await self._judged(ctx, data)
                        data = dumps(judged).decode()
                        if judged.get("id") in ids and ("result" in judged or "error" in judged):
                            await self._finish(ctx, span)  # evidence is durable before the answer leaves
                    except McpError as exc:
                        yield _event(None, "message", dumps(error_body(ids[0] if ids else None, exc.code,
                                                                       exc.message)).decode(), None)
                        return
                yield _event(event.id or None, event.event, data, event.retry)
        except McpError as exc:
            if span:
                span.refused(exc)
            for id in ids:
                yield _event(None, "message", dumps(error_body(id, exc.code, exc.message)).decode(), None)
        finally:
            await self._finish(ctx, span)

    async def _record_refusal(self, ctx: Context, message: RpcRequest, exc: McpError) -> None:
        from proxy.mcp.inspect import conversation
        from proxy.model import Action, Decision

        exchange = ctx.new_exchange(conversation(ctx.server, [], {"request": ctx.message}))
        exchange.decisions.append(Decision(stage="mcp", action=Action.BLOCK, reasons=(exc.message,)))
        ctx.exchanges.append(exchange)
        await self._finish(ctx, None)

    async def _finish(self, ctx: Context, span: Any) -> None:
        self.telemetry.judged(ctx)
        if span is not None:
            span.end(ctx)
        for exchange in ctx.exchanges:
            # The bundle's `request.received` is this record: the message, the answer, the pins.
            exchange.conversation.raw["gateway"] = {
                "server": ctx.server, "pins": dict(ctx.pin_states), "withheld_tools": list(ctx.withheld_tools),
                "pin_changes": list(ctx.pin_changes), "not_inspected": exchange.attributes.get("mcp_not_inspected"),
            }
        exchanges, ctx.exchanges = list(ctx.exchanges), []
        if not exchanges:
            return
        # Observers (evidence, quarantine counters) run in their own task: a client that closes
        # its stream cancels the response, and must not cancel the record of what it received.
        task = asyncio.get_running_loop().create_task(self._observe(exchanges))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def _observe(self, exchanges: list[Exchange]) -> None:
        for exchange in exchanges:
            for observer in self.observers:
                try:
                    await observer(exchange)
                except Exception:
                    log.exception("observer failed on MCP exchange %s", exchange.request_id)


SHAPES = (("tools", "tools/list"), ("content", "tools/call"), ("structuredContent", "tools/call"),
          ("contents", "resources/read"), ("messages", "prompts/get"), ("resources", "resources/list"),
          ("resourceTemplates", "resources/templates/list"), ("prompts", "prompts/list"))


def _by_shape(result: dict[str, Any]) -> Pending:
    method = next((m for key, m in SHAPES if key in result), "unknown")
    return Pending(method, "unknown-request")


def _check_initialized(pending: Pending, message: RpcResponse) -> None:
    if pending.method == "initialize":
        from mcp_types.version import KNOWN_PROTOCOL_VERSIONS

        version = message.result.get("protocolVersion")
        if version not in KNOWN_PROTOCOL_VERSIONS:
            raise McpError(-32022, f"the MCP server negotiated protocol version {version!r}, which guardproxy "
                           f"does not speak; supported: {', '.join(KNOWN_PROTOCOL_VERSIONS)}", status=502)


def _event(id: str | None, event: str, data: str, retry: int | None) -> bytes:
    lines = []
    if event and event != "message":
        lines.append(f"event: {event}")
    elif event:
        lines.append("event: message")
    if id:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines += [f"data: {line}" for line in data.split("\n")] if data else ["data: "]
    return ("\n".join(lines) + "\n\n").encode()


def _relayed_headers(response: httpx.Response) -> dict[str, str]:
    keep = ("mcp-session-id", "mcp-protocol-version", "cache-control", "www-authenticate")
    return {k: v for k, v in response.headers.items() if k.lower() in keep}
