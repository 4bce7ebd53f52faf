"""Reads a rules directory into a validated RuleSet, or fails naming file, rule id, field and line.

YAML is composed once for line marks and loaded once for data; the data is validated against
`rules/schema.json`, then every pattern is compiled with RE2 so a rule that cannot run is rejected
at load time, never at scan time. This is the only module that imports PyYAML for rules.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

import re2
import yaml

from proxy import yamldoc
from proxy.errors import ConfigError
from proxy.model import Severity, Trust
from proxy.rules.normalise import fold_pattern
from proxy.rules.schema import validator
from proxy.rules.spec import (
    RULE_FILE_KIND,
    SUPPRESSION_FILE_KIND,
    Example,
    ModelSpec,
    Rule,
    RuleSet,
    Score,
    Suppression,
)

_KINDS = (RULE_FILE_KIND, SUPPRESSION_FILE_KIND)


def rule_files(rules_dir: Path) -> list[Path]:
    """Every YAML file directly in the directory, in a stable order."""
    if not rules_dir.is_dir():
        raise ConfigError(f"rules directory not found: {rules_dir}")
    return sorted(p for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_dir(rules_dir: Path) -> RuleSet:
    """Load every rule and suppression file; raise ConfigError on the first problem."""
    rules: list[Rule] = []
    suppressions: list[Suppression] = []
    hashes: dict[str, str] = {}
    for path in rule_files(rules_dir):
        raw = path.read_bytes()
        parsed = _parse(path, raw)
        if parsed is None:
            continue  # not ours (e.g. kind: policy)
        data, node = parsed
        _validate(rules_dir, path, data, node)
        hashes[path.name] = hashlib.sha256(raw).hexdigest()
        if data["kind"] == RULE_FILE_KIND:
            rules.extend(_rules(path, data, node))
        else:
            suppressions.extend(_suppressions(path, data, node))
    _check_ids(rules)
    digest = hashlib.sha256(
        "".join(f"{name}\0{h}\n" for name, h in sorted(hashes.items())).encode()
    ).hexdigest()
    return RuleSet(
        rules=tuple(rules),
        suppressions=tuple(suppressions),
        digest=f"sha256:{digest[:16]}",
        files=tuple(sorted(hashes)),
        file_hashes=hashes,
    )


def _parse(path: Path, raw: bytes) -> tuple[dict[str, Any], yaml.Node] | None:
    data, node = yamldoc.parse(path, raw, check_duplicates=False)
    if not isinstance(data, dict) or node is None:
        return None
    kind = data.get("kind")
    if kind not in _KINDS:
        if "rules" in data or "suppressions" in data:
            raise ConfigError(
                f"{path}:1: field 'kind': looks like a rule file but kind is {kind!r} "
                f"(expected one of {', '.join(_KINDS)})"
            )
        return None  # not ours (e.g. kind: policy): its own loader judges it
    yamldoc.check_duplicate_keys(path, node)
    return data, node


_node_at = yamldoc.node_at


def _where(path: Path, data: dict[str, Any], node: yaml.Node, loc: list[str | int]) -> str:
    """'file:line: rule 'id': field 'x'' for a location inside a loaded file."""
    line = _node_at(node, loc).start_mark.line + 1
    parts = [f"{path}:{line}"]
    if len(loc) >= 2 and loc[0] in ("rules", "suppressions") and isinstance(loc[1], int):
        entry = data[loc[0]][loc[1]]
        ident = entry.get("id") or entry.get("rule") if isinstance(entry, dict) else None
        parts.append(f"{loc[0][:-1]} {ident or '#' + str(loc[1])!r}")
        if len(loc) > 2:
            parts.append(f"field {'.'.join(str(p) for p in loc[2:])!r}")
    elif loc:
        parts.append(f"field {'.'.join(str(p) for p in loc)!r}")
    return ": ".join(parts)


def _validate(rules_dir: Path, path: Path, data: dict[str, Any], node: yaml.Node) -> None:
    errors = sorted(validator(rules_dir).iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    err = errors[0]
    # For oneOf/anyOf failures the deepest sub-error names the real field.
    if err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    loc = list(err.absolute_path)
    raise ConfigError(f"{_where(path, data, node, loc)}: {err.message}")


def _examples(items: list[Any]) -> tuple[Example, ...]:
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(Example(item))
        else:
            trust = Trust(item["trust"]) if "trust" in item else None
            out.append(Example(item["text"], trust))
    return tuple(out)


def _rules(path: Path, data: dict[str, Any], node: yaml.Node) -> list[Rule]:
    rules = []
    for i, entry in enumerate(data["rules"]):
        patterns = tuple(fold_pattern(p) for p in entry.get("patterns", ()))
        for j, pattern in enumerate(patterns):
            _compile_or_fail(pattern, _where(path, data, node, ["rules", i, "patterns", j]))
        score = entry.get("score")
        examples = entry["examples"]
        rules.append(
            Rule(
                id=entry["id"],
                description=entry["description"],
                category=entry["category"],
                severity=Severity(entry["severity"]),
                applies_to=frozenset(Trust(t) for t in entry["applies_to"]),
                patterns=patterns,
                score=Score(score["threshold"], tuple(score["signals"].items())) if score else None,
                model=_model_spec(entry.get("model"), _where(path, data, node, ["rules", i, "model"])),
                emit=entry.get("emit", True),
                scope=entry.get("scope", "any"),
                mode=entry.get("mode", "enforce"),
                references=tuple(entry["references"]),
                match=_examples(examples["match"]),
                no_match=_examples(examples.get("no_match", [])),
                file=path.name,
                line=_node_at(node, ["rules", i]).start_mark.line + 1,
            )
        )
    return rules


def _model_spec(raw: dict[str, Any] | None, where: str) -> ModelSpec | None:
    """Thresholds sorted by score; a higher score must never map to a lower severity."""
    if raw is None:
        return None
    pairs = sorted((float(v), Severity(k)) for k, v in raw["thresholds"].items())
    ranks = [severity.rank for _, severity in pairs]
    if ranks != sorted(ranks):
        raise ConfigError(f"{where}: thresholds must rise with severity ({raw['thresholds']})")
    return ModelSpec(tuple((severity, score) for score, severity in pairs))


def _compile_or_fail(pattern: str, where: str) -> None:
    """Compile as the engine will (case-insensitive, in a set) so no rule fails later."""
    options = re2.Options()
    options.case_sensitive = False
    try:
        re2.compile(pattern, options)
        probe = re2.Set.SearchSet(options)
        probe.Add(pattern)
    except re2.error as exc:
        raise ConfigError(f"{where}: pattern does not compile under RE2: {exc}") from exc
    if re2.search(pattern, "") is not None:
        raise ConfigError(f"{where}: pattern matches the empty string (it would fire on anything)")


def _suppressions(path: Path, data: dict[str, Any], node: yaml.Node) -> list[Suppression]:
    out = []
    for i, entry in enumerate(data["suppressions"]):
        out.append(
            Suppression(
                rule=entry["rule"],
                reason=entry["reason"],
                author=entry["author"],
                expires=date.fromisoformat(entry["expires"]),
                client=entry.get("client"),
                source=entry.get("source"),
                text_sha256=entry.get("text_sha256"),
                file=path.name,
                line=_node_at(node, ["suppressions", i]).start_mark.line + 1,
            )
        )
    return out


def _check_ids(rules: list[Rule]) -> None:
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in seen:
            first = seen[rule.id]
            raise ConfigError(
                f"{rule.file}:{rule.line}: rule {rule.id!r}: field 'id': duplicate "
                f"(first defined at {first.file}:{first.line})"
            )
        seen[rule.id] = rule
    for rule in rules:
        for signal, _ in rule.score.signals if rule.score else ():
            if signal not in seen:
                raise ConfigError(
                    f"{rule.file}:{rule.line}: rule {rule.id!r}: field 'score.signals': "
                    f"unknown rule id {signal!r}"
                )
