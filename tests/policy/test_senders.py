"""Which record the user's text points at, and what counts as its sender (proxy.policy.senders)."""

from __future__ import annotations

import json

from proxy.model import Location, Provenance, Segment, Trust
from proxy.policy import canon, senders


def _result(text: str, n: int = 0) -> Segment:
    return Segment(n, "tool", text, Trust.UNTRUSTED, Provenance("tool_result", "read_inbox", "c1"), Location(("m",)))


LUNCH = {"from": "alice@partner.example", "subject": "Lunch on Thursday", "body": "Noon? lunch lunch"}
DEALS = {"from": "news@shop.example", "subject": "Weekly deals", "body": "Lunch deals inside"}


def _sender(texts: list[str], ask: str) -> str | None:
    record = senders.designated(senders.records([_result(t, n) for n, t in enumerate(texts)]), [ask])
    return record.sender[0] if record else None


def test_the_subject_designates_bodies_never_do() -> None:
    inbox = json.dumps([LUNCH, DEALS])  # "lunch" is in the second body too: bodies take no part
    assert _sender([inbox], "reply to the sender of the lunch email") == canon.canonical(LUNCH["from"])[0]


def test_two_matching_records_designate_none() -> None:
    rival = DEALS | {"subject": "Lunch menu"}
    assert _sender([json.dumps([LUNCH, rival])], "tell the sender of the lunch email") is None


def test_an_ordinal_designates_only_in_one_result_and_only_as_a_phrase() -> None:
    posts = json.dumps([{"author": "dora", "text": "a"}, {"author": "eve", "text": "b"}])
    assert _sender([posts], "thank the first person who posted") == canon.canonical("dora")[0]
    assert _sender([posts], "first, reply to whoever posted") is None  # "first" is not an ordinal here
    assert _sender([posts, posts], "thank the first poster") is None  # which result's first?


def test_records_need_one_top_level_sender_and_unique_keys() -> None:
    assert senders.records([_result('[{"from": "a@x.example", "from": "b@x.example"}]')]) == []
    assert senders.records([_result('[{"from": "a@x.example", "sender": "b@x.example"}]')]) == []
    assert senders.records([_result('From: a@x.example\nSubject: Lunch')]) == []  # lines are no record
    assert senders.records([_result(json.dumps([{"body": json.dumps({"from": "a@x.example"})}]))]) == []


def test_the_user_must_ask_for_the_sender() -> None:
    assert senders.asks_for_sender(["Please reply to the lunch email"])
    assert senders.asks_for_sender(["invite its sender"])
    assert not senders.asks_for_sender(["Summarise the lunch email"])
    assert not senders.asks_for_sender(["Summarise the lunch email, but don't reply to it"])
    assert not senders.asks_for_sender(["Read it without replying"])
    assert senders.asks_for_sender(["Do not wait: tell the sender of the lunch email. Thanks"])


def test_the_latest_email_is_the_one_with_the_newest_date_and_needs_every_date() -> None:
    mails = [{"from": "old@x.example", "date": "2026-11-02T09:00:00Z", "body": "a"},
             {"from": "new@x.example", "date": "2026-12-01T08:00:00Z", "body": "b"}]
    newest = canon.canonical("new@x.example")[0]
    assert _sender([json.dumps(mails)], "reply to the sender of the latest email") == newest
    undated = [mails[0], {"from": "new@x.example", "body": "b"}]
    assert _sender([json.dumps(undated)], "reply to the sender of the latest email") is None
    tie = [mails[1], mails[1] | {"from": "evil@x.example"}]
    assert _sender([json.dumps(tie)], "reply to the sender of the latest email") is None
