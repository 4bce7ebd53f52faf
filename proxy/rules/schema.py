"""Finds and compiles the JSON Schema rule files are validated against.

The schema ships as `rules/schema.json`; a rules directory may carry its own copy (an operator's
candidate set), otherwise the one shipped next to the default rule set is used.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

from proxy.errors import ConfigError
from proxy.settings import DEFAULT_RULES_DIR

SCHEMA_NAME = "schema.json"


def schema_path(rules_dir: Path) -> Path:
    own = rules_dir / SCHEMA_NAME
    return own if own.is_file() else DEFAULT_RULES_DIR / SCHEMA_NAME


@lru_cache(maxsize=8)
def _validator_for(path: str, mtime_ns: int) -> Draft202012Validator:
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"rule schema {path} does not load: {exc}") from exc
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validator(rules_dir: Path) -> Draft202012Validator:
    """The compiled validator; cached per schema file and modification time."""
    path = schema_path(rules_dir)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"rule schema not found: {path}") from exc
    return _validator_for(str(path), mtime)
