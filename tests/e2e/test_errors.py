"""Every error case on the wire: OpenAI's error shape, a fitting status, the field or fault named."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from fakes import FakeGuard
from servers import UPSTREAM_KEY

from proxy.serving import ProxyHandle, free_port
from proxy.simulator import SimulatorHandle

USER = [{"role": "user", "content": "hi"}]


def post(proxy: ProxyHandle, content: bytes, **headers: str) -> httpx.Response:
    hdrs = {"content-type": "application/json", **headers}
    return httpx.post(f"{proxy.url}/chat/completions", content=content, headers=hdrs, timeout=10)


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "code"}
    assert err["code"] == code, err
    assert err["request_id"] == r.headers["x-guardproxy-request-id"]
    return err


def test_malformed_json_is_400(proxy: ProxyHandle) -> None:
    err = assert_error(post(proxy, b'{"model": "m", "messages": ['), 400, "invalid_json")
    assert "line 1" in err["message"]


def test_invalid_utf8_is_400(proxy: ProxyHandle) -> None:
    r = post(proxy, b'{"model": "m", "messages": [{"role": "user", "content": "\xff"}]}')
    assert "UTF-8" in assert_error(r, 400, "invalid_encoding")["message"]


def test_wrong_type_names_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": 42}])  # type: ignore[list-item]
    assert exc.value.param == "messages.0.content"
    assert exc.value.code == "invalid_type"


def test_unknown_role_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"messages\.0\.role"):
        client.chat.completions.create(model="sim-gpt", messages=[{"role": "wizard", "content": "x"}])  # type: ignore[misc,list-item]


def test_oversize_body_is_413_without_reading_it_all(start_proxy: Any) -> None:
    small = start_proxy(max_body_bytes=2048)
    big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"a" * 5000 + b'"}]}'
    err = assert_error(post(small, big), 413, "payload_too_large")
    assert "2048" in err["message"]


def test_wrong_content_type_is_415(proxy: ProxyHandle) -> None:
    r = post(proxy, b"a=b", **{"content-type": "application/x-www-form-urlencoded"})
    assert_error(r, 415, "unsupported_media_type")


def test_upstream_timeout_is_504(client: openai.OpenAI, sim: SimulatorHandle) -> None:
    sim.configure(fault="stall", stall_s=5.0, fault_count=1)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=USER)  # type: ignore[arg-type]
    assert exc.value.status_code == 504
    assert exc.value.code == "upstream_timeout"


def test_upstream_unreachable_is_502(start_proxy: Any) -> None:
    dead = start_proxy(upstream_url=f"http://127.0.0.1:{free_port()}/v1")
    client = openai.OpenAI(base_url=dead.url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    assert exc.value.status_code == 502 and exc.value.code == "upstream_unreachable"
    ready = httpx.get(dead.url.removesuffix("/v1") + "/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["upstream"]["ok"] is False


def test_upstream_reset_is_502(client: openai.OpenAI, sim: SimulatorHandle) -> None:
    sim.configure(fault="reset", fault_count=1)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=USER)  # type: ignore[arg-type]
    assert exc.value.status_code == 502 and exc.value.code == "upstream_reset"


@pytest.mark.parametrize(("fault", "status", "sdk_error"), [
    ("500", 500, openai.InternalServerError), ("429", 429, openai.RateLimitError)])
def test_upstream_error_status_is_relayed_faithfully(
    client: openai.OpenAI, sim: SimulatorHandle, fault: str, status: int, sdk_error: type
) -> None:
    sim.configure(fault=fault, fault_count=1)
    with pytest.raises(sdk_error) as exc:
        client.chat.completions.create(model="sim-gpt", messages=USER)  # type: ignore[arg-type]
    assert exc.value.status_code == status
    if status == 429:
        assert exc.value.response.headers["retry-after"] == "1"


def test_upstream_garbage_is_502(client: openai.OpenAI, sim: SimulatorHandle) -> None:
    sim.configure(fault="garbage", fault_count=1)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=USER)  # type: ignore[arg-type]
    assert exc.value.status_code == 502 and exc.value.code == "upstream_bad_response"


def test_truncated_stream_ends_with_an_error_event(client: openai.OpenAI, sim: SimulatorHandle) -> None:
    sim.configure(fault="truncate", fault_count=1)
    received = []
    with pytest.raises(openai.APIError, match="upstream"):
        for chunk in client.chat.completions.create(
            model="sim-gpt", stream=True, messages=[{"role": "user", "content": "a b c d e f g h"}]
        ):
            received.append(chunk)
    assert received, "the chunks sent before the fault reached the client"


def test_stream_stall_mid_way_times_out_cleanly(client: openai.OpenAI, sim: SimulatorHandle) -> None:
    sim.configure(fault="stall_mid", stall_s=5.0, fault_count=1)
    with pytest.raises(openai.APIError, match="upstream"):
        list(client.chat.completions.create(
            model="sim-gpt", stream=True, messages=[{"role": "user", "content": "a b c d e f g h"}]))


def test_failing_guard_fails_closed_with_503(start_proxy: Any) -> None:
    p = start_proxy(extra_guards={"boom": FakeGuard("boom", "raise")},
                    stages=[{"name": "limits"}, {"name": "boom"}])
    client = openai.OpenAI(base_url=p.url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=USER)  # type: ignore[arg-type]
    assert exc.value.status_code == 503
    assert exc.value.type == "guardrail_unavailable"


def test_failing_guard_in_open_mode_passes(start_proxy: Any) -> None:
    p = start_proxy(extra_guards={"boom": FakeGuard("boom", "raise")},
                    stages=[{"name": "boom", "failure_mode": "open"}])
    client = openai.OpenAI(base_url=p.url, api_key="k", max_retries=0)
    out = client.chat.completions.create(model="sim-gpt", messages=USER)  # type: ignore[arg-type]
    assert out.choices[0].message.content


def test_limits_stage_blocks_oversized_conversation(start_proxy: Any) -> None:
    p = start_proxy(max_input_chars=10)
    client = openai.OpenAI(base_url=p.url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "x" * 11}])
    assert exc.value.status_code == 413 and exc.value.code == "input_limit_exceeded"


def test_blocking_guard_is_a_400_guardrail_violation(start_proxy: Any, sim: SimulatorHandle) -> None:
    before = sim.stats()["requests"]
    p = start_proxy(extra_guards={"stop": FakeGuard("stop", "block")}, stages=[{"name": "stop"}])
    client = openai.OpenAI(base_url=p.url, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=USER)  # type: ignore[arg-type]
    body = exc.value.body
    assert exc.value.type == "guardrail_violation" and body["rule_ids"] == ["stop.rule"]  # type: ignore[index]
    assert exc.value.response.headers["x-guardproxy-verdict"] == "block"
    assert sim.stats()["requests"] == before, "a blocked request never reaches the upstream"


def test_unknown_route_is_404_in_openai_shape(proxy: ProxyHandle) -> None:
    r = httpx.get(proxy.url + "/nope")
    assert_error(r, 404, "unsupported_endpoint")
    assert "GET /v1/nope" in r.json()["error"]["message"]


def test_key_never_in_error_bodies(client: openai.OpenAI, sim: SimulatorHandle) -> None:
    sim.configure(fault="reset", fault_count=1)
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=USER)  # type: ignore[arg-type]
    assert UPSTREAM_KEY not in exc.value.response.text


def test_lone_surrogate_is_400_not_a_guard_crash(guarded: ProxyHandle) -> None:
    r = post(guarded, b'{"model": "m", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}')
    assert "surrogate" in assert_error(r, 400, "invalid_encoding")["message"]


def test_duplicate_keys_are_refused(proxy: ProxyHandle, sim: SimulatorHandle) -> None:
    before = sim.stats()["requests"]
    body = (b'{"model": "m", "messages": [{"role": "user", "content": "FIRST"}], '
            b'"messages": [{"role": "user", "content": "SECOND"}]}')
    assert "duplicate key 'messages'" in assert_error(post(proxy, body), 400, "invalid_json")["message"]
    assert sim.stats()["requests"] == before


def test_out_of_range_parameters_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="sim-gpt", messages=USER, max_tokens=-5)  # type: ignore[arg-type]
    assert exc.value.param == "max_tokens"


def test_models_outside_the_allow_list_are_404(start_proxy: Any) -> None:
    p = start_proxy(allowed_models=["sim-gpt"])
    client = openai.OpenAI(base_url=p.url, api_key="k", max_retries=0)
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="other", messages=USER)  # type: ignore[arg-type]
    assert exc.value.code == "model_not_found"
    assert client.chat.completions.create(model="sim-gpt", messages=USER).choices  # type: ignore[arg-type]
