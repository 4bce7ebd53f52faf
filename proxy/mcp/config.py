"""The `mcp_servers` and `mcp` settings blocks.

A server's `headers` carry its own credentials: they come only from here (never from a client),
are `SecretStr` so no dump or log shows them, and are added to upstream requests last.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class McpServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    url: str
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("an MCP server name is 1-64 letters, digits, '_' or '-' (it is a URL path segment)")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("an MCP server url must start with http:// or https://")
        return v


class McpSettings(BaseModel):
    """How the gateway treats every server (limits, the pin store)."""

    model_config = ConfigDict(extra="forbid")

    # Where first-seen tool definitions are pinned: a JSON file, or PostgreSQL for replicas.
    pins_backend: str = Field(default="files", pattern="^(files|postgres)$")
    pins_path: Path = Path("mcp-pins.json")
    pins_dsn: SecretStr | None = None
    max_message_bytes: int = Field(default=1024 * 1024, gt=0)  # one client POST body
    max_result_bytes: int = Field(default=8 * 1024 * 1024, gt=0)  # one upstream JSON answer or SSE event
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # Longest wait for the upstream's response headers, and the longest silence inside a stream.
    read_timeout_s: float = Field(default=60.0, gt=0)
    max_sessions: int = Field(default=10_000, gt=0)  # mirrored sessions kept (oldest evicted)
    ledger_size: int = Field(default=100_000, gt=0)  # result hashes remembered for chat provenance
