"""The relay's JSON for rewritten bodies: what json.loads reads back is the value it was given,
whatever the value holds (non-ASCII text, line separators, integers past 64 bits)."""

from __future__ import annotations

import json

from proxy.relay import json_bytes


def test_a_rewritten_body_reads_back_as_the_same_value() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "café \u2028 <untrusted> \"q\" \\ 😀"}],
            "temperature": 0.7, "n": 2, "stream": False, "stop": None, "tools": []}
    assert json.loads(json_bytes(body)) == body


def test_integers_past_64_bits_are_written_exactly() -> None:
    body = {"seed": 12345678901234567890123456789, "messages": []}  # the body reader allows up to 40 digits
    assert json.loads(json_bytes(body)) == body
