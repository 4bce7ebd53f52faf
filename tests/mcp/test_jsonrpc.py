"""Client messages are validated with the SDK's types; protocol versions are the SDK's."""

from __future__ import annotations

import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, KNOWN_PROTOCOL_VERSIONS

from proxy.mcp import jsonrpc
from proxy.mcp.jsonrpc import McpError, check_version, params_of, parse_body, parse_message


def test_every_version_the_sdk_speaks_is_accepted() -> None:
    for version in HANDSHAKE_PROTOCOL_VERSIONS:
        init = parse_message({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                              "params": {"protocolVersion": version, "capabilities": {},
                                         "clientInfo": {"name": "c", "version": "1"}}})
        assert check_version(None, init) == version
    for version in KNOWN_PROTOCOL_VERSIONS:
        assert check_version(version, parse_message({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})) == version


def test_a_modern_request_names_its_version_in_meta() -> None:
    msg = parse_message({"jsonrpc": "2.0", "id": 9, "method": "tools/list",
                         "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2030-01-01"}}})
    with pytest.raises(McpError) as refused:
        check_version(None, msg)
    assert refused.value.code == -32022 and refused.value.id == 9
    assert refused.value.data == {"supported": list(KNOWN_PROTOCOL_VERSIONS), "requested": "2030-01-01"}


def test_parse_errors_keep_the_request_id_when_it_can_be_read() -> None:
    with pytest.raises(McpError) as bad:
        parse_body(b'{"jsonrpc": "2.0", "id": "a7", "method": 3}')
    assert bad.value.code == jsonrpc.jsonrpc.INVALID_REQUEST and bad.value.id == "a7"
    assert bad.value.body()["error"]["message"].startswith("invalid JSON-RPC message: ")


def test_params_of_judged_methods_use_the_sdk_models() -> None:
    call = parse_message({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "read_file", "arguments": {"path": "a"}}})
    params = params_of(call)  # type: ignore[arg-type]
    assert params is not None and params.name == "read_file"  # type: ignore[attr-defined]
    bad = parse_message({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {}})
    with pytest.raises(McpError) as refused:
        params_of(bad)  # type: ignore[arg-type]
    assert refused.value.code == -32602 and "uri" in refused.value.message
    assert params_of(parse_message({"jsonrpc": "2.0", "id": 3, "method": "ping"})) is None  # type: ignore[arg-type]
