"""The PII stage: allow / tag / mask / block per entity and per client, restore in responses."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.errors import ConfigError
from proxy.guards.pii import PiiGuard, build
from proxy.model import Action, Exchange, Output, Phase, Severity, ToolCall, Vector, VerdictKind
from proxy.pipeline import Pipeline, Stage
from proxy.providers import openai_chat
from proxy.settings import Settings, StageSettings

EMAIL, CARD = "jane.roe@example.org", "4111 1111 1111 1111"


def exchange(text: str, client: str = "default", request_id: str = "req-1") -> Exchange:
    body = {"model": "m", "messages": [{"role": "system", "content": "Be helpful."},
                                       {"role": "user", "content": text}]}
    return Exchange(request_id=request_id, conversation=openai_chat.parse(body), client=client)


def guard(**options: Any) -> PiiGuard:
    return build(Settings(), options)


async def run(g: PiiGuard, ex: Exchange, phase: Phase) -> Any:
    pipeline = Pipeline([Stage(g, StageSettings(name="pii", timeout_s=60))])  # a cold analyzer loads first
    return await pipeline.run(ex, phase)


async def test_tag_records_typed_findings_that_never_carry_the_value() -> None:
    ex = exchange(f"mail me at {EMAIL}")
    verdict = await run(guard(), ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.ALLOW
    [f] = ex.findings
    assert (f.rule_id, f.category, f.vector, f.severity, f.detector) == (
        "pii.email_address", "pii", Vector.DIRECT, Severity.LOW, "pii")
    assert EMAIL not in repr(f) and EMAIL not in repr(ex.decisions)
    assert ex.conversation.segments[1].text.endswith(EMAIL)  # tag changes nothing on the wire


async def test_allow_records_nothing() -> None:
    ex = exchange(f"mail me at {EMAIL}")
    await run(guard(actions={"EMAIL_ADDRESS": "allow"}), ex, Phase.INPUT)
    assert ex.findings == [] and ex.decisions == []


async def test_block_refuses_the_request_naming_the_entity_not_the_value() -> None:
    ex = exchange(f"card {CARD}")
    verdict = await run(guard(actions={"CREDIT_CARD": "block"}), ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.BLOCK and verdict.error_code == "pii_blocked"
    assert "CREDIT_CARD" in verdict.message and CARD not in verdict.message
    assert ex.decisions[0].action is Action.BLOCK


async def test_mask_sends_placeholders_and_restores_values_in_the_response() -> None:
    g = guard(actions={"default": "mask"})
    ex = exchange(f"mail {EMAIL} twice: {EMAIL}, card {CARD}")
    verdict = await run(g, ex, Phase.INPUT)
    assert verdict.kind is VerdictKind.TRANSFORM
    sent = ex.conversation.segments[1].text
    assert sent == "mail <EMAIL_ADDRESS_1> twice: <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>"
    assert EMAIL not in str(openai_chat.render(ex.conversation))
    ex.output = Output(text="Sure, <EMAIL_ADDRESS_1>.", tool_calls=(
        ToolCall("c1", "send", '{"to": "<EMAIL_ADDRESS_1>"}'),))
    await run(g, ex, Phase.OUTPUT)
    assert ex.output.text == f"Sure, {EMAIL}."
    assert ex.output.tool_calls[0].arguments == f'{{"to": "{EMAIL}"}}'
    # The client's own value coming back is not a new output finding.
    assert [f.phase for f in ex.findings] == [Phase.INPUT, Phase.INPUT, Phase.INPUT]


async def test_stream_rewriter_exists_only_for_masked_requests() -> None:
    g = guard(actions={"default": "mask"})
    masked, clean = exchange(f"mail {EMAIL}", request_id="a"), exchange("hello", request_id="b")
    await run(g, masked, Phase.INPUT)
    await run(g, clean, Phase.INPUT)
    assert g.stream_rewriter(masked) is not None and g.stream_rewriter(clean) is None


async def test_new_pii_in_the_output_follows_the_output_rubric() -> None:
    g = guard(output_actions={"CREDIT_CARD": "block"})
    ex = exchange("what is the test card?")
    await run(g, ex, Phase.INPUT)
    ex.output = Output(text=f"Use {CARD}.")
    verdict = await run(g, ex, Phase.OUTPUT)
    assert verdict.kind is VerdictKind.BLOCK
    assert ex.findings[0].phase is Phase.OUTPUT and ex.findings[0].vector is Vector.OTHER


async def test_per_client_actions_override_the_stage_rubric() -> None:
    g = guard(actions={"EMAIL_ADDRESS": "tag"}, clients={"hr-bot": {"actions": {"EMAIL_ADDRESS": "block"}}})
    assert (await run(g, exchange(EMAIL, client="hr-bot"), Phase.INPUT)).kind is VerdictKind.BLOCK
    assert (await run(g, exchange(EMAIL, client="other"), Phase.INPUT)).kind is VerdictKind.ALLOW


async def test_only_the_configured_trust_levels_are_scanned() -> None:
    ex = exchange(f"mail {EMAIL}")
    await run(guard(trust=["untrusted"]), ex, Phase.INPUT)
    assert ex.findings == []


@pytest.mark.parametrize("options, message", [
    ({"actions": {"EMAIL_ADDRESS": "shred"}}, "'shred' is not one of"),
    ({"entities": ["PERSON"]}, "PERSON"),
    ({"colour": "red"}, "unknown option"),
])
def test_bad_options_fail_at_build_time(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(Settings(), options)
