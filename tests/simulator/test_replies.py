"""Reply building: ids, tokens, usage and the OpenAI completion and chunk shapes."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from proxy.simulator.grammar import Call, Decision, Transcript, Turn
from proxy.simulator.replies import (
    CREATED,
    build_reply,
    chat_chunks,
    chat_completion,
    prompt_tokens,
    reply_id,
    split_tokens,
    tool_call_id,
)

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
TRANSCRIPT = Transcript(turns=(Turn("user", "hi"),))


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello big world", ("Hello ", "big ", "world")),
        ("  lead  and trail \n", ("  lead  ", "and ", "trail \n")),
        ("one", ("one",)),
        ("   ", ("   ",)),
        ("", ()),
    ],
)
def test_tokens_are_words_with_their_trailing_space_and_join_back(text: str, tokens: tuple[str, ...]) -> None:
    assert split_tokens(text) == tokens
    assert "".join(split_tokens(text)) == text


def test_reply_id_hashes_the_canonical_request_json() -> None:
    canonical = json.dumps(BODY, sort_keys=True, separators=(",", ":"))
    expected = "chatcmpl-sim-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert reply_id(BODY) == expected
    reordered = {"messages": BODY["messages"], "model": "m"}
    assert reply_id(reordered) == expected  # key order is not part of the request's identity
    assert reply_id({**BODY, "model": "other"}) != expected


def test_tool_call_ids_derive_from_the_request_id_and_index() -> None:
    rid = reply_id(BODY)
    assert tool_call_id(rid, 0) == "call_" + hashlib.sha256(f"{rid}0".encode()).hexdigest()[:8]
    assert tool_call_id(rid, 0) != tool_call_id(rid, 1)
    assert re.fullmatch(r"call_[0-9a-f]{8}", tool_call_id(rid, 3))


def test_prompt_tokens_are_a_quarter_of_all_message_characters_rounded_up() -> None:
    turns = (Turn("system", "abcde"), Turn("assistant", "xyz"), Turn("user", ""))
    assert prompt_tokens(Transcript(turns=turns)) == 2  # ceil(8 / 4)
    assert prompt_tokens(Transcript(turns=(Turn("user", "a" * 9),))) == 3


def test_text_reply_counts_one_completion_token_per_word() -> None:
    reply = build_reply(BODY, TRANSCRIPT, Decision(text="one two three"))
    assert reply.tokens == ("one ", "two ", "three")
    assert (reply.prompt_tokens, reply.completion_tokens) == (1, 3)
    assert reply.finish_reason == "stop"
    assert reply.tool_calls == ()


def test_tool_call_reply_counts_argument_characters_over_four() -> None:
    decision = Decision(text="", calls=(Call("a", {"k": "v"}), Call("b", {})))
    reply = build_reply(BODY, TRANSCRIPT, decision)
    assert [c.arguments for c in reply.tool_calls] == ['{"k":"v"}', "{}"]
    assert reply.completion_tokens == 3 + 1  # ceil(9 / 4) + ceil(2 / 4)
    assert reply.finish_reason == "tool_calls"
    assert [c.id for c in reply.tool_calls] == [tool_call_id(reply.id, 0), tool_call_id(reply.id, 1)]


def test_chat_completion_with_text() -> None:
    reply = build_reply(BODY, TRANSCRIPT, Decision(text="hello there"))
    assert chat_completion(reply, "m") == {
        "id": reply_id(BODY),
        "object": "chat.completion",
        "created": CREATED,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hello there", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }


def test_chat_completion_with_tool_calls() -> None:
    reply = build_reply(BODY, TRANSCRIPT, Decision(text="", calls=(Call("f", {"x": "é"}),)))
    choice = chat_completion(reply, "m")["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": tool_call_id(reply.id, 0),
            "type": "function",
            "function": {"name": "f", "arguments": '{"x":"é"}'},
        }
    ]


def test_text_chunks_follow_openai_order() -> None:
    reply = build_reply(BODY, TRANSCRIPT, Decision(text="a b c"))
    chunks = chat_chunks(reply, "m")
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "a "},
        {"content": "b "},
        {"content": "c"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == reply.id for c in chunks)
    assert all("usage" not in c for c in chunks)


def test_usage_chunk_comes_last_when_asked_for() -> None:
    reply = build_reply(BODY, TRANSCRIPT, Decision(text="a b c"))
    chunks = chat_chunks(reply, "m", include_usage=True)
    assert [c["usage"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_tool_call_chunks_send_a_header_then_eight_character_argument_pieces() -> None:
    calls = (Call("first", {"city": "Paris", "unit": "C"}), Call("second", {}))
    reply = build_reply(BODY, TRANSCRIPT, Decision(text="", calls=calls))
    deltas = [c["choices"][0]["delta"] for c in chat_chunks(reply, "m")[:-1]]
    assert deltas[0] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": tool_call_id(reply.id, 0),
                "type": "function",
                "function": {"name": "first", "arguments": ""},
            }
        ],
    }
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:5]]
    assert all(len(p) == 8 for p in pieces[:-1]) and 0 < len(pieces[-1]) <= 8
    assert "".join(pieces) == '{"city":"Paris","unit":"C"}'
    assert deltas[5]["tool_calls"][0]["index"] == 1
    assert deltas[5]["tool_calls"][0]["function"]["name"] == "second"
    assert "role" not in deltas[5]
    assert deltas[6] == {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}
    assert len(deltas) == 7
