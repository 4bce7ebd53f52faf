"""Approval store: ids stable while pending, approval by the same client only, used once, expiry and bound."""

from __future__ import annotations

from proxy.model import Conversation, ToolCall
from proxy.policy.approvals import ApprovalStore, call_key
from proxy.providers import openai_chat

CALL = ToolCall("c", "send_email", '{"to": "a@b.example", "body": "x"}')


def conv(user: str) -> Conversation:
    return openai_chat.parse({"model": "m", "messages": [{"role": "system", "content": "ops"},
                                                        {"role": "user", "content": user}]})


def test_an_approved_call_is_used_once_and_only_by_its_client() -> None:
    store = ApprovalStore()
    key = call_key("app", conv("hi"), CALL)
    approval = store.offer("app", key, CALL)
    assert store.offer("app", key, CALL) == approval  # the same call while pending: the same id
    assert store.consume(key) is None  # not approved yet
    assert store.approve(approval, "other") is None
    assert store.approve(approval, "app") is not None
    assert store.consume(key) == approval and store.consume(key) is None


def test_the_key_binds_conversation_tool_and_canonical_arguments() -> None:
    reordered = ToolCall("d", "send_email", '{"body": "x",  "to": "a@b.example"}')
    assert call_key("app", conv("hi"), CALL) == call_key("app", conv("hi"), reordered)
    assert call_key("app", conv("hi"), CALL) != call_key("app", conv("bye"), CALL)
    assert call_key("app", conv("hi"), CALL) != call_key("app2", conv("hi"), CALL)
    other = ToolCall("c", "send_email", '{"to": "evil@x.example", "body": "x"}')
    assert call_key("app", conv("hi"), CALL) != call_key("app", conv("hi"), other)


def test_pending_approvals_expire_and_are_bounded() -> None:
    now = [0.0]
    store = ApprovalStore(ttl_s=10, max_entries=2, clock=lambda: now[0])
    first = store.offer("app", "k1", CALL)
    now[0] = 11
    assert store.approve(first, "app") is None  # expired
    ids = [store.offer("app", f"k{i}", CALL) for i in range(2, 5)]
    assert store.approve(ids[0], "app") is None and store.approve(ids[2], "app") is not None
