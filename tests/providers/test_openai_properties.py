"""Property tests: the OpenAI adapter never fails except with our errors, and round-trips losslessly."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import InvalidRequest
from proxy.model import Trust
from proxy.providers import openai_chat
from proxy.providers.markup import split_marked

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
roles = st.sampled_from(["system", "developer", "user", "assistant"])
parts = st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), min_size=1, max_size=3)
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.one_of(texts, parts)}), min_size=1, max_size=6
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


def body(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "m", "messages": msgs}


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip_is_lossless_without_markup(msgs: list[dict[str, Any]]) -> None:
    original = body(msgs)
    snapshot = json.dumps(original, sort_keys=True)
    conv = openai_chat.parse(original)
    if "<untrusted" not in snapshot:
        assert openai_chat.render(conv) is original
    assert json.dumps(original, sort_keys=True) == snapshot, "parse never mutates the body"


@settings(max_examples=300, deadline=None)
@given(messages, texts, texts)
def test_marked_spans_are_untrusted_and_stripped(msgs: list[dict[str, Any]], doc: str, src: str) -> None:
    doc = doc.replace("<untrusted", "").replace("</untrusted>", "")
    msgs = [*msgs, {"role": "user", "content": f'see <untrusted source="s">{doc}</untrusted> end'}]
    conv = openai_chat.parse(body(msgs))
    marked = [s for s in conv.segments if s.provenance.kind == "marked"]
    assert marked and all(s.trust is Trust.UNTRUSTED for s in marked)
    assert marked[-1].text == doc
    assert openai_chat.render(conv)["messages"][-1]["content"] == f"see {doc} end"


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_any_json_is_parsed_or_refused_with_our_error(value: Any) -> None:
    try:
        openai_chat.parse(value)
    except InvalidRequest as exc:
        assert exc.message
    candidate = {"model": "m", "messages": [{"role": "user", "content": value}]}
    try:
        openai_chat.parse(candidate)
    except InvalidRequest as exc:
        assert exc.param is not None and exc.param.startswith("messages.0.content")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_markup_split_keeps_every_character_outside_tags(text: str) -> None:
    pieces = split_marked(text)
    assert sum(len(p.text) for p in pieces) <= len(text)
    if "<untrusted" not in text:
        assert "".join(p.text for p in pieces) == text
