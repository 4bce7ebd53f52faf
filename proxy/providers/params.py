"""The sampling settings each wire API spells its own way, read into one neutral RequestParams."""

from __future__ import annotations

from typing import Any

from proxy.providers.base import RequestParams


def openai_chat(raw: dict[str, Any]) -> RequestParams:
    fmt = raw.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    n = raw.get("n")
    return RequestParams(
        max_tokens=_int(raw.get("max_completion_tokens", raw.get("max_tokens"))),
        temperature=_float(raw.get("temperature")),
        top_p=_float(raw.get("top_p")),
        frequency_penalty=_float(raw.get("frequency_penalty")),
        presence_penalty=_float(raw.get("presence_penalty")),
        stop=_strings(raw.get("stop")),
        seed=_int(raw.get("seed")),
        choice_count=n if _int(n) is not None and n != 1 else None,
        output_type=("text" if kind == "text" else "json") if kind in ("json_object", "json_schema", "text") else None,
        api_type="chat_completions",
    )


def anthropic_messages(raw: dict[str, Any]) -> RequestParams:
    return RequestParams(
        max_tokens=_int(raw.get("max_tokens")),
        temperature=_float(raw.get("temperature")),
        top_p=_float(raw.get("top_p")),
        stop=_strings(raw.get("stop_sequences")),
    )


def message_count(raw: dict[str, Any]) -> int:
    """Turns in a body that keeps them in `messages` (both chat APIs)."""
    messages = raw.get("messages")
    return len(messages) if isinstance(messages, list) else 0


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    return ()
