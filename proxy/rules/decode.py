"""Finds base64 / hex / URL-encoded / binary runs in a text and decodes the ones that hold text.

Bounded on every axis an attacker controls: run length, number of runs, total decoded bytes (the
caller also caps depth). Candidate runs are found with RE2, so the search itself is linear-time;
a run is kept only if it decodes to mostly printable UTF-8 with some letters in it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import re2

from proxy.rules.hints import hints


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 2
    max_runs: int = 32  # per text
    max_run_chars: int = 16_384
    max_total_bytes: int = 65_536  # per segment, across every depth


@dataclass(frozen=True, slots=True)
class Decoded:
    start: int  # span of the encoded run in the text it was found in
    end: int
    kind: str  # base64 | hex | url | binary | morse
    text: str


def _b64(run: str) -> bytes:
    run = run.rstrip("=")
    padded = run + "=" * (-len(run) % 4)
    if "-" in run or "_" in run:
        return base64.urlsafe_b64decode(padded)
    return base64.b64decode(padded, validate=True)


def _hex(run: str) -> bytes:
    return binascii.unhexlify(run.replace("\\x", "").replace("0x", ""))


def _spaced_hex(run: str) -> bytes:
    return bytes(int(pair, 16) for pair in run.replace(":", " ").split())


_MORSE_CODES = (
    ".- -... -.-. -.. . ..-. --. .... .. .--- -.- .-.. -- -. --- .--. --.- .-. ... - ..- ...- .-- "
    "-..- -.-- --.. ----- .---- ..--- ...-- ....- ..... -.... --... ---.. ----. .-.-.- --..-- ..--.."
)
_MORSE = dict(zip(_MORSE_CODES.split(" "), "abcdefghijklmnopqrstuvwxyz0123456789.,?", strict=True))


def _morse(run: str) -> bytes:
    words = [w.split() for w in run.replace("|", "/").split("/")]
    text = " ".join("".join(_MORSE.get(code, "?") for code in word) for word in words if word)
    if text.count("?") * 5 > len(text):
        raise ValueError("not morse")
    return text.encode()


def _binary(run: str) -> bytes:
    bits = "".join(run.split())
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - 7, 8))


def _url(run: str) -> bytes:
    return unquote_to_bytes(run.replace("+", " "))


_FINDERS: tuple[tuple[str, re2._Regexp, Callable[[str], bytes]], ...] = (
    ("base64", re2.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}"), _b64),
    ("hex", re2.compile(r"(?:\\x[0-9a-fA-F]{2}){6,}|\b(?:[0-9a-fA-F]{2}){10,}\b"), _hex),
    ("hex", re2.compile(r"\b(?:[0-9a-fA-F]{2}[ :]){7,}[0-9a-fA-F]{2}\b"), _spaced_hex),
    ("binary", re2.compile(r"\b(?:[01]{8}\s?){4,}"), _binary),
    ("morse", re2.compile(r"(?:[.\-]{1,6}[ ]{1,3}(?:[/|][ ]{0,3})?){4,}[.\-]{1,6}"), _morse),
    ("url", re2.compile(r"(?:[A-Za-z0-9._~+\-]*%[0-9a-fA-F]{2}){3,}[A-Za-z0-9._~+\-]*"), _url),
)


def _is_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 4:
        return None
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    letters = sum(c.isalpha() for c in text)
    if printable < 0.9 * len(text) or letters < 0.4 * len(text.replace(" ", "")):
        return None
    return text


def find_encoded(
    text: str, limits: Limits, budget: list[int], kinds: frozenset[str] | None = None
) -> list[Decoded]:
    """Decoded runs in `text`; `budget` is a one-item list of bytes still allowed (shared).

    `kinds` is `hints(text)` when the caller already has it: finders it rules out are skipped.
    """
    kinds = hints(text) if kinds is None else kinds
    found: list[Decoded] = []
    for kind, finder, decode in _FINDERS:
        if kind not in kinds:
            continue
        for match in finder.finditer(text):
            run = match.group()
            if len(run) > limits.max_run_chars or not _plausible(kind, run):
                continue
            try:
                raw = decode(run)
            except (ValueError, binascii.Error):
                continue
            decoded = _is_text(raw)
            if decoded is None or len(raw) > budget[0]:
                continue
            budget[0] -= len(raw)
            found.append(Decoded(match.start(), match.end(), kind, decoded))
            if len(found) >= limits.max_runs:
                return found
    return found


def _plausible(kind: str, run: str) -> bool:
    """Cheap filters before decoding: words and file paths are not base64, plain text is not URL."""
    if kind == "base64":
        return any(c.isdigit() or c in "+/=" for c in run) or (
            any(c.isupper() for c in run[1:]) and any(c.islower() for c in run)
        )
    if kind == "url":
        return run.count("%") >= 3
    return True
