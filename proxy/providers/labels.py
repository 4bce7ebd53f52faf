"""Collects what an adapter finds in a request: labelled text, non-text content, unread shapes.

Both adapters walk their wire format and report every content-bearing field here; `conversation`
turns the text into Segments (splitting `<untrusted>` markup) so the closed contract is the same
for every API: a field is text (a Segment), opaque content (an Opaque the ledger lists and that
taints when untrusted), or unread (an Uninspected entry, refused unless the operator passes
unknown shapes). Walks are iterative and bounded by the body size the app already capped.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.errors import InvalidRequest
from proxy.model import Conversation, Location, Opaque, Provenance, Segment, ToolCall, ToolSpec, Trust, Uninspected
from proxy.providers.markup import OPEN, split_marked

Path = tuple[str | int, ...]
# First path element of segments that are not a string of the body: text an API keeps upstream
# (Responses history restored from the response state) and non-text content. Never written back;
# evidence keeps their text apart so replay judges what the live request judged.
CONTEXT_ROOT = "(context)"
STRUCTURAL = frozenset({"type", "id", "tool_use_id", "tool_call_id", "media_type", "cache_control"})
# JSON-schema keywords whose object's KEYS are names the model reads (a property called
# "ignore_previous_instructions_and_..."): scanned as scan-only text (see Location.scan_only).
NAMED_KEYS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


def in_context(seg: Segment) -> bool:
    return seg.location is not None and seg.location.path[:1] == (CONTEXT_ROOT,)


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def _prose(value: Any) -> bool:
    """A value under a structure key (`type`, `pattern`, `required`, `$ref`...) that is not a structure
    word: words with spaces, or a long string, are text the model reads wherever they sit."""
    if isinstance(value, str):
        return len(value) > 64 or any(c.isspace() for c in value)
    return isinstance(value, list) and any(_prose(v) for v in value)


class Labeller:
    def __init__(self) -> None:
        self._texts: list[tuple[Path, str, Trust, Provenance, str]] = []
        self._names: set[int] = set()  # positions in `_texts` of texts that are keys (scan only)
        self._opaque: list[Opaque] = []
        self._unread: list[Uninspected] = []

    def text(self, path: Path, text: str, trust: Trust, prov: Provenance, role: str) -> None:
        self._texts.append((path, text, trust, prov, role))

    def leaves(self, value: Any, path: Path, trust: Trust, prov: Provenance, role: str,
               skip: frozenset[str] = STRUCTURAL, root_skip: frozenset[str] = frozenset()) -> None:
        """Every string inside a JSON value (a schema, a server tool's result) as text; keys in
        `skip` are structure, not prose, unless they hold an object (a schema property may be named
        `type` or `pattern`, and `additionalProperties` may be a schema with its own descriptions)
        or prose (a `pattern` or a `required` entry written as a sentence).
        `root_skip` keys are skipped only directly under `value` (a response format's own `name`,
        while a `name` deeper in its schema is text the model reads). The names under a schema's
        `properties` (and `$defs`...) are text too, scan only. `encrypted_*` values are opaque to us."""
        stack: list[tuple[Path, Any]] = [(path, value)]
        root = len(path)
        while stack:
            at, item = stack.pop()
            if isinstance(item, str):
                if isinstance(at[-1], str) and at[-1].startswith("encrypted"):
                    self.opaque("encrypted", trust, prov, at)
                elif item:
                    self.text(at, item, trust, prov, role)
            elif isinstance(item, dict):
                if len(at) > root and at[-1] in NAMED_KEYS:
                    self._key_names(item, at, trust, prov, role)
                top = root_skip if len(at) == root else frozenset()
                stack.extend(((*at, k), v) for k, v in reversed(item.items())
                             if (k not in skip or isinstance(v, dict) or _prose(v)) and k not in top)
            elif isinstance(item, list):
                stack.extend(((*at, i), v) for i, v in reversed(list(enumerate(item))))

    def _key_names(self, item: dict[str, Any], at: Path, trust: Trust, prov: Provenance, role: str) -> None:
        for key in item:
            if isinstance(key, str) and key:
                self._names.add(len(self._texts))
                self._texts.append(((*at, key), key, trust, prov, role))

    def opaque(self, kind: str, trust: Trust, prov: Provenance, path: Path) -> None:
        self._opaque.append(Opaque(kind, trust, prov, path))

    def unknown(self, path: Path, why: str, value: Any) -> None:
        """A shape this adapter cannot read: refused, or passed unread when the operator says so."""
        self._unread.append(Uninspected(dotted(path), why, max(1, len(json.dumps(value, default=str)))))

    def parameter(self, name: str, value: Any) -> None:
        """An unknown scalar parameter: it passes (the upstream judges it) and is recorded."""
        self._unread.append(Uninspected(name, f"unknown parameter ({type(value).__name__})", 0))

    def conversation(self, api: str, vendor: str, body: dict[str, Any], tools: tuple[ToolSpec, ...],
                     calls: tuple[ToolCall, ...] = ()) -> Conversation:
        segments: list[Segment] = []
        for n, (path, text, trust, prov, role) in enumerate(self._texts):
            if n in self._names:  # a key: scanned whole, never written back
                segments.append(Segment(len(segments), role, text, trust, prov, Location(path, 0, scan_only=True)))
                continue
            if OPEN not in text:  # no retrieval markup (nearly every text): the one segment as labelled
                segments.append(Segment(len(segments), role, text, trust, prov, Location(path, 0)))
                continue
            for part, piece in enumerate(split_marked(text)):
                if piece.marked:
                    seg_trust, seg_prov = Trust.UNTRUSTED, Provenance("marked", piece.source, prov.tool_call_id)
                else:
                    seg_trust, seg_prov = trust, prov
                segments.append(Segment(len(segments), role, piece.text, seg_trust, seg_prov, Location(path, part)))
        return Conversation(
            api=api, vendor=vendor, model=body["model"], stream=bool(body.get("stream", False)),
            segments=tuple(segments), tools=tools, raw=body,
            opaque=tuple(self._opaque), uninspected=tuple(self._unread), calls=calls,
        )


def top_level(body: dict[str, Any], known: frozenset[str], labels: Labeller) -> None:
    """Unknown top-level parameters: scalars pass and are recorded; anything with structure may
    carry text the model reads, so it is an unknown shape."""
    for key, value in body.items():
        if key in known:
            continue
        if value is None or isinstance(value, bool | int | float | str):
            labels.parameter(key, value)
        else:
            labels.unknown((key,), f"unknown parameter {key!r} with structure ({type(value).__name__})", value)


def enforce(conv: Conversation, unknown_shapes: str) -> None:
    """The closed contract: an unread shape is refused with a 400 naming it, unless the operator
    passes such shapes (`unknown_shapes: pass_uninspected`); then the ledger lists it unread."""
    if unknown_shapes == "pass_uninspected":
        return
    for entry in conv.uninspected:
        if entry.chars:
            raise InvalidRequest(
                f"{entry.path}: {entry.why}; guardproxy refuses what it cannot inspect "
                "(an operator can pass such shapes unread with unknown_shapes: pass_uninspected)",
                param=entry.path, code="uninspectable_content",
            )
