"""An MCP result handed to the model in a chat request keeps its MCP provenance."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from mcp_support import KEYS, session

from proxy.simulator import start_in_thread

pytestmark = pytest.mark.asyncio


async def test_chat_tool_result_carries_the_mcp_source(start_gateway, tmp_path: Path) -> None:
    sim = start_in_thread()
    try:
        gw = start_gateway(upstream_url=sim.url, evidence_dir=tmp_path / "ev")
        async with session(gw) as mcp:
            result = await mcp.call_tool("read_file", {"path": "invoice.txt"})
        text = result.content[0].text
        client = openai.AsyncOpenAI(base_url=gw.url, api_key=KEYS["agent"], max_retries=0)
        await client.chat.completions.create(model="sim-1", messages=[
            {"role": "user", "content": "Summarise my invoice."},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": text + "\n"},
        ])
    finally:
        sim.stop()
    bundles = [json.loads(p.read_text()) for p in (tmp_path / "ev" / "bundles").rglob("*.json")]
    chat = next(b for b in bundles if b["provider"] == "openai")
    tool_segment = next(s for s in chat["segments"] if s["role"] == "tool")
    assert tool_segment["provenance"] == {"kind": "mcp", "source": "files/read_file", "tool_call_id": "c1"}
    finding = next(f for f in chat["findings"] if f["rule_id"] == "injection.override.ignore_previous")
    assert finding["provenance"]["source"] == "files/read_file"
