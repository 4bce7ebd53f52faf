"""The `guardproxy` command: serve, simulate, demo, and the rule tooling under `rules`.

A flag wins over the environment, which wins over the config file. Errors in settings are
printed as one precise line and exit 2, never as a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from proxy.attacksim.cli import command as attack_sim_command
from proxy.errors import ConfigError
from proxy.policy.cli import app as policy_app
from proxy.settings import Settings, load_settings

app = typer.Typer(
    help="guardproxy: a guardrail reverse proxy for OpenAI/Anthropic LLM traffic.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML settings file.", exists=True, dir_okay=False)
]


def _settings(config: Path | None, **flags: object) -> Settings:
    try:
        return load_settings(config, **flags)
    except ConfigError as exc:
        typer.echo(f"guardproxy: {exc.message}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    upstream: Annotated[str | None, typer.Option(help="Upstream base URL, e.g. https://api.openai.com/v1.")] = None,
    workers: Annotated[int | None, typer.Option(help="Proxy processes on the port (0: one per core).")] = None,
) -> None:
    """Run the proxy."""
    from proxy import serving

    flags = {"host": host, "port": port, "upstream_url": upstream, "workers": workers}
    settings = _settings(config, **flags)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: a log line per call on the hot path, and URLs in logs.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        serving.run(settings, config, {k: v for k, v in flags.items() if v is not None})
    except ConfigError as exc:
        typer.echo(f"guardproxy: {exc.message}", err=True)
        raise typer.Exit(2) from None


@app.command()
def simulate(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 9100,
    ttft_ms: Annotated[float, typer.Option(help="Delay before the first token.")] = 0.0,
    token_ms: Annotated[float, typer.Option(help="Delay between streamed tokens.")] = 0.0,
) -> None:
    """Run the obedient simulated upstream (OpenAI-compatible)."""
    from proxy.simulator import SimConfig
    from proxy.simulator import serve as serve_sim

    typer.echo(f"simulated upstream on http://{host}:{port}/v1")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_sim(host, port, SimConfig(ttft_ms=ttft_ms, token_ms=token_ms)))


@app.command()
def demo() -> None:
    """Start the simulator and the proxy on free loopback ports and run a scripted conversation."""
    from proxy.demo import run_demo

    raise typer.Exit(run_demo())


def _mount_optional() -> None:
    """Subcommand groups that live with their feature (rules in proxy.rules, review in proxy.evidence)."""
    from proxy.evidence.cli import app as evidence_app
    from proxy.rules.cli import app as rules_app

    app.add_typer(rules_app, name="rules", help="Lint, test, explain and evaluate detection rules.")
    app.add_typer(evidence_app, name="evidence", help="Review evidence bundles: list, show, verify, report.")
    from proxy.mcp.cli import app as mcp_app

    app.add_typer(mcp_app, name="mcp", help="The MCP gateway: tool-definition pins, demo.")


_mount_optional()
app.command("attack-sim")(attack_sim_command)
app.add_typer(policy_app, name="policy", help="Hash client keys and check the policy file.")


def main() -> None:
    app()
