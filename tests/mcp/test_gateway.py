"""The gateway end to end: the official MCP client through guardproxy to an official MCP server."""

from __future__ import annotations

import json

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp_support import KEYS, mcp_url, session

from proxy.mcp import demo_server
from proxy.mcp.pins import FilePinStore, approve

pytestmark = pytest.mark.asyncio
LABEL = "guardproxy.dev/untrusted"
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
SSE = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


async def _first_message(response: httpx.Response) -> dict[str, str]:
    """The first SSE event carrying data (the stream itself stays open, as GET streams do)."""
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        for event in _events(buffer) if "\n\n" in buffer else []:
            if event.get("data"):
                return event
    raise AssertionError("the stream ended without a message")


def _events(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = fields.get(name, "") + value
        out.append(fields)
    return out


async def test_list_and_call_through_the_proxy(gateway) -> None:
    async with session(gateway) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == {"read_file", "write_file", "send_report", "summarise_file"}
        result = await client.call_tool("read_file", {"path": "notes.txt"})
    assert result.content[0].text == demo_server.FILES["notes.txt"]
    label = (result.meta or {})[LABEL]
    assert label == {"trust": "untrusted", "provenance": "mcp:files/read_file", "findings": [], "action": "allow"}


async def test_poisoned_result_is_tagged_and_its_side_effect_refused(gateway, files) -> None:
    async with session(gateway) as client:
        result = await client.call_tool("read_file", {"path": "invoice.txt"})
        label = (result.meta or {})[LABEL]
        assert label["provenance"] == "mcp:files/read_file"
        assert "injection.override.ignore_previous" in label["findings"]
        # The attacker's recipient came from that result: the side-effecting call is refused.
        with pytest.raises(MCPError) as refused:
            await client.call_tool("send_report", {"to": "attacker@evil.example", "body": "key"})
    assert refused.value.error.code == -32010
    assert "files.send_report" in refused.value.error.message
    assert "client 'agent' of policy" in refused.value.error.message
    assert files.sent == []


async def test_untrusted_value_alone_refuses_a_side_effect(start_gateway, files) -> None:
    # No finding this time: notes.txt is clean, yet a path that only a result named is the result's choice.
    gw = start_gateway()
    async with session(gw) as client:
        await client.call_tool("read_file", {"path": "notes.txt"})
        with pytest.raises(MCPError) as refused:
            await client.call_tool("write_file", {"path": "report.csv", "content": "x"})
        assert "appears only in untrusted content (mcp:files/read_file)" in refused.value.error.message
        ok = await client.call_tool("write_file", {"path": "summary.txt", "content": "done"})
    assert ok.content[0].text.startswith("wrote 4 characters")
    assert files.written.get("summary.txt") == "done" and "report.csv" not in files.written


async def test_rug_pull_is_withheld_until_approved(start_gateway, files, tmp_path) -> None:
    pins_path = tmp_path / "pins.json"
    gw = start_gateway(mcp={"pins_path": str(pins_path)})
    try:
        async with session(gw) as client:
            assert "read_file" in {t.name for t in (await client.list_tools()).tools}
            files.rug_pull()
            assert "read_file" not in {t.name for t in (await client.list_tools()).tools}
            with pytest.raises(MCPError) as refused:
                await client.call_tool("read_file", {"path": "notes.txt"})
            assert refused.value.error.code == -32011 and "awaits review" in refused.value.error.message
            store = FilePinStore(pins_path)
            pin = await store.get("files", "read_file")
            assert pin is not None and pin.pending is not None
            assert pin.pending.definition["description"] == demo_server.RUG_PULL
            assert pin.definition["description"] == demo_server.READ_DESCRIPTION
            await store.put(approve(pin))  # what `guardproxy mcp pins approve files/read_file` does
            assert "read_file" in {t.name for t in (await client.list_tools()).tools}
    finally:
        files.mcp.remove_tool("read_file")
        files.mcp.add_tool(files._read, name="read_file", description=demo_server.READ_DESCRIPTION)


async def test_poisoned_description_is_withheld_on_first_sight(start_gateway) -> None:
    poisoned = demo_server.build()
    poisoned.mcp.add_tool(lambda q: q, name="lookup", description=demo_server.RUG_PULL)
    demo_server.start_in_thread(poisoned)
    try:
        gw = start_gateway(mcp_servers=[{"name": "files", "url": poisoned.url}])
        async with session(gw) as client:
            names = {t.name for t in (await client.list_tools()).tools}
        assert "lookup" not in names and "read_file" in names
    finally:
        poisoned.stop()


async def test_key_scope_filters_tools_resources_and_prompts(gateway, files) -> None:
    async with session(gateway, key=KEYS["reader"]) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["read_file"]
        with pytest.raises(MCPError) as refused:
            await client.call_tool("write_file", {"path": "a", "content": "b"})
        assert refused.value.error.code == -32010
        assert refused.value.error.message == (
            f"tool 'files.write_file' is not allowed by client 'reader' of policy {_digest(gateway)}")
        assert [str(r.uri) for r in (await client.list_resources()).resources] == ["file://notes.txt"]
        with pytest.raises(MCPError, match=r"resource 'file://invoice\.txt' is not allowed"):
            await client.read_resource("file://invoice.txt")
        notes = await client.read_resource("file://notes.txt")
        assert notes.contents[0].text == demo_server.FILES["notes.txt"]
        assert (await client.list_prompts()).prompts == []
        with pytest.raises(MCPError, match="prompt 'summarise' on 'files' is not allowed"):
            await client.get_prompt("summarise", {"path": "x"})
    assert "a" not in files.written


def _digest(handle) -> str:
    return handle.server.config.app.state.mcp.policies.current.digest  # type: ignore[no-any-return]


async def test_resource_read_is_judged_as_untrusted(gateway) -> None:
    async with session(gateway) as client:
        res = await client.read_resource("file://invoice.txt")
    label = (res.meta or {})[LABEL]
    assert label["provenance"] == "mcp:files/file://invoice.txt" and label["findings"]


async def test_session_resumes_with_last_event_id(gateway) -> None:
    url = mcp_url(gateway)
    auth = {"authorization": f"Bearer {KEYS['agent']}"}
    async with httpx.AsyncClient(headers=auth | SSE, timeout=30) as http:
        init = await http.post(url, json=INIT)
        sid = init.headers["mcp-session-id"]
        headers = {"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
        await http.post(url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "read_file", "arguments": {"path": "invoice.txt"}}}
        first = _events((await http.post(url, headers=headers, json=call)).text)
        priming = first[0]["id"]
        # The client lost the stream after the priming event: it resumes from there on GET.
        async with http.stream("GET", url, headers=headers | {"last-event-id": priming}) as resumed:
            assert resumed.status_code == 200
            replayed = await _first_message(resumed)
        message = json.loads(replayed["data"])
        assert message["id"] == 7
        assert message["result"]["_meta"][LABEL]["provenance"] == "mcp:files/read_file"
        assert replayed["id"] != priming  # the event ids are the server's, kept end to end
        ended = await http.delete(url, headers=headers)
        assert ended.status_code == 200
        after = await http.post(url, headers=headers, json=call)
        assert after.status_code == 404


async def test_another_keys_session_is_not_found(gateway) -> None:
    url = mcp_url(gateway)
    async with httpx.AsyncClient(headers=SSE, timeout=30) as http:
        init = await http.post(url, json=INIT, headers={"authorization": f"Bearer {KEYS['agent']}"})
        sid = init.headers["mcp-session-id"]
        stolen = await http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                                 headers={"authorization": f"Bearer {KEYS['reader']}", "mcp-session-id": sid,
                                          "mcp-protocol-version": "2025-11-25"})
    assert stolen.status_code == 404
    assert stolen.json()["error"]["message"] == "session not found"


@pytest.mark.parametrize(("body", "headers", "requested"), [
    ({**INIT, "params": {**INIT["params"], "protocolVersion": "2023-01-01"}}, {}, "2023-01-01"),
    ({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, {"mcp-protocol-version": "1999-12-31"}, "1999-12-31"),
])
async def test_unsupported_protocol_versions_are_refused(gateway, body, headers, requested) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(mcp_url(gateway), json=body,
                            headers=SSE | headers | {"authorization": f"Bearer {KEYS['agent']}"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == -32022 and error["data"]["requested"] == requested
    assert "2025-11-25" in error["data"]["supported"] and requested in error["message"]


async def test_a_servers_sampling_request_is_judged_before_the_clients_model_reads_it(gateway) -> None:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp_types import CreateMessageResult, TextContent

    seen = []

    async def sampling(context, params):  # type: ignore[no-untyped-def]
        seen.append(params)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="ok"), model="m")

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEYS['agent']}"}, timeout=30) as http, \
            streamable_http_client(mcp_url(gateway), http_client=http) as (read, write), \
            ClientSession(read, write, sampling_callback=sampling) as client:
        await client.initialize()
        result = await client.call_tool("summarise_file", {"path": "invoice.txt"})
    assert result.content[0].text == "ok"
    label = (seen[0].meta or {})[LABEL]
    assert label["provenance"] == "mcp:files/sampling/createMessage"
    assert "injection.override.ignore_previous" in label["findings"]
