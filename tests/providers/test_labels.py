"""The shared Labeller: structure keys are skipped only when they hold structure words, never a schema."""

from __future__ import annotations

from proxy.model import Provenance, Trust
from proxy.providers.labels import Labeller

SKIP = frozenset({"type", "pattern", "additionalProperties", "required"})


def test_leaves_reads_schemas_under_keys_that_are_usually_structure() -> None:
    labels = Labeller()
    schema = {"type": "object", "required": ["type"], "pattern": "^a$",
              "properties": {"type": {"type": "string", "description": "named type"},
                             "pattern": {"title": "named pattern"}},
              "additionalProperties": {"description": "extra"}}
    labels.leaves(schema, ("p",), Trust.USER, Provenance("tool_definition"), "tools", skip=SKIP)
    conv = labels.conversation("a", "v", {"model": "m"}, ())
    got = {".".join(map(str, s.location.path)): s.text for s in conv.segments if s.location}
    assert got == {"p.properties.type.description": "named type", "p.properties.pattern.title": "named pattern",
                   "p.additionalProperties.description": "extra"}
