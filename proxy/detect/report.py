"""`guardproxy rules train`: fit the shipped weights and write the training report.

Deterministic: a fixed seed, samples in file order, numpy only. The report names its inputs by
content hash, the model, the weights' size, and the figures in sample and leave one source out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from proxy.detect import loso, train
from proxy.detect.features import BITS
from proxy.detect.model import STRIDE, WEIGHTS_PATH, WINDOW
from proxy.rules.engine import Engine
from proxy.rules.evaluate import Sample, judge
from proxy.rules.store import Live


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _table(rows: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    lines = ["| held out | vector | injections | benign | rules recall / FPR | model recall / FPR | "
             "combined recall / FPR |", "|---|---|---|---|---|---|---|"]
    for source, vector, r in rows:
        c = r["combined"]
        cells = [f"{r[d]['recall']:.3f} / {r[d]['fpr']:.3f}" for d in loso.DETECTORS]
        lines.append(f"| {source} | {vector} | {c['tp'] + c['fn']} | {c['fp'] + c['tn']} | " + " | ".join(cells) + " |")
    return lines


def build(
    live: Live,
    samples: Sequence[Sample],
    examples: Path | None,
    out_path: Path | None,
    kind: str,
    progress: Callable[[str], None],
    corpus_path: Path | None = None,
) -> str:
    team = train.read_jsonl(examples, team=True) if examples else []
    everything = [*loso.to_training(samples), *team]
    progress(f"featurising {len(everything)} samples")
    feats = train.featurise(everything)
    progress("fitting the shipped model (calibrated on 3 source-grouped folds)")
    model, _ = train.fit_calibrated(everything, feats, kind, inner_folds=3)
    views = train.view_digest(t.text for t in team)
    model.meta = {"kind": kind, "seed": train.SEED, "samples": len(everything), "views": views}
    target = out_path or WEIGHTS_PATH
    model.save(target)
    in_sample = loso.LosoReport()
    fitted = Live(live.ruleset, Engine(live.ruleset, model=model), live.suppressor)
    for s in samples:
        findings = judge(fitted, s)
        positive = {d: loso.positive_for(findings, d) for d in loso.DETECTORS}
        in_sample.add("all", s.vector, s.label == "injection", positive)
    progress("leave one source out")
    held = loso.run(live.ruleset, samples, team, kind, lambda s: progress(f"fold: without {s}"))
    data = held.as_dict()
    lines = [
        "# Learned layer: training report",
        "",
        "Written by `guardproxy rules train`; do not edit by hand.",
        "",
        f"- model: {kind} over hashed words and word pairs of the normalised text "
        f"(2^{BITS} buckets), scored per window of {WINDOW} characters (stride {STRIDE}), "
        "logistic calibration fitted on source-grouped out-of-fold scores; team examples count "
        f"{train.TEAM_WEIGHT:g}x",
        f"- seed {train.SEED}; samples: {len(samples)} corpus + {len(team)} team examples"
        + (f" (examples sha256 {_sha(examples)})" if examples else ""),
        f"- weights: `{target.name}`, {target.stat().st_size} bytes (int8, compressed)",
        f"- rule set {live.ruleset.digest}; normaliser fingerprint {views}; calibration "
        f"a={model.calibration[0]:.4f} b={model.calibration[1]:.4f}",
        "",
        "## In sample (the shipped model on the data it was trained on)",
        "",
        *_table([("all", v, r) for v, r in in_sample.as_dict()["pooled"].items()]),
        "",
        "## Leave one source out (the figure to optimise)",
        "",
        "Each row: the model trained and calibrated without that source, then tested on it. Rules are",
        "not retrained per fold, so their column is in sample. The `team` rows hold out the team's own",
        "examples (attacks without override phrases, hard negatives, everyday non-English text); they",
        "are not pooled. The model column counts a model rule in shadow mode as if it enforced;",
        "combined is the stage's real decision.",
        "",
        *_table([(r["source"], r["vector"], r) for r in data["held_out"]]
                + [("all (pooled)", v, r) for v, r in data["pooled"].items()]),
        "",
    ]
    return "\n".join(lines)
