"""The coverage ledger: every item the model reads is inspected by a named stage or listed with why
not; the property test walks random nested request shapes through both adapters."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.coverage import header, ledger, uninspected_count
from proxy.model import Exchange, Output, Phase, StageRecord, StageStatus, ToolCall, VerdictKind
from proxy.providers import anthropic_messages, openai_chat

STRUCTURAL = {"type", "id", "tool_use_id", "tool_call_id", "role", "name", "media_type"}
UNTRUSTED_CONTAINERS = {"tool_result", "document", "search_result"}

words = st.text(alphabet=st.sampled_from("ab </>untrusted\"="), min_size=1, max_size=30)


def _anthropic_block(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.one_of(
        st.builds(lambda t: {"type": "text", "text": t}, words),
        st.just({"type": "image", "source": {"type": "url", "url": "https://i.example/a.png"}}),
        st.builds(lambda t: {"type": "document", "title": t,
                             "source": {"type": "text", "media_type": "text/plain", "data": t}}, words),
        st.just({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVB"}}),
        st.builds(lambda t: {"type": "hologram", "text": t}, words),
    )
    if depth == 0:
        return leaf
    inner = st.lists(_anthropic_block(depth - 1), min_size=1, max_size=3)
    return st.one_of(
        leaf,
        st.builds(lambda c: {"type": "tool_result", "tool_use_id": "t1", "content": c}, inner),
        st.builds(lambda c, t: {"type": "search_result", "source": "s", "title": t, "content": c},
                  st.lists(st.builds(lambda t: {"type": "text", "text": t}, words), min_size=1, max_size=2), words),
        st.builds(lambda c: {"type": "document", "source": {"type": "content", "content": c}},
                  st.lists(st.builds(lambda t: {"type": "text", "text": t}, words), min_size=1, max_size=2)),
    )


_openai_part = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, words),
    st.just({"type": "image_url", "image_url": {"url": "https://i.example/a.png"}}),
    st.just({"type": "file", "file": {"file_data": "JVB"}}),
    st.builds(lambda t: {"type": "video", "text": t}, words),
)
_openai_parts = st.lists(_openai_part, min_size=1, max_size=3)
_openai_message = st.one_of(
    st.builds(lambda c: {"role": "user", "content": c}, st.one_of(words, _openai_parts)),
    st.builds(lambda c: {"role": "tool", "tool_call_id": "c1", "content": c}, st.one_of(words, _openai_parts)),
)


def leaves(value: Any, path: tuple[Any, ...] = (), untrusted: bool = False) -> list[tuple[str, bool]]:
    """(dotted path, inside untrusted content?) for every prose string in a request."""
    if isinstance(value, str):
        return [] if path and path[-1] in STRUCTURAL else [(".".join(map(str, path)), untrusted)]
    if isinstance(value, dict):
        untrusted = untrusted or value.get("type") in UNTRUSTED_CONTAINERS or value.get("role") == "tool"
        return [x for k, v in value.items() for x in leaves(v, (*path, k), untrusted)]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in leaves(v, (*path, i), untrusted)]
    return []


def exchange_for(conv: Any, ran: bool) -> Exchange:
    ex = Exchange(request_id="r", conversation=conv, received_conversation=conv)
    status = StageStatus.OK if ran else StageStatus.ERROR
    ex.stages.append(StageRecord("injection", Phase.INPUT, status, VerdictKind.ALLOW if ran else None, 0.1))
    return ex


def assert_covered(body: dict[str, Any], conv: Any, ran: bool) -> None:
    book = ledger(exchange_for(conv, ran))
    for item, untrusted in leaves(body["messages"], ("messages",)):
        entry = next((e for e in book.entries if item == e.item or item.startswith(e.item + ".")), None)
        assert entry is not None, f"{item} has no ledger entry"
        assert entry.inspected or entry.why, f"{item} is uninspected without a reason"
        if untrusted and entry.kind == "text":
            assert entry.trust == "untrusted", f"{item} is retrieved content labelled {entry.trust}"
    assert book.complete == all(e.inspected for e in book.entries)


@settings(max_examples=60, deadline=None)
@given(st.lists(_anthropic_block(2), min_size=1, max_size=4), st.booleans())
def test_no_untrusted_byte_is_uninspected_without_an_entry_anthropic(blocks: list[dict[str, Any]], ran: bool) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]}
    assert_covered(body, anthropic_messages.parse(body), ran)


@settings(max_examples=60, deadline=None)
@given(st.lists(_openai_message, min_size=1, max_size=4), st.booleans())
def test_no_untrusted_byte_is_uninspected_without_an_entry_openai(messages: list[dict[str, Any]], ran: bool) -> None:
    body = {"model": "m", "messages": messages}
    assert_covered(body, openai_chat.parse(body), ran)


def test_the_header_says_partial_and_counts_what_nobody_read() -> None:
    body = {"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "c1", "content": [
            {"type": "text", "text": "page"}, {"type": "image_url", "image_url": {"url": "https://x/i.png"}}]}]}
    conv = openai_chat.parse(body)
    assert ledger(exchange_for(openai_chat.parse({"model": "m", "messages": body["messages"][:1]}), True)
                  ).header() == "complete"
    book = ledger(exchange_for(conv, True))
    assert book.header() == "partial;uninspected=1"
    [gap] = book.uninspected
    assert gap.item == "messages.1.content.1" and "image" in gap.why and "untrusted" in gap.why


def test_output_items_and_stream_reports() -> None:
    conv = openai_chat.parse({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    ex = exchange_for(conv, True)
    ex.output = Output(text="a", tool_calls=(ToolCall("c1", "t", "{}", choice=0),))
    ex.stages.append(StageRecord("tool_scope", Phase.OUTPUT, StageStatus.OK, VerdictKind.ALLOW, 0.1))
    entries = {e.item: e for e in ledger(ex).entries}
    assert entries["output.choices.0.text"].stages == ("tool_scope",)
    assert entries["output.choices.0.tool_calls.c1"].inspected
    ex.stream_coverage.inspected("output.choices.0.text.stream", "output_leak")
    ex.stream_coverage.not_inspected("output.choices.0.text.tail", "released past the hold bound", 12)
    book = ledger(ex)
    assert book.header() == "partial;uninspected=1"
    assert book.uninspected[0].why == "released past the hold bound" and book.uninspected[0].chars == 12
    assert book.as_dict()["uninspected"] == 1


@settings(max_examples=40, deadline=None)
@given(st.lists(_anthropic_block(2), min_size=1, max_size=4), st.booleans(), st.booleans())
def test_the_quick_count_agrees_with_the_ledger(blocks: list[dict[str, Any]], ran: bool, with_output: bool) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]}
    ex = exchange_for(anthropic_messages.parse(body), ran)
    if with_output:
        ex.output = Output(text="a", tool_calls=(ToolCall("c1", "t", "{}"),))
    assert uninspected_count(ex) == len(ledger(ex).uninspected)
    assert header(ex) == ledger(ex).header()
