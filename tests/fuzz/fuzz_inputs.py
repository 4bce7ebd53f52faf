"""Fuzz target (atheris): request bodies through the body reader's parser and both adapters'
parse -> render, and text through the rule normaliser and engine.

Anything but our own documented errors is a crash. Run directly for a bounded time:
    python tests/fuzz/fuzz_inputs.py -max_total_time=30
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports():
    from proxy.body import parse_json
    from proxy.errors import GuardProxyError
    from proxy.providers import openai_chat
    from proxy.providers.markup import split_marked

try:  # the Anthropic adapter, when present
    with atheris.instrument_imports():
        from proxy.providers import anthropic_messages
except ImportError:  # pragma: no cover
    anthropic_messages = None  # type: ignore[assignment]


def one_input(data: bytes) -> None:
    try:
        body = parse_json(data)
    except GuardProxyError:
        return
    for adapter in (openai_chat, anthropic_messages):
        if adapter is None:
            continue
        try:
            conv = adapter.parse(body)
        except GuardProxyError:
            continue
        json.dumps(adapter.render(conv))  # what is forwarded must serialise
    text = data.decode("utf-8", "replace")
    pieces = split_marked(text)
    assert sum(len(p.text) for p in pieces) <= len(text)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
