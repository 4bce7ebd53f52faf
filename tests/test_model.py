"""The data model's copy helpers: a guard's rewrite changes what it names and carries every other field."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.model import (
    CLEAN,
    Conversation,
    Location,
    Opaque,
    Provenance,
    Segment,
    ToolCall,
    ToolSpec,
    Trust,
    Uninspected,
    Verdict,
    VerdictKind,
)


def conversation() -> Conversation:
    seg = Segment(0, "user", "hi", Trust.USER, Provenance("user"), Location(("messages", 0, "content")))
    tool = Segment(1, "tool", "page", Trust.UNTRUSTED, Provenance("tool_result", "fetch", "c1"),
                   Location(("messages", 1, "content")))
    # Every field set away from its default, so a copy that dropped one would show it.
    return Conversation(
        api="openai.chat", vendor="openai", model="m", stream=True, segments=(seg, tool),
        tools=(ToolSpec("fetch", "Fetch."),), raw={"model": "m"},
        opaque=(Opaque("image", Trust.UNTRUSTED, Provenance("user"), ("messages", 0, "content", 1)),),
        uninspected=(Uninspected("logit_bias", "unknown parameter"),),
        calls=(ToolCall("c1", "fetch", "{}"),),
    )


def test_every_field_is_set_in_the_fixture() -> None:
    conv = conversation()
    for f in dataclasses.fields(Conversation):
        if f.default is not dataclasses.MISSING:
            assert getattr(conv, f.name) != f.default, f.name
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(conv, f.name) != f.default_factory(), f.name


def test_copies_change_only_what_they_name() -> None:
    conv = conversation()
    notice = Segment(0, "system", "notice", Trust.TRUSTED, Provenance("guardproxy"), None)
    copies = {
        "segments": conv.with_segments([notice, *conv.segments]),
        "tools": conv.with_tools(()),
    }
    copies["segments_text"] = conv.with_text(1, "withheld")
    for changed, copy in copies.items():
        for f in dataclasses.fields(Conversation):
            if f.name != changed.removesuffix("_text"):
                assert getattr(copy, f.name) == getattr(conv, f.name), (changed, f.name)
    assert [s.index for s in copies["segments"].segments] == [0, 1, 2]
    assert copies["segments"].segments[2].text == "page" and copies["segments_text"].segments[1].text == "withheld"
    assert copies["tools"].tools == ()


def test_the_shared_clean_verdict_allows_finds_nothing_and_cannot_be_changed() -> None:
    assert Verdict() == CLEAN and CLEAN.kind is VerdictKind.ALLOW and not CLEAN.findings
    with pytest.raises(dataclasses.FrozenInstanceError):
        CLEAN.kind = VerdictKind.BLOCK  # type: ignore[misc]
