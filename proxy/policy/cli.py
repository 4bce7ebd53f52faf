"""`guardproxy policy`: hash a client key for the policy file; check a policy file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from proxy.errors import ConfigError
from proxy.policy.loader import load_policy
from proxy.policy.spec import hash_key
from proxy.settings import DEFAULT_RULES_DIR

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("hash-key")
def hash_key_command(key: Annotated[str, typer.Argument(help="The client's API key.")]) -> None:
    """Print the sha256 to put in `key_sha256` (keys are never stored in clear)."""
    typer.echo(hash_key(key))


@app.command("check")
def check(path: Annotated[Path, typer.Argument(help="Policy file.")] = DEFAULT_RULES_DIR / "policy.yaml") -> None:
    """Validate a policy file; exit 1 naming file, line and field on the first problem."""
    if not path.exists():
        typer.echo(f"{path}: not found", err=True)
        raise typer.Exit(1)
    try:
        policy = load_policy(path)
    except ConfigError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{path}: ok ({policy.digest}; {len(policy.clients)} clients, {len(policy.tools)} tools)")
