"""Placeholders: consistent per value, restored in whole texts and across split stream chunks."""

from __future__ import annotations

from proxy.pii.analyzer import PiiHit
from proxy.pii.placeholders import EVIDENCE_STYLE, StreamRestorer, TextRestorer, Vault


def test_the_same_value_gets_the_same_numbered_placeholder() -> None:
    vault = Vault()
    text = "a@x.io wrote to b@y.io and a@x.io"
    hits = [PiiHit("EMAIL_ADDRESS", s, s + 6, 1.0) for s in (0, 16, 27)]
    assert vault.replace(text, hits) == "<EMAIL_ADDRESS_1> wrote to <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_1>"
    assert vault.restore("<EMAIL_ADDRESS_2>, <EMAIL_ADDRESS_9>") == "b@y.io, <EMAIL_ADDRESS_9>"
    assert vault.kinds() == {"<EMAIL_ADDRESS_1>": "EMAIL_ADDRESS", "<EMAIL_ADDRESS_2>": "EMAIL_ADDRESS"}


def test_evidence_style_uses_brackets() -> None:
    vault = Vault(EVIDENCE_STYLE)
    assert vault.placeholder("US_SSN", "536-22-8726") == "[US_SSN_1]"


def test_stream_restorer_handles_a_placeholder_split_anywhere() -> None:
    vault = Vault()
    vault.placeholder("EMAIL_ADDRESS", "jane@example.com")
    reply = "Write to <EMAIL_ADDRESS_1> today, not <b>."
    for cut in range(1, len(reply)):
        r = StreamRestorer(vault)
        got = r.feed(reply[:cut]) + r.feed(reply[cut:]) + r.flush()
        assert got == "Write to jane@example.com today, not <b>.", cut


def test_text_restorer_restores_split_text_and_whole_arguments() -> None:
    vault = Vault()
    vault.placeholder("EMAIL_ADDRESS", "jane@example.com")
    rw = TextRestorer(vault)
    assert rw.feed("mail <EMAIL_") + rw.feed("ADDRESS_1> ok <b") + rw.flush() == "mail jane@example.com ok <b"
    assert rw.whole('{"to": "<EMAIL_ADDRESS_1>"}') == '{"to": "jane@example.com"}'
