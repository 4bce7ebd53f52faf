"""The wire-API registry: every API registered once, and every wire-format answer comes from it."""

from __future__ import annotations

import pytest

from proxy.errors import GuardrailViolation, InvalidRequest
from proxy.model import Phase
from proxy.providers import APIS, DEFAULT, ROUTES, api_for_route, api_named
from proxy.providers.base import PhasePlan


def test_each_api_is_registered_under_its_name_and_route() -> None:
    assert set(APIS) == {"openai.chat", "anthropic.messages", "openai.responses", "mcp"}
    assert ROUTES["/v1/chat/completions"] is APIS["openai.chat"]
    assert ROUTES["/v1/responses"] is APIS["openai.responses"]
    assert ROUTES["/v1/messages"] is APIS["anthropic.messages"]
    for name, api in APIS.items():
        assert api.name == name and api.vendor == name.split(".")[0]
    assert ROUTES["/mcp"] is APIS["mcp"] and api_for_route("/mcp/files") is APIS["mcp"]


def test_the_api_a_conversation_names_parses_it_again() -> None:
    bodies = {
        "openai.chat": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        "anthropic.messages": {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        "openai.responses": {"model": "m", "input": "hi"},
    }
    for name, body in bodies.items():
        conv = APIS[name].parse(body)
        assert conv.api == name and api_named(conv.api) is APIS[name]
        assert conv.vendor == APIS[name].vendor
        assert APIS[name].render(conv) is body  # nothing changed: the client's own object


def test_older_evidence_names_only_the_vendor() -> None:
    assert api_named("openai") is APIS["openai.chat"]
    assert api_named("anthropic") is APIS["anthropic.messages"]
    assert api_named(None) is DEFAULT
    with pytest.raises(KeyError, match="no wire API named 'gemini'"):
        api_named("gemini")


def test_error_bodies_take_the_shape_of_the_route_owner() -> None:
    error = InvalidRequest("bad field", param="messages[0].content")
    anthropic = api_for_route("/v1/messages").error_body(error, "req_1")
    assert anthropic["type"] == "error" and anthropic["error"]["type"] == "invalid_request_error"
    assert anthropic["error"]["param"] == "messages[0].content" and anthropic["request_id"] == "req_1"
    assert api_for_route("/v1/messages/count_tokens") is APIS["anthropic.messages"]
    openai = api_for_route("/v1/chat/completions").error_body(GuardrailViolation("no"), "req_2")
    assert openai == {"error": {"message": "no", "type": "guardrail_violation", "param": None,
                                "code": "blocked", "request_id": "req_2"}}
    assert api_for_route("/nowhere") is DEFAULT


def test_upstream_auth_is_each_vendors_own_header() -> None:
    assert APIS["openai.chat"].upstream_auth("k") == {"authorization": "Bearer k"}
    assert APIS["anthropic.messages"].upstream_auth("k") == {"x-api-key": "k"}


def test_request_params_read_each_apis_own_spelling() -> None:
    o = APIS["openai.chat"].request_params(
        {"max_completion_tokens": 9, "stop": "END", "n": 2, "response_format": {"type": "json_schema"}})
    assert (o.max_tokens, o.stop, o.choice_count, o.output_type, o.api_type) == \
        (9, ("END",), 2, "json", "chat_completions")
    a = APIS["anthropic.messages"].request_params({"max_tokens": 5, "stop_sequences": ["a", "b"], "n": 3})
    assert (a.max_tokens, a.stop, a.choice_count, a.api_type) == (5, ("a", "b"), None, None)
    assert APIS["anthropic.messages"].message_count({"messages": [{}, {}]}) == 2


def test_stop_reasons_and_phase_plans() -> None:
    assert APIS["openai.chat"].stopped_reason == "content_filter"
    assert APIS["anthropic.messages"].stopped_reason == "refusal"
    for api in APIS.values():  # model APIs: the request is input, the answer output (MCP flips it)
        flipped = api.name == "mcp"
        assert api.phases == (PhasePlan(Phase.OUTPUT, Phase.INPUT) if flipped else PhasePlan(Phase.INPUT, Phase.OUTPUT))
