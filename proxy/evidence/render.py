"""Renders one bundle for a terminal: segments grouped by trust with findings highlighted,
provenance, output, decisions, blast radius, timings and versions."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

TRUST_ORDER = ("trusted", "user", "untrusted")
TRUST_COLOUR = {"trusted": "green", "user": "cyan", "untrusted": "yellow"}


def print_bundle(out: Console, b: dict[str, Any]) -> None:
    # Every field of a bundle may carry client-controlled text (the model name, the client, reasons):
    # escaped, so rich markup in it is shown as written, never interpreted.
    out.print(f"[bold]{_e(b['id'])}[/bold]  seq {_e(b.get('seq'))}  {_e(b['time'])}  kept: {_e(b['kept']['reason'])}")
    out.print(f"request {_e(b.get('request_id'))}  trace {_e(b.get('trace_id') or '-')}  client {_e(b.get('client'))}  "
              f"{_e(b.get('api') or b.get('provider'))}/{_e(b.get('model'))}  stream={_e(b.get('stream'))}  "
              f"action [bold]{_e(b.get('action'))}[/bold]")
    _segments(out, b)
    _output(out, b)
    _decisions(out, b)
    _timings(out, b)


def _segments(out: Console, b: dict[str, Any]) -> None:
    by_segment: dict[int, list[dict[str, Any]]] = {}
    for f in b.get("findings", []):
        by_segment.setdefault(f["segment_index"], []).append(f)
    for trust in TRUST_ORDER:
        segs = [s for s in b.get("segments", []) if s["trust"] == trust]
        if not segs:
            continue
        colour = TRUST_COLOUR[trust]
        out.rule(f"[{colour}]{trust}[/{colour}] ({len(segs)})")
        for s in segs:
            prov = s.get("provenance") or {}
            where = " ".join(x for x in (prov.get("kind"), prov.get("source"), prov.get("tool_call_id")) if x)
            digest = f"  source {s['source_sha256']}" if s.get("source_sha256") else ""
            out.print(f"[{colour}]#{s['index']} {s['role']}[/{colour}] ({escape(where)}){digest}")
            out.print("  " + _highlight(s["text"], by_segment.get(s["index"], [])))
            for f in by_segment.get(s["index"], []):
                out.print(f"  [red]▲ {f['severity']} {f['rule_id']}[/red] ({f['vector']}, {f['mode']}, "
                          f"{'+'.join(f['decoding'])}) span {f['span']}: {escape(f.get('excerpt') or '')}")


def _output(out: Console, b: dict[str, Any]) -> None:
    o = b.get("output") or {}
    out.rule("output")
    out.print(escape(o.get("text") or ""))
    for c in o.get("tool_calls") or []:
        tag = "[red]WITHHELD[/red]" if c.get("withheld") else "delivered"
        out.print(f"  tool call {escape(c['name'])} ({tag}) {escape(c.get('arguments') or '')}")
    for f in [f for f in b.get("findings", []) if f.get("phase") == "output"]:
        out.print(f"  [red]▲ {f['severity']} {f['rule_id']}[/red]: {escape(f.get('excerpt') or '')}")


def _decisions(out: Console, b: dict[str, Any]) -> None:
    out.rule("decisions")
    for d in b.get("decisions", []):
        out.print(f"{_e(d['stage'])}: [bold]{_e(d['action'])}[/bold] {_e(d.get('severity') or '')} "
                  f"{escape('; '.join(d.get('reasons') or []))} removed={_e(d.get('tools_removed'))} "
                  f"blocked={_e(d.get('calls_blocked'))}")
    out.print(f"blast radius: {escape(json.dumps(b.get('blast_radius')))}")


def _timings(out: Console, b: dict[str, Any]) -> None:
    t = b.get("timings") or {}
    out.rule("timings (ms)")
    out.print(escape(", ".join(f"{k} {v}" for k, v in t.items() if k != "stages_ms" and v is not None)))
    out.print(escape(", ".join(f"{k} {v}" for k, v in (t.get("stages_ms") or {}).items())))
    v = b.get("versions") or {}
    out.print(f"versions: proxy {_e(v.get('proxy'))}, rules {_e(v.get('ruleset'))}, policy {_e(v.get('policy'))}; "
              f"redaction {escape(json.dumps(b.get('redaction', {}).get('placeholders')))}")
    out.print(f"hash {_e(b.get('hash'))}  prev {_e(b.get('prev_hash'))}")


def _highlight(text: str, findings: list[dict[str, Any]]) -> str:
    marked = escape(text)
    for match in sorted({f.get("match") or "" for f in findings if f.get("match")}, key=len, reverse=True):
        marked = marked.replace(escape(match), f"[reverse red]{escape(match)}[/reverse red]")
    return marked


def _e(value: object) -> str:
    return escape(str(value))
