"""The agent loop's wire formats: one small class per API, so scenarios run over both.

An agent keeps the conversation in its API's shape, asks the model (through the proxy) for the
next turn, and appends tool results; the runner never sees provider JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import anthropic
import openai

from proxy.attacksim.scenarios import Suite


@dataclass
class Call:
    id: str
    name: str
    args: dict[str, Any]


@dataclass
class Reply:
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    error: str | None = None


class Agent(Protocol):
    def start(self, suite: Suite, prompt: str) -> None: ...

    def ask(self) -> Reply: ...

    def answer(self, reply: Reply, results: list[str]) -> None: ...

    def withheld_call(self, approval: str) -> tuple[str, dict[str, Any]] | None: ...

    def approve_call(self, approval: str) -> None: ...


class _Approvals:
    """The application side of the approval flow, over the SDK client's own HTTP helpers."""

    prefix = ""

    def _http(self) -> Any:
        return getattr(self, "client")  # noqa: B009 - each agent holds its SDK client as `client`

    def withheld_call(self, approval: str) -> tuple[str, dict[str, Any]] | None:
        try:
            shown = self._http().get(f"{self.prefix}/guardproxy/approvals/{approval}", cast_to=object)
        except (openai.APIStatusError, anthropic.APIStatusError):
            return None
        return str(shown["tool"]), _args(str(shown["arguments"]))

    def approve_call(self, approval: str) -> None:
        self._http().post(f"{self.prefix}/guardproxy/approvals/{approval}", cast_to=object)


class OpenAIAgent(_Approvals):
    prefix = ""  # the client's base URL ends in /v1

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client
        self.messages: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []

    def start(self, suite: Suite, prompt: str) -> None:
        self.tools = suite.tool_specs()
        self.messages = [{"role": "system", "content": suite.system}, {"role": "user", "content": prompt}]

    def ask(self) -> Reply:
        try:
            out = self.client.chat.completions.create(model="sim-gpt", messages=self.messages,  # type: ignore[arg-type]
                                                      tools=self.tools)  # type: ignore[arg-type]
        except openai.APIStatusError as exc:
            return Reply(error=f"{exc.status_code} {exc.code}: {exc.message[:200]}")
        message = out.choices[0].message
        calls = [Call(c.id, c.function.name, _args(c.function.arguments))  # type: ignore[union-attr]
                 for c in message.tool_calls or []]
        return Reply(message.content or "", calls)

    def answer(self, reply: Reply, results: list[str]) -> None:
        self.messages.append({"role": "assistant", "content": reply.text or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.args)}}
            for c in reply.calls]})
        for call, result in zip(reply.calls, results, strict=True):
            self.messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


class AnthropicAgent(_Approvals):
    prefix = "/v1"

    def __init__(self, client: anthropic.Anthropic) -> None:
        self.client = client
        self.system = ""
        self.messages: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []

    def start(self, suite: Suite, prompt: str) -> None:
        self.system = suite.system
        self.tools = [{"name": t["function"]["name"], "description": t["function"]["description"],
                       "input_schema": t["function"]["parameters"]} for t in suite.tool_specs()]
        self.messages = [{"role": "user", "content": prompt}]

    def ask(self) -> Reply:
        try:
            out = self.client.messages.create(model="sim-claude", max_tokens=512, system=self.system,
                                              messages=self.messages, tools=self.tools)  # type: ignore[arg-type]
        except anthropic.APIStatusError as exc:
            return Reply(error=f"{exc.status_code}: {exc.message[:200]}")
        text = "".join(b.text for b in out.content if b.type == "text")
        calls = [Call(b.id, b.name, dict(b.input)) for b in out.content if b.type == "tool_use"]
        return Reply(text, calls)

    def answer(self, reply: Reply, results: list[str]) -> None:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.args} for c in reply.calls]
        self.messages.append({"role": "assistant", "content": blocks})
        pairs = zip(reply.calls, results, strict=True)
        self.messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": c.id, "content": r} for c, r in pairs]})


class ResponsesAgent(_Approvals):
    """OpenAI's Responses API the way agent SDKs use it: the history stays at the provider, each
    turn sends only what is new and `previous_response_id` (so the proxy's response state is what
    keeps the taint)."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client
        self.instructions = ""
        self.tools: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.previous: str | None = None  # the turn the next ask continues from
        self.latest: str | None = None  # the last answer: the next turn's base once it is answered

    def start(self, suite: Suite, prompt: str) -> None:
        self.instructions = suite.system
        self.tools = [{"type": "function", **t["function"]} for t in suite.tool_specs()]
        self.pending = [{"role": "user", "content": prompt}]
        self.previous = self.latest = None

    def ask(self) -> Reply:
        # Asked again without an answer in between (after an approval): the same input from the
        # same turn, so the model makes the same call and the approval applies to it.
        try:
            out = self.client.responses.create(model="sim-gpt", instructions=self.instructions,
                                               input=self.pending, tools=self.tools,  # type: ignore[arg-type]
                                               previous_response_id=self.previous)
        except openai.APIStatusError as exc:
            return Reply(error=f"{exc.status_code} {exc.code}: {exc.message[:200]}")
        self.latest = out.id
        calls = [Call(o.call_id, o.name, _args(o.arguments)) for o in out.output if o.type == "function_call"]
        return Reply(out.output_text, calls)

    def answer(self, reply: Reply, results: list[str]) -> None:
        self.previous = self.latest
        self.pending = [{"type": "function_call_output", "call_id": c.id, "output": r}
                        for c, r in zip(reply.calls, results, strict=True)]


def _args(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
