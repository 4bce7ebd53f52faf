"""`guardproxy evidence ...`: list, show, verify, export, report, label and corpus for reviewers.

Every command takes `--store` (a directory, or a postgresql:// URL); the default is the
configured store (`GUARDPROXY_EVIDENCE_DIR`, else `evidence/`). Exit codes: 0 fine, 1 the
check failed (verify), 2 bad input (unknown id, unreadable key, no such store).
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from proxy.errors import ConfigError
from proxy.evidence import checkpoint_cli
from proxy.evidence import report as report_mod
from proxy.evidence.chain import Link, Problem, verify
from proxy.evidence.export import ExportError, check_export, write_export
from proxy.evidence.render import print_bundle
from proxy.evidence.seal import generate_keypair, open_sealed
from proxy.evidence.store import Filters, Label, Store, open_store

app = typer.Typer(help="Review evidence bundles: list, show, verify, export, report, label.",
                  no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def default_store() -> str:
    """The store the proxy is configured with (environment), else `evidence/`."""
    if os.environ.get("GUARDPROXY_EVIDENCE__BACKEND") == "postgres" and os.environ.get("GUARDPROXY_EVIDENCE__DSN"):
        return os.environ["GUARDPROXY_EVIDENCE__DSN"]
    return os.environ.get("GUARDPROXY_EVIDENCE_DIR") or "evidence"


StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="evidence directory or postgresql:// URL (default: the configured store from "
    "$GUARDPROXY_EVIDENCE_DIR, or $GUARDPROXY_EVIDENCE__DSN with the postgres backend; else evidence/)")]


class Verdict(StrEnum):
    true_positive = "true_positive"  # an injection
    false_positive = "false_positive"  # benign
    needs_rule = "needs_rule"  # an injection the rules missed or under-rated: write a rule for it


INJECTION_VERDICTS = (Verdict.true_positive, Verdict.needs_rule)


def _open(store: str | None, must_exist: bool = True) -> Store:
    location = store or default_store()
    if must_exist and "://" not in location and not (Path(location) / "index.sqlite").exists():
        err.print(f"[red]error[/red] no evidence store at {location}")
        raise typer.Exit(2)
    try:
        return open_store(location)
    except ConfigError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(2) from exc


def _bundle(s: Store, evidence_id: str) -> dict[str, Any]:
    data = s.get(evidence_id)
    if data is None:
        err.print(f"[red]error[/red] no bundle {evidence_id} in {s.location}")
        raise typer.Exit(2)
    loaded: dict[str, Any] = json.loads(data)
    return loaded


@app.command("list")
def list_(
    store: StoreOpt = None,
    since: Annotated[str | None, typer.Option(help="ISO time, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time, inclusive")] = None,
    client: Annotated[str | None, typer.Option()] = None,
    severity: Annotated[str | None, typer.Option(help="at least: low|medium|high|critical")] = None,
    rule: Annotated[str | None, typer.Option(help="rule id, or a prefix ending in '.'")] = None,
    vector: Annotated[str | None, typer.Option(help="direct|indirect|other")] = None,
    source: Annotated[str | None, typer.Option(help="substring of an untrusted source")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Bundles, newest first, filtered."""
    s = _open(store)
    rows = s.rows(Filters(since, until, client, severity, rule, vector, source, limit))
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], ensure_ascii=False))
        return
    header = ("ID", "TIME", "CLIENT", "SEVERITY", "ACTION", "KEPT", "RULES", "SOURCES")
    cells = [(r.id, r.time, r.client, r.severity or "-", r.action, r.kept, ",".join(r.rules) or "-",
              ",".join(r.sources)) for r in rows]
    widths = [max(len(x) for x in column) for column in zip(header, *cells, strict=True)]
    for line in (header, *cells):  # plain text, one bundle a line (grep/awk-able); never rich markup
        typer.echo("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())
    err.print(f"{len(rows)} bundle(s) from {s.location}")


@app.command()
def show(
    evidence_id: str,
    store: StoreOpt = None,
    reveal: Annotated[bool, typer.Option("--reveal", help="open the sealed raw copy")] = False,
    key: Annotated[Path | None, typer.Option("--key", help="reviewer private key file")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One bundle, readable: segments by trust with findings highlighted, decisions, timings."""
    b = _bundle(_open(store), evidence_id)
    if reveal:
        _reveal(b, key)
        return
    if as_json:
        typer.echo(json.dumps(b, indent=2, ensure_ascii=False))
        return
    print_bundle(out, b)


def _reveal(b: dict[str, Any], key: Path | None) -> None:
    if key is None:
        err.print("[red]error[/red] --reveal needs --key FILE (the reviewer's private key)")
        raise typer.Exit(2)
    if not b.get("sealed"):
        err.print("[red]error[/red] this bundle has no sealed raw copy (no seal key was configured)")
        raise typer.Exit(2)
    try:
        opened = open_sealed(b["sealed"], key)
    except ConfigError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(opened, indent=2, ensure_ascii=False))


def _problem_line(p: Problem) -> str:
    return f"seq {p.seq} {p.id}: {p.message}"


@app.command("verify")
def verify_(
    store: StoreOpt = None,
    export: Annotated[Path | None, typer.Option("--export", help="verify an export file instead")] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="a signed checkpoint the store must extend (kept apart from the store)")] = None,
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="the checkpoint signer's public key")] = None,
) -> None:
    """Check the whole chain and every hash; exit 1 naming the first broken link. With
    --checkpoint, also that the store still holds the signed head and reaches at least as far."""
    if export is not None:
        raise typer.Exit(_verify_export(export, public_key))
    if checkpoint is not None:
        raise typer.Exit(checkpoint_cli.verify_against(_open(store), checkpoint, public_key))
    s = _open(store)
    anchor = s.anchor()
    seen: list[int] = []

    def counted() -> Iterator[Link]:
        for item in s.links():
            seen.append(item.seq)
            yield item

    problems = list(verify(counted(), anchor))
    count = len(seen)
    for extra in s.extras():
        err.print(f"[yellow]warning[/yellow] {extra}: not in the index (an interrupted write); not part of the chain")
    if problems:
        first = problems[0]
        err.print(f"[red]BROKEN[/red] first broken link: {_problem_line(first)}")
        for p in problems[1:20]:
            err.print(f"  also: {_problem_line(p)}")
        raise typer.Exit(1)
    start = f" from anchor seq {anchor[0]}" if anchor else ""
    out.print(f"OK: {count} bundle(s){start}, chain intact ({s.location})")


@app.command()
def export(
    ids: Annotated[list[str], typer.Argument(help="evidence ids")],
    out_file: Annotated[Path, typer.Option("--out", help="zip file to write")],
    store: StoreOpt = None,
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="the latest signed checkpoint to carry (default: $GUARDPROXY_EVIDENCE__CHECKPOINT_FILE)")
    ] = None,
) -> None:
    """Bundles plus a manifest of their hashes (and the latest checkpoint), in one zip that verifies offline."""
    configured = os.environ.get("GUARDPROXY_EVIDENCE__CHECKPOINT_FILE")
    checkpoint = checkpoint or (Path(configured) if configured else None)
    try:
        count = write_export(_open(store), ids, out_file, checkpoint)
    except ExportError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from exc
    out.print(f"exported {count} bundle(s) to {out_file}; "
              f"check with: guardproxy evidence verify --export {out_file}")


def _verify_export(path: Path, public_key: Path | None = None) -> int:
    try:
        count, problems = check_export(path, public_key)
    except ExportError as exc:
        err.print(f"[red]error[/red] {exc}")
        return 2
    for problem in problems:
        err.print(f"[red]BROKEN[/red] {problem}")
    if problems:
        return 1
    out.print(f"OK: {count} bundle(s) in {path} match their manifest and content hashes")
    return 0


@app.command()
def report(
    ids: Annotated[list[str], typer.Argument(help="evidence ids of one incident")],
    store: StoreOpt = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="write the Markdown here")] = None,
) -> None:
    """A Markdown incident report pre-filled in the playbook's post-mortem shape."""
    s = _open(store)
    bundles = [_bundle(s, i) for i in ids]
    labels = {k: v.verdict for k, v in s.labels().items()}
    text = report_mod.render(bundles, labels)
    if out_file is None:
        typer.echo(text, nl=False)
    else:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"wrote {out_file}")


@app.command()
def label(
    evidence_id: str,
    verdict: Verdict,
    note: Annotated[str, typer.Option("--note")] = "",
    reviewer: Annotated[str | None, typer.Option("--reviewer")] = None,
    store: StoreOpt = None,
) -> None:
    """Record a reviewer verdict beside the bundle (the sealed bundle itself never changes)."""
    s = _open(store)
    _bundle(s, evidence_id)
    s.label(Label(evidence_id, verdict.value, note, reviewer or getpass.getuser(),
                  datetime.now(UTC).isoformat(timespec="seconds")))
    out.print(f"{evidence_id}: {verdict.value}")


@app.command()
def corpus(
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file for `guardproxy rules eval --corpus`")],
    store: StoreOpt = None,
) -> None:
    """Labelled bundles as a regression corpus (text, label injection|benign, vector)."""
    s = _open(store)
    lines = []
    for evidence_id, lab in sorted(s.labels().items()):
        data = s.get(evidence_id)
        if data is not None:
            lines += corpus_lines(json.loads(data), lab.verdict)
    out_file.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    out.print(f"wrote {len(lines)} sample(s) to {out_file}")


def corpus_lines(b: dict[str, Any], verdict: str) -> list[dict[str, str]]:
    """The flagged segments of a labelled bundle (or, unflagged, every user/untrusted one)."""
    label_ = "injection" if verdict in INJECTION_VERDICTS else "benign"
    vectors: dict[int, str] = {}
    for f in b.get("findings", []):
        if f.get("detector") != "pii" and f.get("vector") in ("direct", "indirect"):
            vectors.setdefault(f["segment_index"], f["vector"])
    if not vectors:
        trust_vector = {"user": "direct", "untrusted": "indirect"}
        vectors = {s["index"]: trust_vector[s["trust"]] for s in b.get("segments", []) if s["trust"] in trust_vector}
    segs = {s["index"]: s for s in b.get("segments", [])}
    return [{"id": f"{b['id']}:{i}", "text": segs[i]["text"], "label": label_, "vector": v}
            for i, v in sorted(vectors.items()) if i in segs]


@app.command()
def prune(
    store: StoreOpt = None,
    older_than_days: Annotated[float | None, typer.Option()] = None,
    max_mb: Annotated[float | None, typer.Option()] = None,
) -> None:
    """Retention: drop the oldest bundles; the rest still verifies from the recorded anchor."""
    s = _open(store)
    before = None
    if older_than_days is not None:
        from datetime import timedelta

        before = (datetime.now(UTC) - timedelta(days=older_than_days)).isoformat(timespec="milliseconds")
    result = s.prune(before, int(max_mb * 1024 * 1024) if max_mb is not None else None)
    out.print(f"removed {result.removed} bundle(s), {result.freed_bytes} bytes; anchor {result.anchor}")


@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="address to bind; loopback unless you mean otherwise")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8090,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (serve HTTPS directly)")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key")] = None,
) -> None:
    """The review console: a web UI over the store for reviewers holding $GUARDPROXY_REVIEW_TOKEN."""
    from proxy.console.auth import TOKEN_ENV, token_problem

    token = os.environ.get(TOKEN_ENV)
    problem = token_problem(token)
    if problem or token is None:
        err.print(f"[red]error[/red] {problem}")
        raise typer.Exit(2)
    s = _open(store)
    if host not in ("127.0.0.1", "::1", "localhost") and ssl_certfile is None:
        err.print(f"[yellow]warning[/yellow] serving on {host} without TLS: browsers keep the Secure session "
                  "cookie only over HTTPS (or on localhost); put a TLS proxy in front or pass --ssl-certfile")
    import uvicorn

    from proxy.console.server import config

    err.print(f"review console for {s.location} on http{'s' if ssl_certfile else ''}://{host}:{port}/")
    try:
        uvicorn.Server(config(s, token, host, port, ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                              ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)).run()
    finally:
        s.close()


@app.command()
def keygen(
    private: Annotated[Path, typer.Option("--private", help="private key file (keep it off the proxy)")],
    public: Annotated[Path, typer.Option("--public", help="public key file for evidence.seal_public_key")],
) -> None:
    """A reviewer key pair for sealed raw copies."""
    out.print(f"key {generate_keypair(private, public)}: private {private}, public {public}")


@app.command("checkpoint")
def checkpoint_(
    key: Annotated[Path, typer.Option("--key", help="the Ed25519 signing key (private)")],
    out_file: Annotated[Path, typer.Option("--out", help="where to write the checkpoint (apart from the store)")],
    store: StoreOpt = None,
) -> None:
    """Sign the store's current head: a checkpoint later `verify --checkpoint` holds the store to."""
    checkpoint_cli.write_checkpoint(_open(store), key, out_file)


@app.command("checkpoint-keygen")
def checkpoint_keygen(
    private: Annotated[Path, typer.Option("--private", help="signing key file (the proxy's)")],
    public: Annotated[Path, typer.Option("--public", help="public key file (the reviewers')")],
) -> None:
    """An Ed25519 key pair for signed checkpoints."""
    checkpoint_cli.keygen(private, public)
