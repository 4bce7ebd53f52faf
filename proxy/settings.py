"""Typed settings, built once from a YAML file plus `GUARDPROXY_*` environment variables.

Precedence, strongest first: explicit overrides (command-line flags), environment, YAML file,
defaults. Unknown keys are an error: a typo in a config file must not silently fall back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from proxy.errors import ConfigError

ENV_PREFIX = "GUARDPROXY_"
# The shipped rules and policy live at the repository root, beside the `proxy` package.
DEFAULT_RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
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


def default_stages() -> list[StageSettings]:
    return [StageSettings(name="limits")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
    )

    upstream_url: str = "http://127.0.0.1:9100/v1"
    upstream_api_key: SecretStr | None = None
    upstream_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    upstream_max_connections: int = Field(default=256, gt=0)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_messages: int = Field(default=2048, gt=0)
    max_input_chars: int = Field(default=1_000_000, gt=0)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    rules_dir: Path = DEFAULT_RULES_DIR
    policy_file: Path | None = None  # default: <rules_dir>/policy.yaml
    stages: list[StageSettings] = Field(default_factory=default_stages)
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
