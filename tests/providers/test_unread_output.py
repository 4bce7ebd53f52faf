"""What the client gets that no output stage reads is listed on the Output (and so in the coverage
ledger), plain and streamed, for the three wire APIs: reasoning summaries, code a hosted tool ran,
citations and annotations, refusals, audio transcripts, thinking."""

from __future__ import annotations

import json
from typing import Any

from proxy.providers import anthropic_response, openai_response, openai_responses_output
from proxy.providers.anthropic_stream import StreamAccumulator as AnthropicAccumulator
from proxy.providers.openai_stream import StreamAccumulator as ChatAccumulator


def _paths(out: Any) -> dict[str, int]:
    return {u.path: u.chars for u in out.uninspected}


def test_responses_reasoning_code_interpreter_and_annotations_are_listed() -> None:
    response = {"id": "resp_1", "status": "completed", "output": [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Plan: obey the doc"}],
         "encrypted_content": "gAAAA"},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAAA"},  # nothing readable
        {"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "container_id": "c",
         "code": "import os; os.system('curl evil')", "outputs": [{"type": "logs", "logs": "done"}]},
        {"type": "message", "id": "m", "role": "assistant", "content": [
            {"type": "output_text", "text": "See [1]", "annotations": [
                {"type": "url_citation", "url": "https://evil.example", "title": "Log in here", "start_index": 4,
                 "end_index": 7}], "logprobs": []}]},
        {"type": "function_call", "id": "fc", "call_id": "c1", "name": "f", "arguments": "{}"},
    ]}
    paths = _paths(openai_responses_output.parse_output(response))
    assert set(paths) == {"output.items.0", "output.items.2", "output.items.3.content.0.annotations"}
    assert paths["output.items.0"] >= len("Plan: obey the doc")
    assert "encrypted" not in json.dumps([u.why for u in openai_responses_output.parse_output(response).uninspected])


def test_chat_plain_and_streamed_unread_parts_agree() -> None:
    message = {"role": "assistant", "content": "ok", "refusal": "no", "annotations": [{"type": "url_citation"}]}
    plain = openai_response.parse_output({"choices": [{"index": 0, "message": message, "finish_reason": "stop",
                                                       "logprobs": None}]})
    assert set(_paths(plain)) == {"output.choices.0.message.refusal", "output.choices.0.message.annotations"}
    acc = ChatAccumulator()
    for delta in ({"role": "assistant", "content": "o"}, {"refusal": "n"}, {"refusal": "o"}, {"content": "k"}):
        acc.feed(json.dumps({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
    acc.feed(json.dumps({"id": "c", "choices": [{"index": 1, "delta": {"audio": {"transcript": "hi"}}}]}))
    streamed = acc.output(0)
    assert streamed.text == "ok"
    assert _paths(streamed) == {"output.choices.0.delta.refusal": 2,
                                "output.choices.1.delta.audio": len(json.dumps({"transcript": "hi"}))}


def test_anthropic_plain_and_streamed_thinking_and_citations_are_listed() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": "go to evil", "signature": "s"},
        {"type": "text", "text": "hi", "citations": [{"type": "char_location", "cited_text": "x"}]},
        {"type": "text", "text": "no citations", "citations": None},
        {"type": "tool_use", "id": "t", "name": "f", "input": {}},
    ]
    plain = anthropic_response.parse_output({"content": blocks, "stop_reason": "end_turn"})
    assert set(_paths(plain)) == {"output.content.0", "output.content.1.citations"}
    acc = AnthropicAccumulator()
    for event in (
        {"type": "message_start", "message": {"id": "m", "usage": {}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "go to evil"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "citations_delta", "citation": {"type": "char_location", "cited_text": "x"}}},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
    ):
        acc.feed(event)
    streamed = acc.output()
    assert streamed.text == "hi"
    assert set(_paths(streamed)) == {"output.content.0", "output.content.1.citations"}
