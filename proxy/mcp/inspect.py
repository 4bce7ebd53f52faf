"""MCP text the model will read, judged by the input-side guards for untrusted content.

Tool definitions (description and input schema) and results (`tools/call` content, embedded
resources, structured content, `resources/read` contents, `prompts/get` messages) become
untrusted segments with provenance `mcp:{server}/{name}`, each located in the JSON it came from,
and go through the pipeline's quarantine and injection stages: the same rules, quarantine
counters and stage records as retrieved text in a chat request. Non-text content (images,
audio, blobs) is listed as not inspected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from proxy.model import (
    Action,
    Conversation,
    Exchange,
    Finding,
    Location,
    Phase,
    Provenance,
    Segment,
    Severity,
    Trust,
)
from proxy.pipeline import Pipeline
from proxy.policy.spec import ClientPolicy

STAGES = ("quarantine", "injection")  # the input-side guards for untrusted text, in pipeline order
PROVIDER = "mcp"
TEXT_KEYS = frozenset({"text"})
OPAQUE_KEYS = frozenset({"blob", "data"})  # base64 images, audio, binary resources
POISONED_AT = Severity.MEDIUM  # a tool definition with an enforced finding at this class is withheld


@dataclass
class Judged:
    """What the guards made of one piece of MCP content."""

    exchange: Exchange
    not_inspected: list[str] = field(default_factory=list)  # JSON paths of opaque content

    @property
    def findings(self) -> list[Finding]:
        return [f for f in self.exchange.findings if f.mode == "enforce"]

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def blocking(self, client: ClientPolicy) -> list[str]:
        return sorted({f.rule_id for f in self.findings if client.action_for(f.severity) is Action.BLOCK})

    def segments(self) -> tuple[Segment, ...]:
        return self.exchange.conversation.segments


def text_segments(value: Any, source: str, base: tuple[str | int, ...] = ()) -> tuple[list[Segment], list[str]]:
    """Every `text` string in a result, as an untrusted segment located by its JSON path."""
    segments: list[Segment] = []
    opaque: list[str] = []
    for path, key, item in _walk(value, base):
        if key in TEXT_KEYS and isinstance(item, str) and item:
            segments.append(Segment(len(segments), "tool", item, Trust.UNTRUSTED,
                                    Provenance("mcp", source), Location(path)))
        elif key in OPAQUE_KEYS and isinstance(item, str):
            opaque.append("/".join(str(p) for p in path))
    return segments, opaque


def _walk(value: Any, base: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str | int, Any]]:
    stack: list[tuple[tuple[str | int, ...], Any]] = [(base, value)]
    while stack:  # iterative: a deeply nested result must not exhaust the interpreter stack
        path, item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                yield (*path, k), k, v
                if isinstance(v, dict | list):
                    stack.append(((*path, k), v))
        elif isinstance(item, list):
            for i, v in enumerate(item):
                if isinstance(v, dict | list):
                    stack.append(((*path, i), v))


def definition_text(tool: dict[str, Any]) -> str:
    """What the model reads of a tool: its description and every string in its input schema."""
    schema = tool.get("inputSchema") or {}
    strings = [s for _, _, s in _walk(schema, ()) if isinstance(s, str)]
    return "\n".join([str(tool.get("description") or ""), *list(_schema_keys(schema)), *strings])


def _schema_keys(schema: Any) -> Iterator[str]:
    for _, key, _ in _walk(schema, ()):
        if isinstance(key, str):
            yield key


class Inspector:
    """Runs the configured quarantine and injection stages over MCP content."""

    def __init__(self, pipeline: Pipeline) -> None:
        wanted = [s for s in pipeline.stages if s.name in STAGES]
        self.pipeline = pipeline.subset(wanted)
        self.stage_names = [s.name for s in wanted]

    async def judge(self, exchange: Exchange) -> Judged:
        if exchange.conversation.segments:
            await self.pipeline.run(exchange, Phase.INPUT)
        return Judged(exchange)


def conversation(server: str, segments: list[Segment], raw: dict[str, Any]) -> Conversation:
    return Conversation(api=PROVIDER, vendor=PROVIDER, model=server, stream=False, segments=tuple(segments), raw=raw)


def structured_segment(result: dict[str, Any], source: str, index: int) -> Segment | None:
    """Structured content is read as its JSON text (agents hand it to the model so)."""
    structured = result.get("structuredContent")
    if structured is None:
        return None
    text = json.dumps(structured, ensure_ascii=False)
    return Segment(index, "tool", text, Trust.UNTRUSTED, Provenance("mcp", source), None)
