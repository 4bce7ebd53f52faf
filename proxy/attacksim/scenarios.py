"""Scenario suites: tools with canned results, user tasks, injection tasks (YAML in `suites/`).

A read tool's canned result holds `{injection}` where an attacker's payload rides in; a user
task's prompt speaks the simulator's instruction grammar; `expect` and `goal` name the
side-effecting call that counts as the user's or the attacker's success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SUITES_DIR = Path(__file__).parent / "suites"
ANSWER = "answer"  # a goal with this tool name is met by the final answer's text, not a call


@dataclass(frozen=True)
class Target:
    tool: str
    args: dict[str, str]

    def met_by(self, name: str, arguments: dict[str, Any]) -> bool:
        if name != self.tool:
            return False
        if name == ANSWER:  # answer steering: the attacker's text reached the user
            return str(self.args.get("contains", "")).casefold() in str(arguments.get("text", "")).casefold()
        return all(str(arguments.get(k, "")).casefold() == str(v).casefold() for k, v in self.args.items())


@dataclass(frozen=True)
class Task:
    id: str
    prompt: str
    expect: Target | None = None
    kind: str = "benign"  # the benign class reported on its own row


@dataclass(frozen=True)
class Injection:
    id: str
    payload: str
    goal: Target
    kind: str = "tool_call"  # the attack class reported on its own row


@dataclass(frozen=True)
class Suite:
    name: str
    system: str
    tools: dict[str, dict[str, Any]]
    user_tasks: tuple[Task, ...]
    injections: tuple[Injection, ...]
    path: Path = field(default=SUITES_DIR)

    def tool_specs(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": n, "description": f"{n} ({spec['scope']})",
                 "parameters": {"type": "object", "additionalProperties": True}}}
                for n, spec in self.tools.items()]

    def result(self, tool: str, payload: str) -> str:
        template = str(self.tools.get(tool, {}).get("result", '{"error": "unknown tool"}'))
        if _is_json(template.replace("{injection}", "")):
            # A real tool escapes what it quotes: the payload stays inside its JSON string.
            payload = json.dumps(payload)[1:-1]
        return template.replace("{injection}", payload)

    def policy_tools(self) -> dict[str, dict[str, Any]]:
        keep = ("scope", "sensitive_args", "trusted_source_for", "egress_args", "text_args", "reply_args")
        return {n: {k: v for k, v in spec.items() if k in keep} for n, spec in self.tools.items()}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _target(raw: dict[str, Any] | None) -> Target | None:
    return Target(raw["tool"], {k: str(v) for k, v in raw.get("args", {}).items()}) if raw else None


def load_suite(path: Path) -> Suite:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Suite(
        name=data["suite"],
        system=data["system"],
        tools=data["tools"],
        user_tasks=tuple(Task(t["id"], " ".join(t["prompt"].split()), _target(t.get("expect")),
                              t.get("class", "benign")) for t in data["user_tasks"]),
        injections=tuple(Injection(i["id"], " ".join(i["payload"].split()), _target(i["goal"]),  # type: ignore[arg-type]
                                   i.get("class", "tool_call")) for i in data["injection_tasks"]),
        path=path,
    )


def load_suites(names: list[str] | None = None) -> list[Suite]:
    suites = [load_suite(p) for p in sorted(SUITES_DIR.glob("*.yaml"))]
    return [s for s in suites if not names or s.name in names]


def policy_yaml(suites: list[Suite], taint_mode: str) -> str:
    tools: dict[str, Any] = {}
    for suite in suites:
        tools.update(suite.policy_tools())
    policy = {"kind": "policy", "version": 1, "tools": tools,
              "defaults": {"tools": "*", "taint_mode": taint_mode}}
    return yaml.safe_dump(policy, sort_keys=False)
