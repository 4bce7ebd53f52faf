"""`guardproxy evidence checkpoint`, `checkpoint-keygen`, and `verify --checkpoint`: the commands
around signed checkpoints (kept apart from the other evidence commands)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from proxy.errors import ConfigError
from proxy.evidence import checkpoint as cp
from proxy.evidence.store import Store

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def write_checkpoint(store: Store, key: Path, out_file: Path) -> None:
    try:
        checkpoint = cp.make(store, cp.signing_key(key))
    except ConfigError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(2) from exc
    cp.write_file(out_file, checkpoint)
    out.print(f"checkpoint of {store.location} at seq {checkpoint['seq']} ({checkpoint['hash']}) "
              f"signed by {checkpoint['key']}, written to {out_file}")


def keygen(private: Path, public: Path) -> None:
    out.print(f"checkpoint key {cp.generate_keypair(private, public)}: private {private} (for "
              f"evidence.checkpoint_key), public {public} (for reviewers)")


def verify_against(store: Store, checkpoint_file: Path, public_key: Path | None) -> int:
    """0 when the store extends the signed checkpoint; 1 naming why not; 2 on unusable input."""
    if public_key is None:
        err.print("[red]error[/red] --checkpoint needs --public-key FILE (the checkpoint signer's public key)")
        return 2
    try:
        checkpoint = cp.load(checkpoint_file)
        key = cp.verify_key(public_key)
    except ConfigError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        return 2
    problem = cp.signature_problem(checkpoint, key)
    if problem is not None:
        err.print(f"[red]BROKEN[/red] {problem}")
        return 1
    result = cp.extends(store, checkpoint)
    if not result.ok:
        err.print(f"[red]BROKEN[/red] store does not extend the checkpoint of {checkpoint['time']}: {result.reason}")
        return 1
    out.print(f"OK: {result.bundles} bundle(s), chain intact; {result.reason}, signed {checkpoint['time']} "
              f"by {checkpoint['key']} ({store.location})")
    return 0
