"""Leave-one-source-out evaluation of rules and learned layer together.

For each source of a corpus the model is trained (and its calibration fitted) without that
source, then the held-out source is judged as the injection stage would judge it: rules alone,
model alone, and both (the stage's real decision). The rules are not retrained per fold: they
are whatever the directory holds, so their figures are only as honest as the rules' tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from proxy.detect import train
from proxy.model import Action, Finding
from proxy.rules.engine import Engine
from proxy.rules.evaluate import Counts, Sample, judge
from proxy.rules.findings import ENFORCE, SHADOW, decide
from proxy.rules.spec import RuleSet
from proxy.rules.store import Live
from proxy.rules.suppressions import Suppressor

DETECTORS = ("rules", "model", "combined")


@dataclass(slots=True)
class LosoReport:
    # (held-out source, vector) -> detector -> counts; plus the pooled figures per vector
    folds: dict[tuple[str, str], dict[str, Counts]] = field(default_factory=dict)
    pooled: dict[str, dict[str, Counts]] = field(default_factory=dict)

    def add(self, source: str, vector: str, injection: bool, positive: dict[str, bool], pooled: bool = True) -> None:
        buckets = [self.folds.setdefault((source, vector), {})]
        if pooled:
            buckets.append(self.pooled.setdefault(vector, {}))
        for bucket in buckets:
            for name in DETECTORS:
                bucket.setdefault(name, Counts()).add(positive[name], injection)

    def as_dict(self) -> dict[str, Any]:
        return {
            "held_out": [
                {"source": s, "vector": v, **{d: c[d].metrics() for d in DETECTORS}}
                for (s, v), c in sorted(self.folds.items())
            ],
            "pooled": {v: {d: c[d].metrics() for d in DETECTORS} for v, c in sorted(self.pooled.items())},
        }


def positive_for(findings: Sequence[Finding], detector: str) -> bool:
    """Would the stage act on these findings, counting only `detector`'s (or all: "combined")?

    The "model" column counts a model rule in shadow mode as if it enforced (what it would do if
    taken out of shadow); "combined" is the stage's real decision, shadow excluded."""
    if detector == "model":
        chosen = [replace(f, mode=ENFORCE) if f.mode == SHADOW else f for f in findings if f.detector == "model"]
    else:
        chosen = [f for f in findings if detector == "combined" or f.detector == detector]
    return decide(chosen)[0] is not Action.ALLOW


def to_training(samples: Sequence[Sample]) -> list[train.Sample]:
    return [train.Sample(s.id, s.text, s.label == "injection", s.vector, s.source or "unknown") for s in samples]


def run(
    ruleset: RuleSet,
    samples: Sequence[Sample],
    team: Sequence[train.Sample],
    kind: str = "lr",
    progress: Callable[[str], None] | None = None,
) -> LosoReport:
    """Each corpus source held out in turn, then the team's examples held out as one more source
    (their hard negatives are the closest thing here to text nobody tuned on; not pooled)."""
    corpus = to_training(samples)
    everything = [*corpus, *team]
    judged = [*samples, *(Sample(t.id, t.text, "injection" if t.injection else "benign", t.vector, "team")
                          for t in team)]
    feats = train.featurise(everything)
    report = LosoReport()
    suppressor = Suppressor(ruleset.suppressions)
    for source in [*sorted({s.source for s in corpus}), *(["team"] if team else [])]:
        if progress is not None:
            progress(source)
        keep = [i for i, s in enumerate(everything) if s.source != source]
        model, _ = train.fit_calibrated([everything[i] for i in keep], [feats[i] for i in keep], kind,
                                        inner_folds=2)
        live = Live(ruleset, Engine(ruleset, model=model), suppressor)
        for sample, row in zip(judged, everything, strict=True):
            if row.source != source:
                continue
            findings = judge(live, sample)
            positive = {d: positive_for(findings, d) for d in DETECTORS}
            report.add(source, sample.vector, sample.label == "injection", positive, pooled=source != "team")
    return report
