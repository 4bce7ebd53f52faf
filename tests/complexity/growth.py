"""Measures how the work of one path grows with its input: CPU time at 1x, 4x and 16x.

Not a speed test: only ratios within one run are compared, so a slow or busy machine shifts all
three figures alike. Linear work grows 16x from 1x to 16x; quadratic work grows 256x. The bound
(LIMIT times linear) is generous enough for noise and cache effects and still fails every
quadratic path. Each size is timed a few times and the fastest run is kept (noise only adds).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SIZES = (1, 4, 16)
LIMIT = 3.0  # allowed excess over linear growth: 16x input may cost up to 48x (quadratic: 256x)
REPEATS = 3


@dataclass(frozen=True)
class Growth:
    path: str
    grows: str
    base: int
    seconds: tuple[float, ...]

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(s / self.seconds[0] for s in self.seconds)


TABLE: list[Growth] = []  # printed at the end of the session (tests/complexity/conftest.py)


def cpu_seconds(run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        gc.collect()
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return max(best, 1e-6)


def assert_near_linear(
    path: str, grows: str, base: int, make: Callable[[int], Any], run: Callable[[Any], Any]
) -> Growth:
    """Build inputs of base x 1, 4, 16 (outside the timing), time `run` on each, bound the ratios."""
    inputs = [make(base * k) for k in SIZES]
    run(inputs[0])  # warm caches, lazy imports and compiled patterns outside the measurement
    seconds = tuple(cpu_seconds(lambda x=x: run(x)) for x in inputs)
    growth = Growth(path, grows, base, seconds)
    TABLE.append(growth)
    for k, ratio in zip(SIZES[1:], growth.ratios[1:], strict=True):
        assert ratio <= k * LIMIT, (
            f"{path}: work grew {ratio:.1f}x for {k}x {grows} (linear: {k}x, allowed {k * LIMIT:.0f}x): "
            f"a superlinear path; seconds {[round(s, 4) for s in seconds]}"
        )
    return growth
