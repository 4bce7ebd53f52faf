"""`guardproxy rules ...`: lint, test, explain and evaluate detection rules from a terminal.

A `typer.Typer()` named `app`; the main CLI mounts it as `rules`. Every command takes the rules
directory to use, so a candidate set can be checked before it is dropped into the live one.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from proxy.errors import ConfigError
from proxy.model import Trust
from proxy.rules.checks import lint as lint_dir
from proxy.rules.checks import run_examples
from proxy.rules.evaluate import WORST, Report, Sample, evaluate, read_corpus
from proxy.rules.store import Live, RuleStore
from proxy.settings import DEFAULT_RULES_DIR

app = typer.Typer(help="Lint, test, explain and evaluate detection rules.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

RulesPath = Annotated[Path, typer.Argument(help="rules directory (default: the shipped set)")]
RulesOption = Annotated[
    Path, typer.Option("--rules", help="rules directory (default: the shipped set)", show_default=False)
]


class TrustChoice(StrEnum):
    user = "user"
    untrusted = "untrusted"
    trusted = "trusted"


class Format(StrEnum):
    table = "table"
    json = "json"


def _live(path: Path) -> Live:
    store = RuleStore(path)
    try:
        store.load()
    except ConfigError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(2) from exc
    return store.live


@app.command()
def lint(
    path: RulesPath = DEFAULT_RULES_DIR,
    strict: Annotated[bool, typer.Option(help="warnings fail too")] = False,
) -> None:
    """Schema, duplicate ids, patterns that compile under RE2, unsafe constructs, expiries."""
    ruleset, problems = lint_dir(path)
    for p in problems:
        colour = "red" if p.level == "error" else "yellow"
        out.print(f"[{colour}]{p.level}[/{colour}] {p.where}: {p.message}")
    errors = sum(p.level == "error" for p in problems)
    warnings = len(problems) - errors
    if ruleset is not None:
        out.print(f"{len(ruleset.rules)} rules, {len(ruleset.suppressions)} suppressions, "
                  f"set {ruleset.digest}: {errors} errors, {warnings} warnings")
    if errors or (strict and warnings):
        raise typer.Exit(1)


@app.command()
def test(path: RulesPath = DEFAULT_RULES_DIR) -> None:
    """Run every rule's inline `match` / `no_match` examples through the engine."""
    live = _live(path)
    results = run_examples(live.engine)
    failed = [r for r in results if not r.ok]
    for r in failed:
        want = "should match" if r.expect_match else "should not match"
        out.print(f"[red]FAIL[/red] {r.where} {r.rule_id} ({r.trust}) {want}: {r.text!r}"
                  f" -> fired {list(r.fired)}")
    out.print(f"{len(results) - len(failed)}/{len(results)} examples pass ({live.ruleset.digest})")
    if failed:
        raise typer.Exit(1)


@app.command()
def explain(
    text: str,
    trust: Annotated[TrustChoice, typer.Option(help="trust the text is read at")] = TrustChoice.user,
    rules: RulesOption = DEFAULT_RULES_DIR,
    signals: Annotated[bool, typer.Option(help="also show signal-only rules")] = False,
) -> None:
    """Every rule that fires on TEXT, with spans, the matched text and how it was decoded."""
    live = _live(rules)
    hits = live.engine.scan(text, Trust(trust.value), include_signals=signals)
    _explain_learned(live, text, Trust(trust.value))
    if not hits:
        out.print(f"no rule fires ({live.ruleset.digest}, trust {trust.value})")
        return
    out.print(f"{len(hits)} hit(s), rule set {live.ruleset.digest}, trust {trust.value}")
    for h in hits:
        mode = h.rule.mode if h.rule.emit else "signal"
        out.print(f"[bold]{escape(h.rule.id)}[/bold] {h.rule.severity} {mode} ({escape(h.rule.category)}) "
                  f"span {h.start}:{h.end} via {escape('+'.join(h.decoding))}")
        # The scanned text is the attacker's: print it as it matched, never as rich markup.
        out.print(f"  matched:  {text[h.start : h.end][:160]!r}", markup=False)
        if h.decoded:
            out.print(f"  decoded:  {h.decoded!r}", markup=False)
        out.print(f"  sentence: {h.excerpt!r}", markup=False)


def _explain_learned(live: Live, text: str, trust: Trust) -> None:
    """The learned score of TEXT at `trust`, its best window and the words that drove it."""
    explained = live.engine.explain_learned(text, trust)
    if explained is None:
        return
    score, words = explained
    out.print(f"learned score {score.probability:.3f} (margin {score.margin:+.3f}), best window "
              f"{score.span[0]}:{score.span[1]}; words weighing most (as normalised, span in TEXT):")
    for w in words:
        out.print(f"  {w.weight:+.4f}  {w.text!r} at {w.span[0]}:{w.span[1]}", markup=False)


@app.command("eval")
def eval_(
    corpus: Annotated[Path, typer.Option("--corpus", help="JSONL: text, label, vector")],
    rules: RulesOption = DEFAULT_RULES_DIR,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
    loso: Annotated[bool, typer.Option(
        "--loso", help="leave one source out: retrain the learned layer without each source, test on it")] = False,
    examples: Annotated[Path | None, typer.Option(
        help="extra labelled JSONL always trained on in --loso (the team's examples)")] = None,
    kind: Annotated[str, typer.Option(help="learned model class for --loso: nb | lr")] = "nb",
) -> None:
    """Precision, recall and FPR overall and per vector; per-rule hits; worst mistakes.

    With --loso: for each corpus source, the learned layer is trained without it and the
    source is judged by rules, model and both; figures per held-out source and vector.
    """
    live = _live(rules)
    try:
        samples = list(read_corpus(corpus))
    except ConfigError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(2) from exc
    if loso:
        _eval_loso(live, samples, examples, kind, fmt)
        return
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True) as bar:
        task = bar.add_task("eval", total=len(samples))
        report = evaluate(live, samples, lambda: bar.advance(task))
    if fmt is Format.json:
        typer.echo(json.dumps({"ruleset": live.ruleset.digest, **report.as_dict()}, indent=2))
        return
    _print_report(report, live.ruleset.digest)


def _eval_loso(live: Live, samples: list[Sample], examples: Path | None, kind: str, fmt: Format) -> None:
    from proxy.detect import loso, train

    if kind not in ("lr", "nb"):
        err.print(f"[red]error[/red] --kind must be lr or nb, not {kind!r}")
        raise typer.Exit(2)
    if not any(s.source for s in samples):
        err.print("[red]error[/red] --loso needs corpus ids of the form <source>-<ben|inj>-<hash>")
        raise typer.Exit(2)
    team = train.read_jsonl(examples, team=True) if examples else []
    report = loso.run(live.ruleset, samples, team, kind, lambda s: err.print(f"fold: without {s}"))
    data = report.as_dict()
    if fmt is Format.json:
        typer.echo(json.dumps({"ruleset": live.ruleset.digest, "kind": kind, **data}, indent=2))
        return
    out.print(loso_table(data, f"leave one source out, rule set {live.ruleset.digest}, model {kind}"))


def loso_table(data: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    for column in ("held out", "vector", "inj", "ben", "rules rec/fpr", "model rec/fpr", "both rec/fpr"):
        table.add_column(column, justify="left" if column in ("held out", "vector") else "right")

    def cells(row: dict[str, Any]) -> list[str]:
        c = row["combined"]
        counts = [str(c["tp"] + c["fn"]), str(c["fp"] + c["tn"])]
        return counts + [f"{row[d]['recall']:.3f} / {row[d]['fpr']:.3f}" for d in ("rules", "model", "combined")]

    for row in data["held_out"]:
        table.add_row(row["source"], row["vector"], *cells(row))
    for vector, row in data["pooled"].items():
        table.add_row("[bold]all (pooled)[/bold]", vector, *cells(row))
    return table


@app.command()
def train(
    corpus: Annotated[Path, typer.Option("--corpus", help="JSONL: id, text, label, vector")],
    examples: Annotated[Path | None, typer.Option(help="the team's labelled examples (JSONL)")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="weights file (default: the packaged one)")] = None,
    report: Annotated[Path | None, typer.Option(help="write the training report (markdown) here")] = None,
    kind: Annotated[str, typer.Option(help="model class: nb | lr")] = "nb",
    rules: RulesOption = DEFAULT_RULES_DIR,
) -> None:
    """Train the learned layer (deterministic), calibrate it out of fold, write weights and report."""
    from proxy.detect import report as training_report

    live = _live(rules)
    try:
        samples = list(read_corpus(corpus))
    except ConfigError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(2) from exc
    text = training_report.build(live, samples, examples, out_path, kind, lambda m: err.print(m))
    if report is not None:
        report.write_text(text, encoding="utf-8")
    out.print(text)


@app.command()
def replay(
    evidence: Annotated[str, typer.Option("--evidence", help="Evidence store: a directory or postgresql:// DSN.")],
    rules: RulesOption = DEFAULT_RULES_DIR,
) -> None:
    """Candidate rules over stored evidence: which exchanges would flip, with excerpts."""
    from proxy.evidence.replay import run

    code, text = run(evidence, rules)
    typer.echo(text, err=code != 0)
    raise typer.Exit(code)


def _print_report(report: Report, digest: str) -> None:
    data = report.as_dict()
    table = Table(title=f"rule set {digest}")
    for column in ("scope", "tp", "fp", "tn", "fn", "precision", "recall", "fpr"):
        table.add_column(column, justify="right" if column != "scope" else "left")
    rows = [("overall", data["overall"]), *data["by_vector"].items()]
    for name, m in rows:
        table.add_row(name, *(str(m[k]) for k in ("tp", "fp", "tn", "fn", "precision", "recall", "fpr")))
    out.print(table)
    per_rule = Table(title="per rule (samples hit)")
    for column in ("rule", "hits", "tp", "fp"):
        per_rule.add_column(column)
    for rule_id, s in sorted(data["rules"].items(), key=lambda kv: -kv[1]["hits"]):
        per_rule.add_row(rule_id, str(s["hits"]), str(s["tp"]), str(s["fp"]))
    out.print(per_rule)
    for title, misses in (("worst false positives", data["worst_false_positives"]),
                          (f"false negatives (first {WORST})", data["worst_false_negatives"])):
        out.print(f"[bold]{title}[/bold]")
        for m in misses:
            out.print(f"  {m['id']} [{m['vector']}] {','.join(m['rules']) or '-'}: {m['excerpt']!r}")
