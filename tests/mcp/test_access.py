"""Which servers, tools, resources and prompts a client policy reaches."""

from __future__ import annotations

from proxy.mcp import access
from proxy.mcp.ledger import Ledger, label
from proxy.model import Conversation, Provenance, Segment, Trust
from proxy.policy.spec import ClientPolicy, McpAccess


def test_tools_are_named_server_dot_tool_with_server_wildcards() -> None:
    client = ClientPolicy(tools=frozenset({"files.read_file", "mail.*"}))
    assert access.tool_allowed(client, "files", "read_file")
    assert not access.tool_allowed(client, "files", "write_file")
    assert access.tool_allowed(client, "mail", "send")
    assert access.tool_allowed(ClientPolicy(), "any", "thing")  # tools: "*"


def test_servers_resources_and_prompts_are_globs() -> None:
    client = ClientPolicy(mcp=McpAccess(servers=("files",), resources=("file://public/*",), prompts=("files.sum*",)))
    assert access.server_allowed(client, "files") and not access.server_allowed(client, "mail")
    assert access.resource_allowed(client, "file://public/a.txt")
    assert not access.resource_allowed(client, "file://secret/a.txt")
    assert access.prompt_allowed(client, "files", "summarise") and not access.prompt_allowed(client, "files", "x")


def test_ledger_labels_a_chat_tool_result_with_its_mcp_source() -> None:
    ledger = Ledger(2)
    ledger.record("the result", "mcp:files/read_file")
    seg = Segment(0, "tool", "  the result\n", Trust.UNTRUSTED, Provenance("tool_result", "read_file", "c1"), None)
    user = Segment(1, "user", "the result", Trust.USER, Provenance("user"), None)
    conv = label(Conversation("openai.chat", "openai", "m", False, (seg, user)), ledger)
    assert conv.segments[0].provenance == Provenance("mcp", "files/read_file", "c1")
    assert conv.segments[1].provenance == Provenance("user")  # only untrusted tool results
    ledger.record("b", "mcp:x/b")
    ledger.record("c", "mcp:x/c")
    assert ledger.source_of("the result") is None and len(ledger) == 2  # bounded: oldest forgotten
