"""YAML documents with line numbers: parse once for data and once for marks, refuse duplicate
keys, and validate against a JSON Schema with errors that name file, line, entry and field.

Shared by every loader of operator-edited files (rules, policy) so they fail the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from proxy.errors import ConfigError


def parse(path: Path, raw: bytes | None = None, *, check_duplicates: bool = True) -> tuple[Any, yaml.Node | None]:
    """(plain data, node tree) of one YAML file; ConfigError naming the line on bad YAML.

    `check_duplicates=False` leaves duplicate keys to the caller, for a loader that first decides
    whether the file is its own (a rules directory also holds the policy file).
    """
    try:
        text = (raw if raw is not None else path.read_bytes()).decode("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {exc}") from exc
    if node is not None and check_duplicates:
        check_duplicate_keys(path, node)
    return plain(data), node


def plain(value: Any) -> Any:
    """YAML turns 2026-01-31 into a date; schemas (and JSON) speak strings."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def check_duplicate_keys(path: Path, node: yaml.Node) -> None:
    """PyYAML keeps the last of two equal keys silently; an operator's file must not."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                raise ConfigError(f"{path}:{key.start_mark.line + 1}: duplicate key {key.value!r}")
            seen.add(key.value)
            check_duplicate_keys(path, value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            check_duplicate_keys(path, item)


def node_at(node: yaml.Node, where: Iterable[str | int]) -> yaml.Node:
    for step in where:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == step]
            if not match:
                return node
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
        else:
            return node
    return node


def line_of(node: yaml.Node | None, where: Iterable[str | int]) -> int:
    return node_at(node, where).start_mark.line + 1 if node is not None else 1


def validate(path: Path, data: Any, node: yaml.Node | None, validator: Draft202012Validator) -> None:
    """Raise ConfigError for the first schema violation: 'file:line: field 'a.b': message'."""
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    err = errors[0]
    if err.context:  # oneOf/anyOf: the deepest sub-error names the real field
        err = max(err.context, key=lambda e: len(e.absolute_path))
    loc = list(err.absolute_path)
    field = f" field {'.'.join(str(p) for p in loc)!r}:" if loc else ""
    raise ConfigError(f"{path}:{line_of(node, loc)}:{field} {err.message}")
