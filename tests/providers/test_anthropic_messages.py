"""The Anthropic adapter: trust labelling, provenance, lossless round trip, rewrites put back."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from proxy.errors import InvalidRequest
from proxy.model import Output, Provenance, Segment, ToolCall, ToolSpec, Trust
from proxy.providers import anthropic_messages as am
from proxy.providers.anthropic_errors import anthropic_error_body

TOOLS = [
    {"name": "read_inbox", "description": "Read mail", "input_schema": {"type": "object"}},
    {"name": "send_email", "input_schema": {"type": "object"}},
]


def body() -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 256,
        "temperature": 0.2,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "tools": copy.deepcopy(TOOLS),
        "tool_choice": {"type": "tool", "name": "send_email", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Read this: "},
                {"type": "image", "source": {"type": "url", "url": "https://img.example/a.png"}},
                {"type": "text", "text": '<untrusted source="https://wiki.example/p">Wiki text</untrusted> ok?'},
                {"type": "document", "title": "Q3 report", "context": "from the share",
                 "source": {"type": "text", "media_type": "text/plain", "data": "Revenue grew."}},
                {"type": "document", "source": {"type": "url", "url": "https://docs.example/x.pdf"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_9", "name": "read_inbox", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_9", "content": [
                    {"type": "text", "text": "mail body"},
                    {"type": "text", "text": 'see <untrusted source="https://x.example">inner</untrusted>'},
                ]},
                {"type": "text", "text": "Summarise."},
            ]},
        ],
    }


def test_trust_and_provenance_of_every_segment() -> None:
    conv = am.parse(body())
    got = [(s.role, s.text, s.trust, s.provenance.kind, s.provenance.source) for s in conv.segments]
    assert got == [
        ("system", "Be brief.", Trust.TRUSTED, "system", None),
        ("user", "Read this: ", Trust.USER, "user", None),
        ("user", "Wiki text", Trust.UNTRUSTED, "marked", "https://wiki.example/p"),
        ("user", " ok?", Trust.USER, "user", None),
        ("user", "Revenue grew.", Trust.UNTRUSTED, "document", "Q3 report"),
        ("user", "Q3 report", Trust.UNTRUSTED, "document", "Q3 report"),
        ("user", "from the share", Trust.UNTRUSTED, "document", "Q3 report"),
        ("assistant", "Let me check.", Trust.USER, "assistant", None),
        ("user", "mail body", Trust.UNTRUSTED, "tool_result", "read_inbox"),
        ("user", "see ", Trust.UNTRUSTED, "tool_result", "read_inbox"),
        ("user", "inner", Trust.UNTRUSTED, "marked", "https://x.example"),
        ("user", "Summarise.", Trust.USER, "user", None),
        ("tools", "Read mail", Trust.USER, "tool_definition", "read_inbox"),
    ]
    # The image is the user's; the PDF by URL is retrieved content nobody can scan: it taints.
    assert [(o.kind, o.trust, o.path) for o in conv.opaque] == [
        ("image", Trust.USER, ("messages", 0, "content", 1)),
        ("document", Trust.UNTRUSTED, ("messages", 0, "content", 4, "source")),
    ]
    assert conv.tainted() and not conv.uninspected
    assert conv.api == "anthropic.messages" and conv.vendor == "anthropic"
    assert conv.model == "claude-x" and conv.stream is False
    assert conv.segments[8].provenance.tool_call_id == "toolu_9"
    assert conv.segments[10].provenance.tool_call_id == "toolu_9"  # marked inside a result keeps the id
    assert [t.name for t in conv.tools] == ["read_inbox", "send_email"]
    assert conv.tools[0].description == "Read mail" and conv.tools[0].parameters == {"type": "object"}


def test_string_system_and_content_and_string_tool_result() -> None:
    conv = am.parse({"model": "m", "max_tokens": 1, "stream": True, "system": "Sys.", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "fetch", "input": {"u": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "page"}]},
    ]})
    got = [(s.text, s.trust, s.provenance.kind, s.provenance.source, s.location.path)  # type: ignore[union-attr]
           for s in conv.segments]
    assert got == [
        ("Sys.", Trust.TRUSTED, "system", None, ("system",)),
        ("hi", Trust.USER, "user", None, ("messages", 0, "content")),
        ("page", Trust.UNTRUSTED, "tool_result", "fetch", ("messages", 2, "content", 0, "content")),
    ]
    assert conv.stream is True


def test_unknown_tool_use_id_still_untrusted() -> None:
    conv = am.parse({"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope", "content": "x"}]}]})
    seg = conv.segments[0]
    assert seg.trust is Trust.UNTRUSTED and seg.provenance.source is None and seg.provenance.tool_call_id == "nope"


def test_document_content_source_and_search_result() -> None:
    conv = am.parse({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "chunk"}]},
         "title": "Handbook"},
        {"type": "search_result", "source": "https://s.example", "title": "Hit",
         "content": [{"type": "text", "text": "found"}]},
    ]}]})
    assert [(s.text, s.trust, s.provenance.kind, s.provenance.source) for s in conv.segments] == [
        ("chunk", Trust.UNTRUSTED, "document", "Handbook"),
        ("Handbook", Trust.UNTRUSTED, "document", "Handbook"),
        ("Hit", Trust.UNTRUSTED, "search_result", "Hit"),
        ("https://s.example", Trust.UNTRUSTED, "search_result", "Hit"),
        ("found", Trust.UNTRUSTED, "search_result", "Hit"),
    ]


def test_round_trip_without_markup_returns_the_same_json() -> None:
    original = body()
    original["messages"][0]["content"][2]["text"] = "plain"
    original["messages"][2]["content"][0]["content"][1]["text"] = "plain too"
    sent = json.dumps(original, sort_keys=True)
    conv = am.parse(original)
    assert am.render(conv) is original
    assert am.is_unchanged(conv)
    assert json.dumps(original, sort_keys=True) == sent  # parse never mutates


def test_markup_is_removed_and_everything_else_kept() -> None:
    original = body()
    out = am.render(am.parse(original))
    assert out["messages"][0]["content"][2]["text"] == "Wiki text ok?"
    assert out["messages"][2]["content"][0]["content"][1]["text"] == "see inner"
    out["messages"][0]["content"][2]["text"] = original["messages"][0]["content"][2]["text"]
    out["messages"][2]["content"][0]["content"][1]["text"] = original["messages"][2]["content"][0]["content"][1]["text"]
    assert out == original


def test_rewritten_segments_are_put_back_in_place() -> None:
    conv = am.parse(body())
    conv = conv.with_text(0, "Be very brief.").with_text(4, "[document withheld]")
    out = am.render(conv)
    assert out["system"][0] == {"type": "text", "text": "Be very brief.", "cache_control": {"type": "ephemeral"}}
    assert out["messages"][0]["content"][3]["source"]["data"] == "[document withheld]"
    assert body()["system"][0]["text"] == "Be brief."


def test_removing_a_tool_fixes_tool_choice() -> None:
    conv = am.parse(body())
    out = am.render(conv.with_tools((conv.tools[0],)))
    assert [t["name"] for t in out["tools"]] == ["read_inbox"]
    assert out["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    out = am.render(conv.with_tools(()))
    assert "tools" not in out and "tool_choice" not in out
    kept = am.render(conv.with_tools((ToolSpec("send_email", raw=TOOLS[1]),)))
    assert kept["tool_choice"]["name"] == "send_email"


@pytest.mark.parametrize(("change", "param", "code"), [
    (lambda b: b.pop("max_tokens"), "max_tokens", "missing_field"),
    (lambda b: b.update(max_tokens=True), "max_tokens", "invalid_type"),
    (lambda b: b.update(stream="yes"), "stream", "invalid_type"),
    (lambda b: b.update(messages=[]), "messages", "invalid_value"),
    (lambda b: b["messages"][0].update(role="system"), "messages.0.role", "invalid_value"),
    (lambda b: b["messages"][0]["content"][0].update(text=42), "messages.0.content.0.text", "invalid_type"),
    (lambda b: b["messages"][2]["content"][0].pop("tool_use_id"), "messages.2.content.0.tool_use_id",
     "missing_field"),
    (lambda b: b["messages"][0]["content"][3]["source"].pop("data"), "messages.0.content.3.source.data",
     "missing_field"),
    (lambda b: b["tools"][0].pop("input_schema"), "tools.0.input_schema", "missing_field"),
    (lambda b: b.update(system=7), "system", "invalid_type"),
])
def test_bad_shapes_name_the_field(change: Any, param: str, code: str) -> None:
    b = body()
    change(b)
    with pytest.raises(InvalidRequest) as exc:
        am.parse(b)
    assert exc.value.param == param and exc.value.code == code
    assert exc.value.message.startswith(param)


def test_unknown_block_types_are_unread_shapes() -> None:
    b = body()
    b["messages"][0]["content"].append({"type": "container_upload", "file_id": "f"})
    b["messages"][0]["content"].append({"type": "hologram", "text": "obey"})
    conv = am.parse(b)
    assert len(conv.segments) == 13 and conv.opaque[-1].kind == "file"
    assert [(u.path, u.chars > 0) for u in conv.uninspected] == [("messages.0.content.6", True)]
    assert "'hologram'" in conv.uninspected[0].why


RESPONSE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Sending. "},
        {"type": "text", "text": "Done."},
        {"type": "tool_use", "id": "toolu_1", "name": "send_email", "input": {"to": "a@b.c"}},
        {"type": "tool_use", "id": "toolu_2", "name": "read_inbox", "input": {}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5},
}


def test_parse_output() -> None:
    out = am.parse_output(RESPONSE)
    assert out.text == "Sending. Done."
    assert out.tool_calls == (ToolCall("toolu_1", "send_email", '{"to":"a@b.c"}', 0),
                              ToolCall("toolu_2", "read_inbox", "{}", 1))
    assert (out.finish_reason, out.response_id, out.input_tokens, out.output_tokens) == ("tool_use", "msg_1", 10, 5)


def test_render_output_drops_a_call_and_adds_a_notice() -> None:
    out = am.parse_output(RESPONSE)
    kept = Output(text=out.text + " [send_email withheld]", tool_calls=out.tool_calls[1:], finish_reason="tool_use")
    rendered = am.render_output(RESPONSE, kept)
    assert rendered["content"] == [
        RESPONSE["content"][0],
        {"type": "text", "text": "Sending. Done. [send_email withheld]"},
        RESPONSE["content"][4],
    ]
    assert rendered["stop_reason"] == "tool_use"
    none_left = am.render_output(RESPONSE, Output(text="withheld", finish_reason="tool_use"))
    assert none_left["stop_reason"] == "end_turn"
    assert [b["type"] for b in none_left["content"]] == ["thinking", "text"]
    assert RESPONSE["content"][1]["text"] == "Sending. "  # never mutated


def test_anthropic_error_shape() -> None:
    err = InvalidRequest("messages.0.role: bad", param="messages.0.role", code="invalid_value")
    assert anthropic_error_body(err, "req_1") == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "messages.0.role: bad", "code": "invalid_value",
                  "param": "messages.0.role"},
        "request_id": "req_1",
    }


def test_segments_a_guard_added_are_put_where_anthropic_carries_them() -> None:
    conv = am.parse({"model": "m", "max_tokens": 9, "system": 'Rules. <untrusted source="kb">kb text</untrusted>',
                     "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    notice = Segment(0, "system", "NOTICE", Trust.TRUSTED, Provenance("guardproxy"), None)
    moved = Segment(0, "user", "<<<DATA kb text>>>", Trust.UNTRUSTED, Provenance("marked", "kb"), None)
    emptied = dataclasses.replace(conv.segments[1], text="")
    out = am.render(conv.with_segments([notice, conv.segments[0], emptied, moved, *conv.segments[2:]]))
    assert out["system"] == "Rules. \n\nNOTICE"
    assert out["messages"][0]["content"] == [{"type": "text", "text": "<<<DATA kb text>>>"},
                                             {"type": "text", "text": "hi"}]
    assert out["messages"][1] == {"role": "assistant", "content": "yo"}
    listed = am.parse({**body(), "system": [{"type": "text", "text": "S"}]})
    out = am.render(listed.with_segments([notice, *listed.segments]))
    assert out["system"] == [{"type": "text", "text": "S"}, {"type": "text", "text": "NOTICE"}]


def test_input_tokens_include_cached_ones() -> None:
    from proxy.providers.anthropic_messages import parse_output

    response = {"id": "m", "model": "c", "stop_reason": "end_turn", "content": [{"type": "text", "text": "hi"}],
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 5,
                          "output_tokens": 3}}
    out = parse_output(response)
    assert (out.input_tokens, out.output_tokens) == (105, 3)
