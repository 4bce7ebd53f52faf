"""The learned scorer: a linear model over hashed n-grams, scored window by window.

A text's score is its best window's: the bias plus the mean weight of the features that start in
the window (with PRIOR_FEATURES neutral features added, so a one-word prompt cannot score like a
paragraph of evidence), through a logistic calibration fitted on leave-one-source-out scores. Windows of
WINDOW collapsed characters (half overlapping) keep one injected paragraph in a long page as
visible as it would be alone. Pure numpy at run time; the weights are int8 with one scale and
ship inside the package (`weights.npz`), so nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from proxy.detect.features import BITS, MAX_LEN, Features, extract, small_buckets, windows

WEIGHTS_PATH = Path(__file__).with_name("weights.npz")
WINDOW = 400
STRIDE = 200
PRIOR_FEATURES = 8  # pseudo-count of weight-0 features in every window's mean
# In a batch, texts up to this long are scored one by one in Python: below it that beats their
# share of the batch's numpy calls (measured: about 15 us for a 60-character message, 70 us at 400).
SMALL_IN_BATCH = 200
MAX_CHARS = MAX_LEN  # a longer segment is scored on its first MAX_CHARS characters (and says so)
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Score:
    probability: float
    margin: float
    span: tuple[int, int]  # best window, in the view's characters
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Contribution:
    text: str  # a word of the normalised view
    span: tuple[int, int]  # in the view's characters
    weight: float  # its features' share of the window's mean, in margin units


class LinearModel:
    def __init__(self, weights: F32, bias: float, calibration: tuple[float, float], meta: dict[str, Any]) -> None:
        if weights.shape != (1 << BITS,):
            raise ValueError(f"weights must have 2**{BITS} entries, not {weights.shape}")
        self.weights = weights
        # The same weights as a compact C array: indexing it from Python costs no numpy call.
        self._table = array("f", weights.astype(np.float32).tobytes())
        self.bias = bias
        self.calibration = calibration
        self.meta = meta

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> LinearModel:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            weights = data["q"].astype(np.float32) * np.float32(meta["scale"])
        return cls(weights, float(meta["bias"]), (float(meta["a"]), float(meta["b"])), meta)

    def save(self, path: Path) -> None:
        scale = float(np.abs(self.weights).max() / 127.0) or 1.0
        q = np.clip(np.round(self.weights / scale), -127, 127).astype(np.int8)
        meta = {**self.meta, "scale": scale, "bias": self.bias, "a": self.calibration[0],
                "b": self.calibration[1], "bits": BITS, "window": WINDOW, "stride": STRIDE}
        np.savez_compressed(path, q=q, meta=np.array(json.dumps(meta, sort_keys=True)))

    def calibrate(self, margin: float) -> float:
        a, b = self.calibration
        z = a * margin + b
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def margins(self, feats: Features) -> tuple[npt.NDArray[np.float64], list[tuple[int, int]]]:
        """The uncalibrated score of every window of the collapsed text, and the windows."""
        spans = windows(feats.length, WINDOW, STRIDE)
        if not len(feats.buckets):
            return np.full(len(spans), self.bias), spans
        contrib = self.weights[feats.buckets]
        if len(spans) == 1:  # the common short segment: one window, one mean
            return np.array([self.bias + float(contrib.sum()) / (len(contrib) + PRIOR_FEATURES)]), spans
        sums = np.zeros(feats.length + 1)
        counts = np.zeros(feats.length + 1)
        sums[1:] = np.cumsum(np.bincount(feats.starts, weights=contrib, minlength=feats.length))
        counts[1:] = np.cumsum(np.bincount(feats.starts, minlength=feats.length))
        bounds = np.array(spans, dtype=np.int64)
        a, b = bounds[:, 0], bounds[:, 1]
        return self.bias + (sums[b] - sums[a]) / (counts[b] - counts[a] + PRIOR_FEATURES), spans

    def score(self, view_text: str) -> Score:
        if len(view_text) <= WINDOW:
            return self._score_small(view_text)
        return self._score_numpy(view_text)

    def _score_small(self, view_text: str) -> Score:
        """`_score_numpy` of a text that fits one window, without numpy's per-call cost: the same
        buckets (`small_buckets`), summed by the same float32 reduction, so the same score."""
        buckets, length, last = small_buckets(view_text)
        margin = self.bias
        if buckets:
            table = self._table
            margin = self.bias + float32_sum([table[b] for b in buckets]) / (len(buckets) + PRIOR_FEATURES)
        return Score(self.calibrate(margin), margin, (0, last) if length else (0, len(view_text)))

    def _score_numpy(self, view_text: str) -> Score:
        truncated = len(view_text) > MAX_CHARS
        feats = extract(view_text[:MAX_CHARS])
        margins, spans = self.margins(feats)
        best = int(np.argmax(margins))
        margin = float(margins[best])
        start, end = spans[best]
        view_span = _to_view(feats, start, end, len(view_text))
        return Score(self.calibrate(margin), margin, view_span, truncated)

    def score_many(self, view_texts: Sequence[str]) -> list[Score]:
        """`score` of each text, in one featurisation: a request's segments share the numpy calls.

        The texts are joined by a line break; features that straddle two texts are dropped, and
        each text's windows stay inside it, so every score is its text's `score` (up to leading
        and trailing whitespace, which the join folds into the separator)."""
        # Short texts are cheaper one by one in Python (`_score_small`); the rest share numpy's calls.
        out: list[Score | None] = [self._score_small(t) if len(t) <= SMALL_IN_BATCH else None for t in view_texts]
        rest = [i for i, found in enumerate(out) if found is None]
        for i, found in zip(rest, self._score_joined([view_texts[i] for i in rest]), strict=True):
            out[i] = found
        return [found for found in out if found is not None]

    def _score_joined(self, view_texts: Sequence[str]) -> list[Score]:
        if len(view_texts) <= 1:
            return [self.score(t) for t in view_texts]
        clipped = [t[:MAX_CHARS] for t in view_texts]
        joined = "\n".join(clipped)
        if len(joined) > MAX_LEN:
            return [self.score(t) for t in view_texts]
        feats = extract(joined)
        begins = np.cumsum([0] + [len(t) + 1 for t in clipped[:-1]])
        # each text's range in the collapsed coordinates; a feature counts if it stays in one text
        c_begin = np.searchsorted(feats.positions, begins)
        c_end = np.searchsorted(feats.positions, begins + np.array([len(t) for t in clipped]))
        owner = np.searchsorted(c_begin, feats.starts, side="right") - 1
        valid = feats.starts + feats.sizes <= c_end[owner]
        contrib = np.where(valid, self.weights[feats.buckets], 0.0)
        sums = np.zeros(feats.length + 1)
        counts = np.zeros(feats.length + 1)
        sums[1:] = np.cumsum(np.bincount(feats.starts, weights=contrib, minlength=feats.length))
        counts[1:] = np.cumsum(np.bincount(feats.starts, weights=valid.astype(np.float64), minlength=feats.length))
        # Every window of every text in one numpy expression: a request's many short segments
        # would otherwise pay numpy's per-call overhead once per segment.
        ranges = list(zip(c_begin.tolist(), c_end.tolist(), strict=True))
        spans: list[tuple[int, int]] = []
        first = [0]
        for a0, b0 in ranges:
            spans += [(a0 + a, a0 + b) for a, b in windows(b0 - a0, WINDOW, STRIDE)]
            first.append(len(spans))
        a = np.array([s for s, _ in spans], dtype=np.int64)
        b = np.minimum(np.array([e for _, e in spans], dtype=np.int64),
                       np.repeat(c_end, np.diff(first)))
        all_margins = (self.bias + (sums[b] - sums[a]) / (counts[b] - counts[a] + PRIOR_FEATURES)).tolist()
        starts = begins.tolist()
        out = []
        for i, text in enumerate(clipped):
            a0, b0 = ranges[i]
            margins = all_margins[first[i] : first[i + 1]]
            best = max(range(len(margins)), key=margins.__getitem__)  # the first of equal maxima, as argmax
            start, end = spans[first[i] + best]
            if b0 <= a0:
                span = (0, len(text))
            else:
                span = (int(feats.positions[start]) - starts[i],
                        int(feats.positions[min(end, b0) - 1]) - starts[i] + 1)
            out.append(Score(self.calibrate(margins[best]), margins[best], span, len(view_texts[i]) > MAX_CHARS))
        return out

    def explain(self, view_text: str, top: int = 8) -> tuple[Score, list[Contribution]]:
        """The score and the words of the best window whose features pushed it most, strongest first."""
        result = self.score(view_text)
        feats = extract(view_text[:MAX_CHARS])
        _, spans = self.margins(feats)
        start, end = next(s for s in spans if _to_view(feats, *s, len(view_text)) == result.span)
        inside = (feats.starts >= start) & (feats.starts < end)
        n = int(inside.sum()) + PRIOR_FEATURES
        per_pos = np.bincount(feats.starts[inside], weights=self.weights[feats.buckets[inside]],
                              minlength=feats.length)
        words: list[Contribution] = []
        pos = start
        collapsed_view = view_text[:MAX_CHARS]
        while pos < end:
            stop = pos
            while stop < end and not collapsed_view[feats.positions[stop]].isspace():
                stop += 1
            if stop > pos:
                span = (int(feats.positions[pos]), int(feats.positions[stop - 1]) + 1)
                weight = float(per_pos[pos:stop].sum()) / n
                words.append(Contribution(collapsed_view[span[0] : span[1]], span, weight))
            pos = stop + 1
        words.sort(key=lambda c: -c.weight)  # what pushed the score up first
        return result, words[:top]


_F32 = array("f", [0.0])


def _f32(x: float) -> float:
    """`x` rounded to the nearest float32 (an array('f') item store rounds as the C cast does)."""
    _F32[0] = x
    return _F32[0]


def float32_sum(values: list[float]) -> float:
    """numpy's float32 `sum` of `values`, step for step: its pairwise reduction (sequential under 8
    items, eight running sums up to 128, halves beyond), each addition rounded to float32.

    On the request path a numpy call costs far more than in a loop (its code and data are cold
    between requests: a 15-element sum 3 us warm, about 55 us cold, against 12 us for this), and
    the learned layer's thresholds sit on these figures, so this must give numpy's result bit for
    bit (tests/detect/test_model.py compares them on random sums of every length up to 420)."""
    return _f32(0.0 + _pairwise(values, 0, len(values)))


def _pairwise(values: list[float], lo: int, n: int) -> float:
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res = _f32(res + values[i])
        return res
    if n <= 128:
        r = values[lo:lo + 8]
        i, stop = 8, n - n % 8
        while i < stop:
            for j in range(8):
                r[j] = _f32(r[j] + values[lo + i + j])
            i += 8
        res = _f32(_f32(_f32(r[0] + r[1]) + _f32(r[2] + r[3])) + _f32(_f32(r[4] + r[5]) + _f32(r[6] + r[7])))
        for k in range(i, n):
            res = _f32(res + values[lo + k])
        return res
    half = n // 2
    half -= half % 8
    return _f32(_pairwise(values, lo, half) + _pairwise(values, lo + half, n - half))


def _to_view(feats: Features, start: int, end: int, view_len: int) -> tuple[int, int]:
    if feats.length == 0:
        return 0, view_len
    last = min(end, feats.length) - 1
    return int(feats.positions[start]), int(feats.positions[last]) + 1


@lru_cache(maxsize=1)
def shipped() -> LinearModel:
    """The weights in the package, loaded once per process."""
    return LinearModel.load()
