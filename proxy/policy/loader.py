"""Reads `rules/policy.yaml` into a Policy, validated against `rules/policy.schema.json`.

A broken file is refused with file, line and field; the caller keeps the last good policy.
A missing file means the built-in default: no client keys, least privilege for tools.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from proxy import yamldoc
from proxy.errors import ConfigError
from proxy.model import Action, Severity
from proxy.policy.spec import (
    SENDER_FIELDS,
    ClientPolicy,
    McpAccess,
    Policy,
    QuarantineRule,
    Scope,
    TaintMode,
    ToolRule,
)
from proxy.settings import DEFAULT_RULES_DIR

SCHEMA = DEFAULT_RULES_DIR / "policy.schema.json"


@lru_cache(maxsize=4)
def _validator(schema: Path = SCHEMA) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema.read_text(encoding="utf-8")))


def _schema_for(path: Path) -> Path:
    """The schema beside the policy file (an installed image ships rules/ whole), else the repo's."""
    own = path.parent / SCHEMA.name
    return own if own.is_file() else SCHEMA


def load_policy(path: Path) -> Policy:
    if not path.exists():
        return Policy()
    raw = path.read_bytes()
    data, node = yamldoc.parse(path, raw)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a policy file holds a mapping with kind: policy")
    _unbool(data)
    yamldoc.validate(path, data, node, _validator(_schema_for(path)))
    defaults = data.get("defaults") or {}
    clients: dict[str, ClientPolicy] = {}
    for i, entry in enumerate(data.get("clients") or ()):
        key = entry["key_sha256"]
        if key in clients:
            line = yamldoc.line_of(node, ["clients", i, "key_sha256"])
            raise ConfigError(f"{path}:{line}: client {entry['name']!r}: field 'key_sha256': duplicate key")
        clients[key] = _client({**defaults, **entry})
    tools = data.get("tools") or {}
    for name, spec in tools.items():
        _check_vouching(path, node, name, spec)
    return Policy(
        tools={name: _tool(name, spec) for name, spec in tools.items()},
        secret_scopes=frozenset(data.get("secret_scopes") or ()),
        poisoned_content=frozenset(data.get("poisoned_content") or ()),
        default=_client({"name": "default", **defaults}),
        clients=clients,
        digest="sha256:" + hashlib.sha256(raw).hexdigest()[:16],
        source=str(path),
    )


def _unbool(data: dict[str, Any]) -> None:
    """YAML 1.1 reads an unquoted `segregation: off` (or `answer_links: off`) as false; the operator
    meant "off"."""
    for settings in [data.get("defaults"), *(data.get("clients") or [])]:
        for key in ("segregation", "answer_links"):
            if isinstance(settings, dict) and settings.get(key) is False:
                settings[key] = "off"


def _check_vouching(path: Path, node: Any, name: str, spec: dict[str, Any]) -> None:
    for target, fields in (spec.get("trusted_source_for") or {}).items():
        sender = sorted({f.lower() for f in fields} & SENDER_FIELDS)
        if sender:
            line = yamldoc.line_of(node, ["tools", name, "trusted_source_for", target])
            raise ConfigError(
                f"{path}:{line}: field 'tools.{name}.trusted_source_for.{target}': {sender[0]!r} is written "
                "by whoever sent the message, so it would vouch for an attacker's own address; "
                "declare a directory the operator controls (contacts, payees) instead")


def _tool(name: str, spec: dict[str, Any]) -> ToolRule:
    sensitive = spec.get("sensitive_args")
    return ToolRule(
        name=name,
        scope=Scope(spec["scope"]),
        sensitive_args=tuple(sensitive) if sensitive is not None else None,
        trusted_source_for={arg: tuple(fields) for arg, fields in (spec.get("trusted_source_for") or {}).items()},
        egress_args=tuple(spec["egress_args"]) if "egress_args" in spec else None,
        text_args=tuple(spec["text_args"]) if "text_args" in spec else None,
        reply_args=tuple(spec.get("reply_args") or ()),
    )


def _client(entry: dict[str, Any]) -> ClientPolicy:
    tools = entry.get("tools", "*")
    base = ClientPolicy()
    actions = dict(base.actions)
    actions.update({Severity(k): Action(v) for k, v in (entry.get("actions") or {}).items()})
    return ClientPolicy(
        name=entry.get("name", "default"),
        tools=None if tools == "*" else frozenset(tools),
        data_scopes=tuple(entry.get("data_scopes") or ()),
        taint_mode=TaintMode(entry.get("taint_mode", base.taint_mode)),
        segregation=entry.get("segregation", base.segregation),
        actions=actions,
        drop_side_effects_at=Severity(entry.get("drop_side_effects_at", base.drop_side_effects_at)),
        detection_mode=entry.get("detection_mode", base.detection_mode),
        quarantine=QuarantineRule(**(entry.get("quarantine") or {})),
        mcp=_mcp(entry.get("mcp") or {}),
        answer_links=entry.get("answer_links"),
        link_hosts=tuple(entry.get("link_hosts") or ()),
    )


def _mcp(entry: dict[str, Any]) -> McpAccess:
    def patterns(key: str) -> tuple[str, ...] | None:
        value = entry.get(key, "*")
        return None if value == "*" else tuple(value)

    return McpAccess(servers=patterns("servers"), resources=patterns("resources"), prompts=patterns("prompts"),
                     accept_changed_tools=bool(entry.get("accept_changed_tools", False)))
