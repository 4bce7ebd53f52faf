"""Builds the ordered pipeline from settings: stage name -> guard factory.

A new guard registers here under its stable name; `stages:` in the config lists, orders,
disables and configures them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from proxy.errors import ConfigError
from proxy.guards.base import Guard
from proxy.guards.limits import LimitsGuard
from proxy.pipeline import Pipeline, Stage
from proxy.settings import Settings, StageSettings

GuardFactory = Callable[[Settings, dict[str, Any]], Guard]


def _limits(settings: Settings, options: dict[str, Any]) -> Guard:
    return LimitsGuard(
        max_messages=int(options.get("max_messages", settings.max_messages)),
        max_input_chars=int(options.get("max_input_chars", settings.max_input_chars)),
        max_tools=int(options.get("max_tools", 128)),
    )


def _lazy(module: str) -> GuardFactory:
    """A guard whose module exposes `build(settings, options)`; imported only when configured."""

    def factory(settings: Settings, options: dict[str, Any]) -> Guard:
        built: Guard = importlib.import_module(module).build(settings, options)
        return built

    return factory


FACTORIES: dict[str, GuardFactory] = {
    "limits": _limits,
    "injection": _lazy("proxy.guards.injection"),
    "pii": _lazy("proxy.guards.pii"),
    "tool_scope": _lazy("proxy.guards.tool_scope"),
    "segregation": _lazy("proxy.guards.segregation"),
    "output_leak": _lazy("proxy.guards.output_leak"),
    "quarantine": _lazy("proxy.guards.quarantine"),
}


def build_pipeline(settings: Settings, extra: dict[str, Guard] | None = None) -> Pipeline:
    """`extra` supplies ready-made guards by name (tests use it for scriptable fakes)."""
    extra = extra or {}
    stages = []
    for stage_settings in settings.stages:
        stages.append(Stage(_make(stage_settings, settings, extra), stage_settings))
    return Pipeline(stages)


def _make(stage: StageSettings, settings: Settings, extra: dict[str, Guard]) -> Guard:
    if stage.name in extra:
        return extra[stage.name]
    factory = FACTORIES.get(stage.name)
    if factory is None:
        known = ", ".join(sorted(FACTORIES))
        raise ConfigError(f"unknown stage {stage.name!r} in settings.stages (known: {known})")
    return factory(settings, stage.options)
