"""Policy files the end-to-end tests share: the mail tools with their scopes, and the clients a test needs."""

from __future__ import annotations

MAIL_TOOLS = """kind: policy
version: 1
tools:
  read_inbox: {scope: read}
  send_email: {scope: side_effect, sensitive_args: [to]}
"""


def mail_policy(*clients: str) -> str:
    """The mail tools and one `clients:` entry per flow-style mapping given (`%s` where a key hash goes)."""
    return MAIL_TOOLS + "clients:\n" + "".join(f"  - {client}\n" for client in clients)
