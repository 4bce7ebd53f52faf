"""Placeholders: consistent per value, restored in whole texts and across split stream chunks."""

from __future__ import annotations

import json

from proxy.pii.analyzer import PiiHit
from proxy.pii.placeholders import EVIDENCE_STYLE, StreamRestorer, Vault
from proxy.pii.stream import ChunkRestorer


def test_the_same_value_gets_the_same_numbered_placeholder() -> None:
    vault = Vault()
    text = "a@x.io wrote to b@y.io and a@x.io"
    hits = [PiiHit("EMAIL_ADDRESS", s, s + 6, 1.0) for s in (0, 16, 27)]
    assert vault.replace(text, hits) == "<EMAIL_ADDRESS_1> wrote to <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_1>"
    assert vault.restore("<EMAIL_ADDRESS_2>, <EMAIL_ADDRESS_9>") == "b@y.io, <EMAIL_ADDRESS_9>"
    assert vault.kinds() == {"<EMAIL_ADDRESS_1>": "EMAIL_ADDRESS", "<EMAIL_ADDRESS_2>": "EMAIL_ADDRESS"}


def test_evidence_style_uses_brackets() -> None:
    vault = Vault(EVIDENCE_STYLE)
    assert vault.placeholder("US_SSN", "536-22-8726") == "[US_SSN_1]"


def test_stream_restorer_handles_a_placeholder_split_anywhere() -> None:
    vault = Vault()
    vault.placeholder("EMAIL_ADDRESS", "jane@example.com")
    reply = "Write to <EMAIL_ADDRESS_1> today, not <b>."
    for cut in range(1, len(reply)):
        r = StreamRestorer(vault)
        got = r.feed(reply[:cut]) + r.feed(reply[cut:]) + r.flush()
        assert got == "Write to jane@example.com today, not <b>.", cut


def _chunk(delta: dict[str, object], finish: str | None = None) -> str:
    return json.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_chunk_restorer_restores_content_and_tool_arguments_in_openai_chunks() -> None:
    vault = Vault()
    vault.placeholder("EMAIL_ADDRESS", "jane@example.com")
    rw = ChunkRestorer(vault)
    out = [rw.chunk(_chunk({"content": "mail <EMAIL_"})), rw.chunk(_chunk({"content": "ADDRESS_1> ok"})),
           rw.chunk(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to": "<EMAIL_ADD'}}]})),
           rw.chunk(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'RESS_1>", "cc": "<EM'}}]})),
           rw.chunk(_chunk({}, finish="tool_calls")), rw.chunk("[DONE]")]
    text = "".join(json.loads(c)["choices"][0]["delta"].get("content") or "" for c in out[:-1])
    args = "".join(tc["function"]["arguments"] for c in out[:-1]
                   for tc in json.loads(c)["choices"][0]["delta"].get("tool_calls") or [])
    assert text == "mail jane@example.com ok"
    assert args == '{"to": "jane@example.com", "cc": "<EM'  # a partial tail is released at the end
    assert out[-1] == "[DONE]"
    assert rw.tail() is None


def test_chunk_restorer_restores_placeholders_in_anthropic_deltas() -> None:
    vault = Vault()
    vault.placeholder("EMAIL_ADDRESS", "jane@example.com")
    rw = ChunkRestorer(vault)
    text = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "to <EMAIL_ADDRESS_1>."}}
    args = {"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"to": "<EMAIL_ADDRESS_1>"}'}}
    assert json.loads(rw.chunk(json.dumps(text)))["delta"]["text"] == "to jane@example.com."
    assert json.loads(rw.chunk(json.dumps(args)))["delta"]["partial_json"] == '{"to": "jane@example.com"}'
    stop = json.dumps({"type": "content_block_stop", "index": 0})
    assert rw.chunk(stop) == stop
