"""Content hashes of MCP results the gateway judged, so the chat side can name their source.

An agent hands a tool result to the model as a chat tool message; when that text hashes to a
result the gateway served, the chat segment's provenance becomes `mcp:{server}/{tool}` (see
proxy/mcp/provenance_stage.py), so quarantine, evidence and blast radius name the real source.
Bounded: the oldest hashes are forgotten first. In-process; replicas each know their own results.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict

from proxy.model import Conversation, Provenance, Trust


def _digest(text: str) -> str:
    # Whitespace at the ends is what agents most often change when they pass a result on.
    return hashlib.sha256(text.strip().encode()).hexdigest()


class Ledger:
    def __init__(self, size: int) -> None:
        self.size = size
        self._sources: OrderedDict[str, str] = OrderedDict()

    def record(self, text: str, source: str) -> None:
        if not text.strip():
            return
        digest = _digest(text)
        self._sources[digest] = source
        self._sources.move_to_end(digest)
        while len(self._sources) > self.size:
            self._sources.popitem(last=False)

    def source_of(self, text: str) -> str | None:
        if not self._sources:
            return None
        return self._sources.get(_digest(text))

    def __len__(self) -> int:
        return len(self._sources)


def label(conv: Conversation, ledger: Ledger) -> Conversation:
    """The conversation with each tool result the gateway served labelled `mcp:{server}/{tool}`."""
    if not len(ledger):
        return conv
    segments = list(conv.segments)
    changed = False
    for i, seg in enumerate(segments):
        if seg.trust is not Trust.UNTRUSTED or seg.provenance.kind != "tool_result":
            continue
        source = ledger.source_of(seg.text)
        if source is not None:
            prov = Provenance("mcp", source.removeprefix("mcp:"), seg.provenance.tool_call_id)
            segments[i] = dataclasses.replace(seg, provenance=prov)
            changed = True
    return dataclasses.replace(conv, segments=tuple(segments)) if changed else conv
