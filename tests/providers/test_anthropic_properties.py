"""Property tests: the Anthropic adapter never fails except with our errors, and round-trips losslessly."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import InvalidRequest
from proxy.providers import anthropic_messages

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)
blocks = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), min_size=1, max_size=3)
turns = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                        "content": st.one_of(texts, blocks)}), min_size=1, max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(turns, st.one_of(st.none(), texts))
def test_round_trip_is_lossless_without_markup(messages: list[dict[str, Any]], system: str | None) -> None:
    body: dict[str, Any] = {"model": "claude", "max_tokens": 64, "messages": messages}
    if system is not None:
        body["system"] = system
    snapshot = json.dumps(body, sort_keys=True)
    try:
        conv = anthropic_messages.parse(body)
    except InvalidRequest:
        return  # e.g. an ordering rule of the API; refused with our error, which is the property
    if "<untrusted" not in snapshot:
        assert json.dumps(anthropic_messages.render(conv), sort_keys=True) == snapshot
    assert json.dumps(body, sort_keys=True) == snapshot, "parse never mutates the body"


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_any_json_is_parsed_or_refused_with_our_error(value: Any) -> None:
    for body in (value, {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": value}]}):
        try:
            anthropic_messages.parse(body)
        except InvalidRequest as exc:
            assert exc.message
