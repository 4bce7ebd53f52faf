"""Typed settings, built once from a YAML file plus `GUARDPROXY_*` environment variables.

Precedence, strongest first: explicit overrides (command-line flags), environment, YAML file,
defaults. Unknown keys are an error: a typo in a config file must not silently fall back.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from proxy.errors import ConfigError
from proxy.mcp.config import McpServer, McpSettings

ENV_PREFIX = "GUARDPROXY_"


def _shipped_rules_dir() -> Path:
    """The shipped rules and policy: `rules/` beside the package in a checkout (or editable
    install), else the copy a wheel installs under `<prefix>/share/guardproxy/rules`."""
    checkout = Path(__file__).resolve().parents[1] / "rules"
    installed = Path(sys.prefix) / "share" / "guardproxy" / "rules"
    return installed if not checkout.is_dir() and installed.is_dir() else checkout


DEFAULT_RULES_DIR = _shipped_rules_dir()
FailureMode = Literal["closed", "open"]


class StageSettings(BaseModel):
    """One entry of the ordered pipeline."""

    model_config = ConfigDict(extra="forbid")

    name: str
    enabled: bool = True
    timeout_s: float = Field(default=2.0, gt=0)
    # closed: the guard failing blocks the request (503 guardrail_unavailable); open: it passes,
    # recorded as "not scanned". Closed is the default: a broken guard must not look like a pass.
    failure_mode: FailureMode = "closed"
    options: dict[str, Any] = Field(default_factory=dict)


class TimeoutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connect_s: float = Field(default=5.0, gt=0)
    # Longest wait for the upstream's response headers (a non-streamed completion is only
    # complete when the whole body arrives, so this bounds the whole model call there).
    read_s: float = Field(default=120.0, gt=0)
    # Longest silence between two chunks of a stream.
    stream_idle_s: float = Field(default=60.0, gt=0)
    # Longest a client may take to send its request body.
    client_body_s: float = Field(default=15.0, gt=0)


class HttpSettings(BaseModel):
    """Limits on the raw HTTP connection, enforced before the app sees a request (http_limits.py)."""

    model_config = ConfigDict(extra="forbid")

    # The request line plus all headers; SDKs send well under 2 KB. Past it: 431, connection closed.
    max_header_bytes: int = Field(default=32 * 1024, gt=0)
    max_header_count: int = Field(default=100, gt=0)
    # From a connection's first byte (or its opening) to the end of the headers: slow or stalled
    # heads are closed with 408 instead of holding a connection and its buffers.
    header_timeout_s: float = Field(default=10.0, gt=0)
    # A kept-alive connection idle this long between requests is closed.
    keep_alive_idle_s: float = Field(default=5.0, gt=0)


class AdmissionSettings(BaseModel):
    """Per-upstream admission control: the fast levers of the latency runbook (see README)."""

    model_config = ConfigDict(extra="forbid")

    # Requests in flight to the upstream at once; None: upstream_max_connections (a limit above
    # the pool size would let requests wait in the pool, invisibly counted as upstream time).
    max_concurrency: int | None = Field(default=None, gt=0)
    max_queue: int = Field(default=256, ge=0)  # waiters beyond this are shed at once
    max_wait_s: float = Field(default=10.0, gt=0)  # a waiter older than this is shed
    max_input_chars: int | None = Field(default=None, gt=0)
    max_input_tokens: int | None = Field(default=None, gt=0)  # estimated: chars / chars_per_token
    chars_per_token: float = Field(default=4.0, gt=0)
    shed_status: Literal[429, 503] = 429
    retry_after_s: int = Field(default=1, ge=1)
    # Client name (policy) -> priority; higher is served first and may evict lower when full.
    priority: dict[str, int] = Field(default_factory=dict)


class EvidenceSettings(BaseModel):
    """Evidence bundles (format: evidence/README.md). The store's directory is `evidence_dir`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    backend: Literal["files", "postgres"] = "files"
    dsn: SecretStr | None = None  # postgres backend: postgresql://user@host:5432/db
    # Share of clean exchanges kept too (flagged ones always are): the false-positive baseline.
    sample_rate: float = Field(default=0.01, ge=0, le=1)
    queue_size: int = Field(default=10_000, gt=0)  # background writes waiting; overflow is counted
    retention_days: float | None = Field(default=None, gt=0)
    retention_max_mb: float | None = Field(default=None, gt=0)
    seal_public_key: Path | None = None  # reviewer's key: a sealed raw copy rides in each bundle
    redact_pii: bool = True  # credentials are scrubbed regardless
    pii_entities: list[str] = Field(
        default_factory=lambda: ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE",
                                 "IP_ADDRESS", "US_SSN", "CRYPTO"]
    )
    pii_threshold: float = Field(default=0.3, ge=0, le=1)
    # Signed checkpoints of the chain's head, kept apart from the store (evidence/checkpoint.py):
    # the Ed25519 private key, and where they go besides the log (a file elsewhere, PostgreSQL).
    checkpoint_key: Path | None = None
    checkpoint_file: Path | None = None
    checkpoint_dsn: SecretStr | None = None
    checkpoint_interval_s: float = Field(default=60.0, gt=0)


class StreamSettings(BaseModel):
    """How streamed output is held back for the output guards (see proxy/streaming/holdback.py)."""

    model_config = ConfigDict(extra="forbid")

    # Characters kept back behind the newest text while output guards stream: a finding split
    # across chunks is caught before the text completing it leaves. Only applies when a
    # streaming output guard is configured; each held character delays the first token.
    holdback_chars: int = Field(default=32, ge=0)
    # Most text held for an output guard (an inspector answering "hold", or a stage without a
    # stream inspector that judges the whole turn, e.g. pii block/mask); past it the stream stops.
    max_hold_chars: int = Field(default=4096, gt=0)


class ResponseStateSettings(BaseModel):
    """What the proxy remembers per Responses API response, so `previous_response_id` keeps taint."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["memory", "redis", "postgres"] = "memory"  # redis / postgres: shared by replicas
    url: SecretStr | None = None  # redis://host:6379/0 or postgresql://user@host:5432/db
    ttl_s: float = Field(default=30 * 24 * 3600, gt=0)  # how long a response can be continued
    max_entries: int = Field(default=100_000, gt=0)  # memory backend: least recently used go first
    max_chars: int = Field(default=500_000, gt=0)  # per response; older text collapses to "untrusted"

    @model_validator(mode="after")
    def _url_for_shared(self) -> ResponseStateSettings:
        if self.backend != "memory" and self.url is None:
            raise ValueError(f"response_state.backend {self.backend!r} needs response_state.url")
        return self


DEFAULT_STAGES = ("limits", "quarantine", "injection", "tool_scope", "segregation", "output_leak")


def default_stages() -> list[StageSettings]:
    """The default pipeline, in order: cheap refusals first, detection before the stages that act on it."""
    # Quarantine is a rate limit: an unreachable Redis must not take the proxy down, so it fails
    # open (recorded as not scanned). Everything else fails closed.
    return [StageSettings(name=name, failure_mode="open" if name == "quarantine" else "closed")
            for name in DEFAULT_STAGES]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
    )

    upstream_url: str = "http://127.0.0.1:9100/v1"
    anthropic_upstream_url: str | None = None  # base URL for /v1/messages; default: upstream_url
    upstream_api_key: SecretStr | None = None
    upstream_transport: Literal["auto", "asyncio", "pyreqwest", "aiohttp", "httpx"] = "auto"
    upstream_max_connections: int = Field(default=256, gt=0)
    host: str = "127.0.0.1"
    # With no client keys in the policy, anyone who reaches the proxy spends the upstream key:
    # serving a non-loopback address that way must be asked for by name.
    allow_unauthenticated: bool = False
    openapi: bool = False  # /openapi.json describes every route; off unless wanted
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=0, le=64)  # proxy processes on one port; 0: one per core
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    allowed_models: list[str] = Field(default_factory=list)  # empty: any model the upstream serves
    max_messages: int = Field(default=2048, gt=0)
    max_input_chars: int = Field(default=1_000_000, gt=0)
    # A request shape no adapter can read (an unknown content block, remote MCP servers ...):
    # refused with a 400 naming it, or passed unread and recorded as not inspected.
    unknown_shapes: Literal["refuse", "pass_uninspected"] = "refuse"
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    rules_dir: Path = DEFAULT_RULES_DIR
    policy_file: Path | None = None  # default: <rules_dir>/policy.yaml
    stages: list[StageSettings] = Field(default_factory=default_stages)
    evidence_dir: Path = Path("evidence")  # GUARDPROXY_EVIDENCE_DIR
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    response_state: ResponseStateSettings = Field(default_factory=ResponseStateSettings)
    mcp_servers: list[McpServer] = Field(default_factory=list)  # served at /mcp/{name}
    mcp: McpSettings = Field(default_factory=McpSettings)
    log_level: str = "info"

    @property
    def policy_path(self) -> Path:
        return self.policy_file or self.rules_dir / "policy.yaml"

    @field_validator("upstream_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("upstream_url must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("anthropic_upstream_url")
    @classmethod
    def _strip_anthropic_slash(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("anthropic_upstream_url must start with http:// or https://")
        return v.rstrip("/") if v is not None else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


class _YamlSettings(Settings):
    """Settings whose lowest-priority source is a YAML mapping."""

    yaml_data: ClassVar[dict[str, Any]] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_source = InitSettingsSource(settings_cls, init_kwargs=cls.yaml_data)
        return init_settings, env_settings, yaml_source


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the one Settings object: flags (overrides) > environment > YAML > defaults."""
    data = _read_yaml(config) if config else {}
    flags = {k: v for k, v in overrides.items() if v is not None}
    source = type("_Loaded", (_YamlSettings,), {"yaml_data": data})
    try:
        loaded = source(**flags)
    except ValidationError as exc:
        where = f" (config {config})" if config else ""
        raise ConfigError(f"invalid settings{where}: {_describe(exc)}") from exc
    return Settings.model_validate(loaded.model_dump())


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
