"""The FastAPI app: routes, start-up and shutdown, and the one error handler.

`create_app(settings)` wires the pieces (upstream client, guard pipeline, relay); the routes only
translate between HTTP and those pieces. Every registered wire API (`proxy.providers.APIS`) gets
its route; every response, errors included, carries `x-guardproxy-request-id`, and every error
leaves in the wire shape of the API that owns its route (`WireAPI.error_body`).
"""

from __future__ import annotations

import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy import __version__, responses_routes
from proxy.admission import Admission
from proxy.body import read_json
from proxy.errors import GuardProxyError, InvalidRequest, NotFound
from proxy.evidence.recorder import evidence_recorder
from proxy.evidence.redact import BundleRedactor
from proxy.guards.base import ChangeAnnouncer, ExchangeObserver, Guard, Lifecycle, Readiness
from proxy.guards.registry import build_pipeline
from proxy.model import Exchange, Timings
from proxy.pii.analyzer import shared_analyzer
from proxy.pipeline import Pipeline
from proxy.policy.approval_api import add_approval_route
from proxy.policy.auth import api_key_from
from proxy.policy.spec import hash_key
from proxy.policy.store import PolicyStore
from proxy.providers import APIS, api_for_route
from proxy.providers.base import WireAPI
from proxy.providers.labels import enforce
from proxy.relay import ChatRelay, Observer
from proxy.settings import Settings
from proxy.streaming.session import StreamLimits
from proxy.telemetry import Telemetry, TelemetryMiddleware
from proxy.upstream import Upstream, forwarded_headers, relay_headers

if TYPE_CHECKING:
    from proxy.mcp.gateway import McpGateway

log = logging.getLogger("guardproxy.app")
REQUEST_ID_HEADER = "x-guardproxy-request-id"


class RequestIdMiddleware:
    """Pure ASGI (no per-request task overhead): mints the id and stamps it on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(12)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == header[0] for name, _ in headers):
                    headers.append(header)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


Handler = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """Pure ASGI, innermost of our middlewares: a POST to a chat route goes straight to its handler.

    FastAPI's router, exception and exit-stack layers and its per-route request handling cost about
    a tenth of the proxy's own CPU per request, for routes that take a bare Request and need none of
    it. What those layers did is done here the same way: the route is put in the scope (telemetry
    reads its path), and a GuardProxyError becomes the error response the app's handler would send.
    Any other exception goes on up to the app's last-resort handler, as before. Everything else
    (other methods, other paths) goes through FastAPI unchanged.
    """

    def __init__(self, app: ASGIApp, routes: dict[str, tuple[BaseRoute, Handler]]) -> None:
        self.app = app
        self.routes = routes  # path -> (route, handler); filled when the routes are added

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if direct is None:
            await self.app(scope, receive, send)
            return
        route, handler = direct
        scope["route"] = route
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except GuardProxyError as exc:
            response = _error_response(request, exc)
        await response(scope, receive, send)


def freeze_long_lived() -> None:
    """Start-up objects (rules, models, PII engines, clients) live for the process: frozen, the
    cyclic GC no longer re-scans them on the request path. Unfrozen, each full collection walked
    them all (about 40 ms each, some 30 us a request on the overhead benchmark)."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings,
    *,
    extra_guards: dict[str, Guard] | None = None,
    observers: Sequence[Observer] = (),
    telemetry: Telemetry | None = None,
) -> FastAPI:
    # Tests inject in-memory exporters; opt-in span content is redacted like evidence.
    telemetry = telemetry or Telemetry.from_env(redaction=lambda: _content_redactor(settings))
    pipeline = build_pipeline(settings, extra_guards)
    if telemetry.tracer is not None:  # per-stage spans exist only when tracing is on
        pipeline.stage_hook = telemetry.stage
    # One limiter per distinct upstream: a slow Anthropic upstream must not queue OpenAI traffic.
    admissions = {
        base: Admission(settings.admission, default_concurrency=settings.upstream_max_connections,
                        upstream=urlsplit(base).hostname or "", observer=telemetry)
        for base in dict.fromkeys([settings.upstream_url, settings.anthropic_upstream_url or settings.upstream_url])
    }
    for admission in admissions.values():
        telemetry.watch(admission)
    guards = [stage.guard for stage in pipeline.stages]
    for guard in guards:
        if isinstance(guard, ChangeAnnouncer):
            guard.subscribe(telemetry.rules_changed)  # "did the detector itself change?"
    # Guards that learn from finished exchanges (e.g. quarantine counters) watch them too.
    observers = [*observers, *(g.observe for g in guards if isinstance(g, ExchangeObserver))]
    policies = PolicyStore(settings.policy_path)
    recorder = evidence_recorder(settings, pipeline)  # None when evidence is off
    if recorder is not None:
        observers = [*observers, recorder]
    mcp = _mcp_gateway(settings, pipeline, policies, observers, telemetry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstream = Upstream(settings)
        app.state.upstream = upstream
        app.state.relay = ChatRelay(
            pipeline, upstream, observers, telemetry=telemetry, admissions=admissions,
            stream_limits=StreamLimits(settings.stream.holdback_chars, settings.stream.max_hold_chars),
        )
        await policies.start()
        if recorder is not None:
            await recorder.start()
        for guard in guards:
            if isinstance(guard, Lifecycle):
                await guard.start()
        freeze_long_lived()
        if recorder is not None and recorder.warming is not None:
            # The evidence PII engine is built in the background (readiness does not wait for it):
            # Presidio and the phone metadata are ~100,000 objects, frozen too once they exist.
            recorder.warming.add_done_callback(lambda _: freeze_long_lived())
        log.info("guardproxy %s forwarding to %s; stages: %s",
                 __version__, settings.upstream_url, ", ".join(pipeline.names()))
        try:
            yield
        finally:
            for guard in guards:
                if isinstance(guard, Lifecycle):
                    await guard.close()
            await policies.close()
            if recorder is not None:
                await recorder.close()  # drains queued bundles before the process goes
            await upstream.aclose()
            if mcp is not None:
                await mcp.aclose()
            telemetry.shutdown()  # flushes exporters

    # FastAPI's own OpenTelemetry hooks stay off: guardproxy makes its SERVER span and HTTP metrics
    # itself (proxy/telemetry/server.py), and asking whether FastAPI's are on costs every request.
    app = FastAPI(title="guardproxy", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json" if settings.openapi else None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.telemetry = telemetry
    app.state.evidence = recorder
    _add_error_handlers(app)
    direct: dict[str, tuple[BaseRoute, Handler]] = {}
    _add_routes(app, settings, guards, policies, mcp, direct)
    add_approval_route(app, guards, policies)
    if mcp is not None:
        app.state.mcp = mcp
        app.mount("/mcp", mcp.app)  # /mcp/{server}: the MCP gateway (proxy/mcp/)
    app.add_middleware(DirectRoutes, routes=direct)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)  # outermost: sees it all
    return app


def _mcp_gateway(settings: Settings, pipeline: Pipeline, policies: PolicyStore, observers: Sequence[Observer],
                 telemetry: Telemetry) -> McpGateway | None:
    """The MCP gateway when servers are declared (imported only then: the MCP SDK is large)."""
    if not settings.mcp_servers:
        return None
    from proxy.mcp.gateway import McpGateway

    return McpGateway(settings, pipeline, policies, observers, telemetry)


def _content_redactor(settings: Settings) -> Callable[[str], str]:
    """Span content (opt-in) gets the evidence redaction: credentials always, PII when on."""
    ev = settings.evidence
    analyzer = shared_analyzer(tuple(ev.pii_entities), ev.pii_threshold) if ev.redact_pii else None
    return BundleRedactor(analyzer).text


def _add_routes(
    app: FastAPI, settings: Settings, guards: list[Guard], policies: PolicyStore, mcp: McpGateway | None = None,
    direct: dict[str, tuple[BaseRoute, Handler]] | None = None,
) -> None:
    def route(api: WireAPI) -> Handler:
        async def handler(request: Request) -> Response:
            return await relay_chat(request, api)
        return handler

    # The Responses API mounts its own routes: its POST restores and keeps the response state.
    responses_routes.add_routes(app, settings, policies)
    if direct is not None:  # POST /v1/responses takes a bare Request too: served past FastAPI's layers
        created = next(r for r in app.routes if getattr(r, "path", None) == "/v1/responses")
        direct["/v1/responses"] = (created, getattr(created, "endpoint"))  # noqa: B009 - BaseRoute has no endpoint
    mounted = {getattr(r, "path", None) for r in app.routes}
    for api in APIS.values():
        if api.route not in mounted:
            handler = route(api)
            app.add_api_route(api.route, handler, methods=["POST"], name=api.name)
            if direct is not None:  # the chat routes: served by DirectRoutes, past FastAPI's layers
                direct[api.route] = (app.routes[-1], handler)

    async def relay_chat(request: Request, provider: WireAPI) -> Response:
        received = time.perf_counter()
        raw, body = await read_json(
            request, max_bytes=settings.max_body_bytes, timeout_s=settings.timeouts.client_body_s
        )
        policy = policies.current
        api_key = api_key_from(request.headers)
        client_policy = policy.authenticate(api_key)
        conversation = provider.parse(body)
        enforce(conversation, settings.unknown_shapes)  # the closed contract: read it or refuse it
        if mcp is not None:  # tool results the MCP gateway served carry their real source
            conversation = mcp.label(conversation)
        if settings.allowed_models and conversation.model not in settings.allowed_models:
            raise NotFound(f"model {conversation.model!r} is not served through this proxy",
                           code="model_not_found", param="model")
        exchange = Exchange(
            request_id=request.state.request_id,
            conversation=conversation,
            client=client_policy.name,
            policy=policy,
            client_policy=client_policy,
            received_conversation=conversation,
            timings=Timings(received=received),
            attributes={"client_key_id": hash_key(api_key)[:16]} if api_key else {},
        )
        request.state.exchange = exchange  # timing headers and the SERVER span read it
        relay: ChatRelay = request.app.state.relay
        return await relay.handle(exchange, forwarded_headers(request.headers.items()), raw, provider)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        # Answered with the proxy's own upstream key: only for callers the policy knows.
        policies.current.authenticate(api_key_from(request.headers))
        upstream: Upstream = request.app.state.upstream
        response = await upstream.send("GET", "/models", headers=upstream.headers(request.headers, has_body=False))
        try:
            data = await response.aread()
        finally:
            await response.aclose()
        return Response(data, status_code=response.status_code, headers=relay_headers(response.headers))

    @app.get("/v1/models/{model_id}")
    async def model(request: Request, model_id: str) -> Response:
        policies.current.authenticate(api_key_from(request.headers))
        return await _forwarded(request, "GET", f"/models/{model_id}", APIS["openai.chat"])

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> Response:
        # Counting reads nothing into a model: authenticated and forwarded, not guarded.
        policies.current.authenticate(api_key_from(request.headers))
        raw, _ = await read_json(request, max_bytes=settings.max_body_bytes,
                                 timeout_s=settings.timeouts.client_body_s)
        return await _forwarded(request, "POST", "/messages/count_tokens", APIS["anthropic.messages"], raw)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        # Client names, tool names and rule ids: for key holders (the probes below stay open).
        policies.current.authenticate(api_key_from(request.headers))
        body, content_type = request.app.state.telemetry.render_metrics()
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        upstream: Upstream = request.app.state.upstream
        checks: dict[str, dict[str, Any]] = {}
        ok, detail = await upstream.probe()
        checks["upstream"] = {"ok": ok, "detail": detail}
        for guard in guards:
            if isinstance(guard, Readiness):
                g_ok, g_detail = guard.ready()
                checks[guard.name] = {"ok": g_ok, "detail": g_detail}
        if request.app.state.evidence is not None:
            e_ok, e_detail = request.app.state.evidence.ready()  # queue, written, overflow counts
            checks["evidence"] = {"ok": e_ok, "detail": e_detail}
        ready = all(c["ok"] for c in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


async def _forwarded(request: Request, method: str, path: str, api: WireAPI, body: bytes | None = None) -> Response:
    upstream: Upstream = request.app.state.upstream
    headers = upstream.headers(request.headers, has_body=body is not None, auth=api.upstream_auth)
    response = await upstream.send(method, path, content=body, headers=headers, vendor=api.vendor)
    try:
        data = await response.aread()
    finally:
        await response.aclose()
    return Response(data, status_code=response.status_code, headers=relay_headers(response.headers))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GuardProxyError)
    async def on_guardproxy_error(request: Request, exc: GuardProxyError) -> JSONResponse:
        return _error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            route = f"{request.method} {request.url.path}"
            error: GuardProxyError = NotFound(f"guardproxy does not serve {route}: unsupported endpoint",
                                              code="unsupported_endpoint")
        else:
            error = InvalidRequest(str(exc.detail), status_code=exc.status_code, code="http_error")
        return _error_response(request, error)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error_response(request, GuardProxyError("internal error in guardproxy"))


def _error_response(request: Request, exc: GuardProxyError) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    headers = dict(exc.headers)
    if request_id:
        # Set here too: a 500 leaves through Starlette's outermost layer, past our middleware.
        headers[REQUEST_ID_HEADER] = request_id
    # One error tree, one wire shape per API: Anthropic SDKs parse only Anthropic's.
    body = api_for_route(request.url.path).error_body(exc, request_id)
    return JSONResponse(body, status_code=exc.status_code, headers=headers)
