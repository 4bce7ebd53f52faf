"""Bad input and faults: each a precise JSON-RPC or HTTP error, and the proxy stays healthy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from mcp_support import KEYS, ScriptedMcp, mcp_url

from proxy import serving

pytestmark = pytest.mark.asyncio
AUTH = {"authorization": f"Bearer {KEYS['agent']}", "accept": "application/json, text/event-stream",
        "content-type": "application/json"}
CALL = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "read_file", "arguments": {}}}


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedMcp]:
    yield ScriptedMcp()


@pytest.fixture(scope="module")
def faulty(start_gateway, scripted: ScriptedMcp) -> serving.ProxyHandle:
    return start_gateway(
        mcp_servers=[{"name": "files", "url": scripted.url, "headers": {"Authorization": "Bearer files-secret"}}],
        mcp={"read_timeout_s": 0.5, "max_message_bytes": 4096, "max_result_bytes": 100_000},
    )


async def _post(handle: serving.ProxyHandle, body: bytes | dict, *, headers: dict | None = None,
                server: str = "files") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(mcp_url(handle, server), content=content, headers=headers or AUTH)


async def _healthy(handle: serving.ProxyHandle) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(handle.url.removesuffix("/v1") + "/healthz")).json()["status"] == "ok"


@pytest.mark.parametrize(("body", "status", "code", "words"), [
    (b"{not json", 400, -32700, "parse error: request body is not valid JSON"),
    (b"", 400, -32700, "request body is empty"),
    (b'{"jsonrpc": "1.0", "id": 1, "method": "tools/list"}', 400, -32600, "invalid JSON-RPC message"),
    (json.dumps([CALL] * 20).encode(), 400, -32600, "batches are not accepted (got 20 messages"),
    (json.dumps({**CALL, "params": {"arguments": {}}}).encode(), 400, -32602, "invalid params for tools/call: name"),
    (json.dumps({**CALL, "params": {"name": "x" * 5000}}).encode(), 413, -32600, "exceeds the limit of 4096 bytes"),
])
async def test_bad_client_messages(faulty, scripted, body, status, code, words) -> None:
    before = len(scripted.requests)
    r = await _post(faulty, body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert len(scripted.requests) == before  # nothing reached the tool server
    await _healthy(faulty)


async def test_unknown_server_and_missing_key(faulty) -> None:
    r = await _post(faulty, CALL, server="nope")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "no MCP server named 'nope' (servers: files)"
    r = await _post(faulty, CALL, headers={k: v for k, v in AUTH.items() if k != "authorization"})
    assert r.status_code == 401 and "missing API key" in r.json()["error"]["message"]
    r = await _post(faulty, CALL, headers=AUTH | {"authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "unknown API key"


@pytest.mark.parametrize(("mode", "status", "words"), [
    ("garbage", 200, "sent a message that is not JSON"),
    ("html", 200, "answered with content type 'text/html'"),
    ("stall", 504, "did not answer in time"),
    ("big", 502, "over the 100000-byte limit"),
])
async def test_upstream_faults_become_jsonrpc_errors(faulty, scripted, mode, status, words) -> None:
    scripted.mode = mode
    try:
        r = await _post(faulty, CALL)
    finally:
        scripted.mode = "ok"
    assert r.status_code == status
    body = r.json()
    assert body["id"] == 5 and body["error"]["code"] == -32012 and words in body["error"]["message"]
    await _healthy(faulty)


@pytest.mark.parametrize(("mode", "words"), [
    ("garbage_sse", "sent a message that is not JSON"),
    ("stall_sse", "stalled in the middle of its event stream"),
    ("reset", "broke off its event stream"),
    ("flood_sse", "sent an event over the 100000-byte limit"),
])
async def test_upstream_stream_faults_end_with_an_error_event(faulty, scripted, mode, words) -> None:
    scripted.mode = mode
    try:
        r = await _post(faulty, CALL)
    finally:
        scripted.mode = "ok"
    data = [line.removeprefix("data: ") for line in r.text.splitlines() if line.startswith("data: {")]
    error = json.loads(data[-1])
    assert error["id"] == 5 and error["error"]["code"] == -32012 and words in error["error"]["message"]
    await _healthy(faulty)


async def test_server_credentials_come_from_settings_only(faulty, scripted) -> None:
    r = await _post(faulty, CALL, headers=AUTH | {"x-api-key-for-tools": "client-supplied", "cookie": "a=b"})
    assert r.status_code == 200 and r.json()["result"]["content"][0]["text"] == "fine"
    seen = scripted.requests[-1]
    assert seen["authorization"] == "Bearer files-secret"  # the server's, never the client's key
    assert "x-api-key-for-tools" not in seen and "cookie" not in seen
    assert KEYS["agent"] not in json.dumps(seen)
