"""`guardproxy mcp`: review tool-definition pins, and a demo of the gateway.

`pins list` shows every pinned tool and any definition waiting for review; `pins approve
SERVER/TOOL` makes the pending (or poisoned) definition the pin, `pins reject SERVER/TOOL` refuses
it for good. The gateway reads the store on each listing, so a decision applies without a restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from proxy.errors import ConfigError
from proxy.mcp import pins as p
from proxy.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False)
pins_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       help="Tool-definition pins: list, approve, reject.")
app.add_typer(pins_app, name="pins")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file.", exists=True,
                                                dir_okay=False)]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(f"guardproxy: {exc.message}", err=True)
        raise typer.Exit(2) from None


def open_store(settings: Settings) -> p.PinStore:
    try:
        return p.open_store(settings)
    except ConfigError as exc:
        typer.echo(f"guardproxy: {exc.message}", err=True)
        raise typer.Exit(2) from None


@pins_app.command("list")
def list_pins(config: ConfigOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="One JSON object per pin.")] = False) -> None:
    """Every pinned tool, its state, and any changed definition awaiting review."""
    pins = asyncio.run(_all(open_store(_settings(config))))
    if as_json:
        for pin in pins:
            typer.echo(json.dumps(pin.as_dict(), sort_keys=True))
        return
    if not pins:
        typer.echo("no tools pinned yet")
        return
    for pin in sorted(pins, key=lambda x: x.key):
        state = "changed: awaiting review" if pin.pending else pin.state.value
        if pin.pending and pin.pending.findings:
            state += f" (findings: {', '.join(pin.pending.findings)})"
        elif pin.findings:
            state += f" (findings: {', '.join(pin.findings)})"
        typer.echo(f"{pin.key:40} {state:30} {pin.hash[:19]}")
        if pin.pending:
            typer.echo(f"  pinned:  {pin.definition['description'][:200]!r}")
            typer.echo(f"  pending: {pin.pending.definition['description'][:200]!r}  {pin.pending.hash[:19]}")


@pins_app.command("approve")
def approve_pin(key: Annotated[str, typer.Argument(help="SERVER/TOOL")], config: ConfigOpt = None) -> None:
    """Serve the pending (or poisoned) definition of SERVER/TOOL from now on."""
    typer.echo(asyncio.run(_decide(open_store(_settings(config)), key, p.approve, "approved")))


@pins_app.command("reject")
def reject_pin(key: Annotated[str, typer.Argument(help="SERVER/TOOL")], config: ConfigOpt = None) -> None:
    """Refuse the pending definition of SERVER/TOOL for good (it stays withheld)."""
    typer.echo(asyncio.run(_decide(open_store(_settings(config)), key, p.reject, "rejected")))


async def _all(store: p.PinStore) -> list[p.Pin]:
    try:
        return await store.all()
    finally:
        await _close(store)


async def _decide(store: p.PinStore, key: str, decide: Callable[[p.Pin], p.Pin], verb: str) -> str:
    server, _, tool = key.partition("/")
    try:
        pin = await store.get(server, tool)
        if pin is None:
            typer.echo(f"guardproxy: no pin for {key!r} (see guardproxy mcp pins list)", err=True)
            raise typer.Exit(1)
        new = decide(pin)
        await store.put(new)
        return f"{key}: {verb}; pinned {new.hash[:19]}"
    finally:
        await _close(store)


async def _close(store: p.PinStore) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        await close()


@app.command()
def demo() -> None:
    """Run an MCP tool server and the gateway on loopback, and show what the gateway does."""
    from proxy.mcp.demo import run_demo

    raise typer.Exit(run_demo())
