"""Opt-in message content on spans: the capture mode, redaction, and the semconv message JSON.

Content is off by default (`NO_CONTENT`). When `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`
switches it on, text passes through a redactor before it touches a span: the evidence store's
redactor once it is plugged in, and until then `scrub`, which removes credentials and the most
common personal identifiers. Raw text never reaches a span.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from proxy.model import Conversation, Output
from proxy.telemetry import names as n

Redactor = Callable[[str], str]


class Capture(StrEnum):
    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (Capture.SPAN_ONLY, Capture.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (Capture.EVENT_ONLY, Capture.SPAN_AND_EVENT)


def capture_from_env(env: Mapping[str, str]) -> Capture:
    """The four names (any case) or `true` (= SPAN_ONLY); anything else means NO_CONTENT."""
    raw = env.get(n.ENV_CAPTURE_CONTENT, "").strip()
    if raw.lower() == "true":
        return Capture.SPAN_ONLY
    try:
        return Capture(raw.upper())
    except ValueError:
        return Capture.NO_CONTENT


_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}"), "Bearer <REDACTED_TOKEN>"),
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"), "<REDACTED_API_KEY>"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "<REDACTED_AWS_KEY>"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "<REDACTED_TOKEN>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "<REDACTED_JWT>"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
     "<REDACTED_PRIVATE_KEY>"),
    (re.compile(r"(?i)\b(password|passwd|secret|api[_-]?key|token)(\s*[:=]\s*)\S+"),
     r"\1\2<REDACTED>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<EMAIL_ADDRESS>"),
    (re.compile(r"\b(?:\d[ -]?){13,19}\b"), "<NUMBER>"),  # card and account numbers
    (re.compile(r"\+?\d[\d ().-]{7,}\d"), "<PHONE_NUMBER>"),
)


def scrub(text: str) -> str:
    """The fallback redactor: credentials and common identifiers, by pattern."""
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def input_messages(conversation: Conversation, redact: Redactor) -> str:
    """The conversation as sent upstream, as semconv input-messages JSON (one entry per message)."""
    messages: list[dict[str, Any]] = []
    last_key: object = None
    for seg in conversation.segments:
        if seg.location is not None and seg.location.path[0] not in ("messages", "system"):
            continue  # tool definitions, schemas, predictions: not messages
        key = seg.location.path[:2] if seg.location is not None else ("added", seg.index)
        part = {"type": "text", "content": redact(seg.text)}
        if key == last_key and messages:
            messages[-1]["parts"].append(part)
        else:
            messages.append({"role": seg.role, "parts": [part]})
        last_key = key
    return json.dumps(messages, ensure_ascii=False)


def output_messages(output: Output, redact: Redactor) -> str:
    parts: list[dict[str, Any]] = []
    if output.text:
        parts.append({"type": "text", "content": redact(output.text)})
    for call in output.tool_calls:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name,
                      "arguments": redact(call.arguments)})
    message = {"role": "assistant", "parts": parts, "finish_reason": output.finish_reason or ""}
    return json.dumps([message], ensure_ascii=False)
