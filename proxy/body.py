"""Reads a client's JSON request body safely: size-capped, time-capped, strict UTF-8 and JSON.

Limits are enforced while reading, so a 100 MB body or a client that stalls mid-body costs a
bounded amount of memory and time. Every failure is one of our errors with a precise message.
Values that Python's json accepts but that are not JSON, or that later stages cannot handle in
bounded time (NaN and Infinity, integers of thousands of digits, nesting deeper than any real
request), are refused here with a 400 naming the field, so nothing downstream meets them.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
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

# Deeper than any real request (tool schemas nest about ten levels); guards and the evidence
# builder walk values recursively, so this bounds their stack as well as their work.
MAX_DEPTH = 64
# int64 has 19 digits; a longer integer is no request field's value and Python refuses to parse
# integers past 4300 digits (a ValueError deep inside json, once a 500).
MAX_INT_DIGITS = 40


class _Refused:
    """A placeholder json returns for a value it must not keep; the walk names its field."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


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
    _parse_state.refused = False
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidJSON(f"request body JSON is nested deeper than {MAX_DEPTH} levels") from None
    # json accepts "\ud800" escapes; a lone surrogate cannot be re-encoded or forwarded.
    surrogates = b"\\ud" in raw or b"\\uD" in raw  # in the bytes: a memchr search, not a str scan
    # Depth can only exceed the limit when there are more brackets than the limit (a C count).
    deep = raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
    if _parse_state.refused or surrogates or deep:
        _check_values(value, surrogates)
    return value


def _refuse(why: str) -> _Refused:
    _parse_state.refused = True
    return _Refused(why)


def _int(digits: str) -> int | _Refused:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        return _refuse(f"an integer of {len(digits.lstrip('-'))} digits (at most {MAX_INT_DIGITS} are accepted)")
    return int(digits)


def _float(digits: str) -> float | _Refused:
    value = float(digits)
    if not math.isfinite(value):  # 1e999 parses to inf and would leave as 'Infinity'
        return _refuse(f"the number {digits[:40]} overflows a 64-bit float")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Two equal keys in one object: a parser disagreement an attacker can use, so refuse it."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InvalidJSON(f"request body has a duplicate key {dup!r} in one object")
    return obj


# One decoder for every body: building one per call (json.loads with hooks does) cost more than
# parsing a 4 KB body. Its hooks flag a refusal in this thread's state, which each parse resets.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_int=_int, parse_float=_float,
                            parse_constant=lambda name: _refuse(f"{name} is not valid JSON"))
_parse_state = threading.local()


def _check_values(value: Any, surrogates: bool) -> None:
    """One iterative walk (no recursion, linear in the nodes) for what the parser let through;
    only when it finds something does a second walk build the path that names the field."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _Refused) or depth > MAX_DEPTH:
            _raise_at(value, surrogates)
        if isinstance(item, str):
            if surrogates and not _encodes(item):
                _raise_at(value, surrogates)
        elif isinstance(item, dict):
            if surrogates and not all(_encodes(k) for k in item):
                _raise_at(value, surrogates)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raise_at(value: Any, surrogates: bool) -> None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, _Refused):
            raise InvalidJSON(f"{_field(path)}: {item.why}", param=_field(path))
        if len(path) > MAX_DEPTH:
            raise InvalidJSON(f"{_field(path[:8])}...: nested deeper than {MAX_DEPTH} levels",
                              param=_field(path[:8]))
        if isinstance(item, str):
            if surrogates:
                _check_surrogate(item, path)
        elif isinstance(item, dict):
            for k, v in item.items():
                if surrogates:
                    _check_surrogate(k, path)
                stack.append((v, (*path, k)))
        elif isinstance(item, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(item))


def _check_surrogate(text: str, path: tuple[str | int, ...]) -> None:
    if not _encodes(text):
        raise InvalidEncoding(
            f"{_field(path)}: lone UTF-16 surrogate escape (e.g. \\ud800): not valid Unicode",
            param=_field(path),
        )


def _field(path: tuple[str | int, ...]) -> str:
    """A JSON path as clients write it: messages[3].content."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(body)"


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
