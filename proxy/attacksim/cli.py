"""`guardproxy attack-sim`: every (user task x injection) pair through a real proxy and simulator.

Prints attack success rate and utility, overall, per suite and per class (benign classes: utility;
attack classes: attack success and the user's task done despite the attack), with every benign task
that was blocked and why. `--format json` gives {"asr", "utility", "utility_under_attack", "pairs",
"by_suite", "by_class", "approvals", ...}.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from proxy.attacksim.runner import Report, run_suites
from proxy.attacksim.scenarios import load_suites, policy_yaml
from proxy.settings import load_settings


def stages(detect: bool) -> list[dict[str, Any]]:
    # The default pipeline without quarantine (every pair replays a known payload: it would lock the
    # key out); output_leak judges the answer itself, where answer steering lands.
    names = ["limits", "injection", "tool_scope", "segregation", "output_leak"]
    return [{"name": n} for n in names if detect or n != "injection"]


def simulate(*, detect: bool, taint_mode: str, suites: list[str] | None, limit: int | None,
             progress: Any = None, api: str = "openai", approve: bool = False) -> Report:
    # The SDKs, the proxy and the simulator are imported here, not at module level: every other
    # `guardproxy` command would otherwise pay their import (about 2 s) at start-up.
    import anthropic
    import openai

    from proxy import serving
    from proxy.attacksim.agents import Agent, AnthropicAgent, OpenAIAgent, ResponsesAgent
    from proxy.simulator import start_in_thread as start_simulator

    loaded = load_suites(suites)
    if not loaded:
        raise typer.BadParameter(f"no such suite: {suites}")
    report = Report()
    sim = start_simulator()
    try:
        # One proxy per suite, each with its own policy: suites may declare the same tool name
        # differently (a merged catalogue would judge one suite's calls by another's rules).
        for suite in loaded:
            with tempfile.TemporaryDirectory(prefix="guardproxy-attacksim-") as tmp:
                policy = Path(tmp) / "policy.yaml"
                policy.write_text(policy_yaml([suite], taint_mode))
                settings = load_settings(None, upstream_url=sim.url, port=0, log_level="error",
                                         policy_file=str(policy), stages=stages(detect),
                                         evidence_dir=str(Path(tmp) / "evidence"))  # a run's bundles are not kept
                proxy = serving.start_in_thread(settings)
                try:
                    agent: Agent
                    if api == "anthropic":
                        base = proxy.url.removesuffix("/v1")
                        agent = AnthropicAgent(anthropic.Anthropic(base_url=base, api_key="attack-sim", max_retries=0))
                    elif api == "responses":
                        agent = ResponsesAgent(openai.OpenAI(base_url=proxy.url, api_key="attack-sim", max_retries=0))
                    else:
                        agent = OpenAIAgent(openai.OpenAI(base_url=proxy.url, api_key="attack-sim", max_retries=0))
                    report.extend(run_suites(agent, [suite], limit, progress, approve))
                finally:
                    proxy.stop()
    finally:
        sim.stop()
    return report


def command(
    no_detect: Annotated[bool, typer.Option("--no-detect", help="Switch every detection rule off.")] = False,
    taint_mode: Annotated[str, typer.Option(help="argument_provenance or drop_side_effects.")] = "argument_provenance",
    suite: Annotated[list[str] | None, typer.Option(help="Only these suites (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most N tasks and N injections per suite.")] = None,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    api: Annotated[str, typer.Option(help="openai (chat completions), anthropic (messages) or responses.")] = "openai",
    approve: Annotated[bool, typer.Option(
        "--approve", help="Play a user who approves a withheld call only when it is the call they asked for.")] = False,
) -> None:
    """Run the attack simulation and print attack success rate and utility."""
    if taint_mode not in ("argument_provenance", "drop_side_effects"):
        raise typer.BadParameter("--taint-mode must be argument_provenance or drop_side_effects")
    err = Console(stderr=True)
    if api not in ("openai", "anthropic", "responses"):
        raise typer.BadParameter("--api must be openai, anthropic or responses")
    report = simulate(detect=not no_detect, taint_mode=taint_mode, suites=suite, limit=limit, api=api, approve=approve,
                      progress=lambda msg: err.print(f"[dim]ran {msg}[/dim]"))
    result = report.as_dict()
    if format == "json":
        typer.echo(json.dumps(result, indent=2))
        return
    _print(Console(), result, detect=not no_detect,
           taint_mode=f"{taint_mode}, {api} API{', user approvals' if approve else ''}")


def _print(console: Console, result: dict[str, Any], *, detect: bool, taint_mode: str) -> None:
    table = Table(title=f"attack simulation (detection {'on' if detect else 'off'}, {taint_mode})")
    for col in ("suite", "pairs", "attack success rate", "utility"):
        table.add_column(col)
    for name, s in result["by_suite"].items():
        table.add_row(name, str(s["pairs"]), f"{s['asr']:.3f}", f"{s['utility']:.3f}")
    table.add_row("all", str(result["pairs"]), f"{result['asr']:.3f}", f"{result['utility']:.3f}", style="bold")
    console.print(table)
    classes = Table(title="by class")
    for col in ("class", "tasks / pairs", "attack success rate", "utility (under attack)"):
        classes.add_column(col)
    for name, row in result["by_class"].items():
        if "asr" in row:
            classes.add_row(name, str(row["pairs"]), f"{row['asr']:.3f}", f"{row['utility_under_attack']:.3f}")
        else:
            classes.add_row(name, str(row["tasks"]), "", f"{row['utility']:.3f}")
    classes.add_row("all attacks", str(result["pairs"]), f"{result['asr']:.3f}",
                    f"{result['utility_under_attack']:.3f}", style="bold")
    console.print(classes)
    asked = result["approvals"]
    if asked["asked"]:
        console.print(f"approvals: {asked['asked']} asked, {asked['granted']} granted by the user")
    for attack in result["successful_attacks"]:
        console.print(f"[red]attack succeeded:[/red] {attack}")
    for task in result["failed_benign_tasks"]:
        console.print(f"[yellow]benign task failed:[/yellow] {task['task']}: {task['why']}")
