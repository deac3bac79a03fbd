"""Per-stage latency bookkeeping shared by the benchmark and the camera loop."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def summarize(ms: list[float]) -> dict[str, float]:
    """p50 / p90 / mean / max of a list of milliseconds."""
    if not ms:
        return {"p50": float("nan"), "p90": float("nan"), "mean": float("nan"), "max": float("nan")}
    a = np.asarray(ms, np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p90": round(float(np.percentile(a, 90)), 3),
            "mean": round(float(a.mean()), 3), "max": round(float(a.max()), 3)}


class StageTimer:
    """``with timer.stage("pre"): ...`` records wall milliseconds per stage and frame."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.samples[name].append((time.perf_counter() - t0) * 1e3)

    def last(self, name: str) -> float:
        values = self.samples.get(name)
        return values[-1] if values else float("nan")

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: summarize(v) for k, v in self.samples.items()}
