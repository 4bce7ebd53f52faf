"""Spans and metrics of MCP exchanges, after the OpenTelemetry MCP semantic conventions.

One SERVER span per client request, named `{mcp.method.name} {target}` (target: the tool or
prompt name), with `mcp.method.name`, `jsonrpc.request.id`, `mcp.session.id` (a hash, never the
id itself: it is a bearer capability), `mcp.protocol.version` when known, `network.transport`,
and for `tools/call` `gen_ai.operation.name=execute_tool` and `gen_ai.tool.name`. Metrics:
`mcp.server.operation.duration` (seconds) and guardproxy's own counts of calls, refusals,
withheld tools and pin changes.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from proxy import __version__
from proxy.mcp.jsonrpc import McpError, Request
from proxy.telemetry import Telemetry

if TYPE_CHECKING:
    from proxy.mcp.judge import Context
    from proxy.mcp.sessions import Session

SCOPE = "guardproxy.mcp"


class McpTelemetry:
    def __init__(self, telemetry: Telemetry) -> None:
        self.tracer = telemetry.tracer
        meter = (telemetry.meter_provider or NoOpMeterProvider()).get_meter(SCOPE, __version__)
        self.duration = meter.create_histogram("mcp.server.operation.duration", unit="s",
                                               description="MCP request duration as seen by the gateway")
        self.calls = meter.create_counter("guardproxy.mcp.requests", unit="{request}",
                                          description="MCP requests judged, by method and outcome")
        self.withheld = meter.create_counter("guardproxy.mcp.tools.withheld", unit="{tool}",
                                             description="Tools withheld from tools/list (scope aside)")
        self.pin_changes = meter.create_counter("guardproxy.mcp.pin.changes", unit="{change}",
                                                description="Tool definitions that changed after pinning")

    def operation(self, message: Request, server: str, session: Session) -> Operation:
        return Operation(self, message, server, session)

    def refused(self, code: int) -> None:
        self.calls.add(1, {"mcp.method.name": "?", "guardproxy.outcome": "refused", "error.type": str(code)})

    def judged(self, ctx: Context) -> None:
        if ctx.withheld_tools:
            self.withheld.add(len(ctx.withheld_tools), {"mcp.server": ctx.server})
        for change in ctx.pin_changes:
            self.pin_changes.add(1, {"mcp.server": ctx.server, "guardproxy.pin.sight": change.split(":")[-1]})


class Operation:
    def __init__(self, telemetry: McpTelemetry, message: Request, server: str, session: Session) -> None:
        self.t = telemetry
        self.start = time.perf_counter()
        self.method = message.method
        params = message.params or {}
        target = params.get("name") if message.method in ("tools/call", "prompts/get") else None
        self.attributes: dict[str, Any] = {
            "mcp.method.name": message.method,
            "jsonrpc.request.id": str(message.id),
            "network.transport": "tcp",
            "network.protocol.name": "http",
            "server.address": server,
        }
        if not session.key.startswith("key:"):
            self.attributes["mcp.session.id"] = hashlib.sha256(session.key.encode()).hexdigest()[:16]
        if message.method == "tools/call" and isinstance(target, str):
            self.attributes |= {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": target}
        if message.method == "prompts/get" and isinstance(target, str):
            self.attributes["gen_ai.prompt.name"] = target
        if message.method == "resources/read" and isinstance(params.get("uri"), str):
            self.attributes["mcp.resource.uri"] = params["uri"]
        name = f"{message.method} {target}" if isinstance(target, str) else message.method
        self.span = (telemetry.tracer.start_span(name, kind=SpanKind.SERVER, attributes=self.attributes)
                     if telemetry.tracer is not None else None)
        self.error: str | None = None
        self.ended = False

    def refused(self, exc: McpError) -> None:
        self.error = str(exc.code)
        if self.span is not None:
            self.span.set_attribute("error.type", self.error)
            self.span.set_attribute("rpc.response.status_code", str(exc.code))
            self.span.set_status(Status(StatusCode.ERROR, exc.message))
        if exc.code in (-32010, -32011):
            self.end(None)

    def end(self, ctx: Context | None) -> None:
        if self.ended:
            return
        self.ended = True
        outcome = "refused" if self.error else "ok"
        labels = {"mcp.method.name": self.method, "guardproxy.outcome": outcome}
        if self.error:
            labels["error.type"] = self.error
        self.t.calls.add(1, labels)
        self.t.duration.record(time.perf_counter() - self.start, {k: v for k, v in labels.items()
                                                                  if k != "guardproxy.outcome"})
        if self.span is not None:
            if ctx is not None:
                findings = sorted({f.rule_id for e in ctx.exchanges for f in e.findings})
                if findings:
                    self.span.set_attribute("guardproxy.findings", findings)
                if ctx.withheld_tools:
                    self.span.set_attribute("guardproxy.mcp.tools_withheld", list(ctx.withheld_tools))
            self.span.end()
