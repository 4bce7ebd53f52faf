"""Puts masked PII values back into a streamed response, chunk by chunk.

One `StreamRestorer` per channel (the text, and each tool call's arguments), so a placeholder
split across two chunks is still restored; whatever is held back is released on the chunk that
carries `finish_reason`, or by `tail()` just before `[DONE]`.
"""

from __future__ import annotations

import json
from typing import Any

from proxy.pii.placeholders import StreamRestorer, Vault


class ChunkRestorer:
    """Rewrites SSE `data:` payloads; anything that is not a JSON chunk passes untouched."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._channels: dict[str, StreamRestorer] = {}
        self._last: dict[str, Any] = {}

    def _channel(self, name: str) -> StreamRestorer:
        return self._channels.setdefault(name, StreamRestorer(self.vault))

    def chunk(self, data: str) -> str:
        if data.strip() == "[DONE]" or "{" not in data:
            return data
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            return data
        if isinstance(chunk, dict) and chunk.get("type") == "content_block_delta":
            return self._anthropic(chunk)
        if not isinstance(chunk, dict) or not chunk.get("choices"):
            return data
        self._last = {k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk}
        for choice in chunk["choices"]:
            if choice.get("index", 0) == 0:
                self._rewrite(choice)
        return json.dumps(chunk, ensure_ascii=False)

    def _anthropic(self, event: dict[str, Any]) -> str:
        # Anthropic events cannot carry held-back text past `content_block_stop`, so placeholders
        # are restored within each delta only; one split across deltas reaches the client as the
        # placeholder (never as another value): a cosmetic miss, not a leak.
        delta = event.get("delta") or {}
        for key in ("text", "partial_json"):
            if isinstance(delta.get(key), str):
                delta[key] = self.vault.restore(delta[key])
        return json.dumps(event, ensure_ascii=False)

    def _rewrite(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        final = bool(choice.get("finish_reason"))
        if isinstance(delta.get("content"), str) or (final and self._pending("content")):
            text = self._channel("content").feed(delta.get("content") or "")
            delta["content"] = text + (self._channel("content").flush() if final else "")
            choice["delta"] = delta
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            if isinstance(fn.get("arguments"), str):
                fn["arguments"] = self._channel(f"tool:{call.get('index', 0)}").feed(fn["arguments"])
        if final:
            self._flush_tools(delta)
            choice["delta"] = delta

    def _pending(self, name: str) -> bool:
        restorer = self._channels.get(name)
        return restorer is not None and restorer.pending()

    def _flush_tools(self, delta: dict[str, Any]) -> None:
        for name, restorer in self._channels.items():
            if name.startswith("tool:") and restorer.pending():
                index = int(name.split(":", 1)[1])
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": index, "function": {"arguments": restorer.flush()}})

    def tail(self) -> str | None:
        """A last chunk carrying held-back text, if the stream ended without a finish_reason."""
        delta: dict[str, Any] = {}
        if self._pending("content"):
            delta["content"] = self._channels["content"].flush()
        self._flush_tools(delta)
        if not delta:
            return None
        chunk = {**self._last, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        return json.dumps(chunk, ensure_ascii=False)
