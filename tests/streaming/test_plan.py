"""The stream plan: which output stages inspect as text flows, which judge at the turn's end, and
what is held for them — read from the one ordered stage list."""

from __future__ import annotations

from fakes import FakeGuard

from proxy.guards.output_leak import OutputLeakGuard
from proxy.guards.pii import build as build_pii
from proxy.guards.tool_scope import ToolScopeGuard
from proxy.model import Exchange, Phase
from proxy.pipeline import Pipeline, Stage
from proxy.providers.openai_chat import OPENAI
from proxy.settings import Settings, StageSettings
from proxy.streaming.plan import StageKinds, plan_stream

EXCHANGE = Exchange("r", OPENAI.parse({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))


def plan(*stages: Stage) -> tuple[list[str], list[str], list[str]]:
    p = plan_stream(StageKinds.of(Pipeline(stages)), EXCHANGE)
    return [s.name for s, _ in p.incremental], [s.name for s in p.judges], list(p.hold_text_for)


def stage(guard: object, enabled: bool = True) -> Stage:
    return Stage(guard, StageSettings(name=guard.name, enabled=enabled))  # type: ignore[arg-type,attr-defined]


def test_judges_keep_the_configured_order_and_only_whole_text_judges_hold_text() -> None:
    undeclared = FakeGuard("undeclared", phases=frozenset({Phase.OUTPUT}))
    pii_block = build_pii(Settings(), {"output_actions": {"CREDIT_CARD": "block"}})
    got = plan(stage(undeclared), stage(OutputLeakGuard()), stage(ToolScopeGuard()), stage(pii_block))
    assert got == (["output_leak"], ["undeclared", "tool_scope", "pii"], ["undeclared", "pii"])


def test_tag_only_pii_and_tool_scope_hold_no_text_and_disabled_or_input_stages_are_left_out() -> None:
    input_only = FakeGuard("input_only", phases=frozenset({Phase.INPUT}))
    off = FakeGuard("off", phases=frozenset({Phase.OUTPUT}))
    got = plan(stage(input_only), stage(off, enabled=False), stage(ToolScopeGuard()),
               stage(build_pii(Settings(), {})))
    assert got == ([], ["tool_scope", "pii"], [])


def test_per_client_rubric_decides_the_hold() -> None:
    pii = build_pii(Settings(), {"clients": {"strict": {"output_actions": {"default": "mask"}}}})
    kinds = StageKinds.of(Pipeline([stage(pii)]))
    strict = Exchange("r", EXCHANGE.conversation, client="strict")
    assert plan_stream(kinds, EXCHANGE).hold_text_for == ()
    assert plan_stream(kinds, strict).hold_text_for == ("pii",)
