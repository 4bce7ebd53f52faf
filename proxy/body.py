"""Reads a client's JSON request body safely: size-capped, time-capped, strict UTF-8 and JSON.

Limits are enforced while reading, so a 100 MB body or a client that stalls mid-body costs a
bounded amount of memory and time. Every failure is one of our errors with a precise message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from proxy.errors import (
    InvalidEncoding,
    InvalidJSON,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)


async def read_json(request: Request, *, max_bytes: int, timeout_s: float) -> tuple[bytes, Any]:
    """Return the raw bytes and the parsed JSON value of the request body."""
    _check_content_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    try:
        async with asyncio.timeout(timeout_s):
            raw = await _read_capped(request, max_bytes)
    except TimeoutError:
        raise RequestTimeout(f"client body timed out: request body not received within {timeout_s:g}s") from None
    except ClientDisconnect:
        raise InvalidRequest("client disconnected while sending the body", code="client_disconnected") from None
    return raw, parse_json(raw)


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidJSON("request body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEncoding(
            f"request body is not valid UTF-8 (invalid byte at offset {exc.start})"
        ) from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidJSON("request body JSON is nested too deeply") from None
    # json accepts "\ud800" escapes; a lone surrogate cannot be re-encoded or forwarded.
    if "\\ud" in text or "\\uD" in text:
        _check_surrogates(value)
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Two equal keys in one object: a parser disagreement an attacker can use, so refuse it."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidJSON(f"request body has a duplicate key {dup!r} in one object")
    return obj


def _check_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidEncoding(
                    "request body has a lone UTF-16 surrogate escape (e.g. \\ud800): not valid Unicode"
                ) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_content_type(value: str | None) -> None:
    # Missing is tolerated (curl -d without -H); anything else must say JSON.
    if value is None:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"content-type must be application/json, got {media!r}")
