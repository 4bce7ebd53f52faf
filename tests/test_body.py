"""The body parser refuses what Python's json lets through but nothing downstream can handle."""

from __future__ import annotations

import threading

import pytest

from proxy.body import MAX_DEPTH, parse_json
from proxy.errors import InvalidEncoding, InvalidJSON, InvalidRequest


def _nested(depth: int) -> bytes:
    """Tool parameters `depth` JSON levels deep (built as text: json.dumps itself would recurse)."""
    schema = '{"a":' * depth + '"x"' + "}" * depth
    return (
        '{"model": "m", "messages": [{"role": "user", "content": "hi"}], '
        '"tools": [{"type": "function", "function": {"name": "f", "parameters": ' + schema + "}}]}"
    ).encode()


@pytest.mark.parametrize("depth", [500, 900])
def test_tool_parameters_nested_hundreds_deep_are_a_400_naming_the_field(depth: int) -> None:
    with pytest.raises(InvalidJSON) as exc:
        parse_json(_nested(depth))
    assert f"nested deeper than {MAX_DEPTH} levels" in exc.value.message
    assert exc.value.param is not None and exc.value.param.startswith("tools[0].function.parameters")
    assert exc.value.status_code == 400


def test_realistic_nesting_still_parses() -> None:
    assert parse_json(_nested(20))["tools"][0]["function"]["name"] == "f"


def test_a_5000_digit_integer_is_a_400_naming_the_field() -> None:
    raw = b'{"model": "m", "max_tokens": ' + b"9" * 5000 + b', "messages": []}'
    with pytest.raises(InvalidJSON) as exc:
        parse_json(raw)
    assert exc.value.param == "max_tokens"
    assert "5000 digits" in exc.value.message


@pytest.mark.parametrize(("literal", "named"), [
    (b"NaN", "NaN"), (b"Infinity", "Infinity"), (b"-Infinity", "-Infinity"), (b"1e999", "1e999"),
])
def test_nan_and_infinity_never_parse(literal: bytes, named: str) -> None:
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": ' + literal + b"}"
    with pytest.raises(InvalidJSON) as exc:
        parse_json(raw)
    assert exc.value.param == "temperature"
    assert named in exc.value.message


def test_a_lone_surrogate_names_its_field() -> None:
    with pytest.raises(InvalidEncoding) as exc:
        parse_json(b'{"messages": [{"role": "user", "content": "a\\ud800"}]}')
    assert exc.value.param == "messages[0].content"


def test_ordinary_numbers_are_kept() -> None:
    value = parse_json(b'{"seed": -9223372036854775808, "temperature": 0.7, "n": 1e3}')
    assert value == {"seed": -9223372036854775808, "temperature": 0.7, "n": 1000.0}


def test_one_shared_decoder_keeps_no_refusal_from_one_body_to_the_next() -> None:
    with pytest.raises(InvalidRequest):
        parse_json(b'{"a": NaN}')
    assert parse_json(b'{"a": 1, "b": 2.5}') == {"a": 1, "b": 2.5}
    bad, good = b'{"n": ' + b"9" * 50 + b"}", b'{"n": 7}'
    errors: list[str] = []

    def parse_many(body: bytes, refused: bool) -> None:
        for _ in range(300):
            try:
                parse_json(body)
                if refused:
                    errors.append("a refused body passed")
            except InvalidRequest:
                if not refused:
                    errors.append("a good body was refused")

    threads = [threading.Thread(target=parse_many, args=(b, r)) for b, r in ((bad, True), (good, False)) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
