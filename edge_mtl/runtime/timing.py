"""Per-stage latency bookkeeping shared by the benchmark and the camera loop."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np


def summarize(ms: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p95 / mean / max of a list of milliseconds."""
    if not len(ms):
        return dict.fromkeys(("p50", "p90", "p95", "mean", "max"), float("nan"))
    a = np.asarray(ms, np.float64)
    p50, p90, p95 = (round(float(v), 3) for v in np.percentile(a, (50, 90, 95)))
    return {"p50": p50, "p90": p90, "p95": p95, "mean": round(float(a.mean()), 3),
            "max": round(float(a.max()), 3)}


class StageTimer:
    """``with timer.stage("pre"): ...`` records wall milliseconds per stage and frame; `add`
    records a time measured elsewhere (the pipelined camera loop times each stage in its own
    thread and hands the figures over with the frame, so that one thread writes the samples)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.samples[name].append((time.perf_counter() - t0) * 1e3)

    def add(self, name: str, ms: float) -> None:
        self.samples[name].append(ms)

    def last(self, name: str) -> float:
        values = self.samples.get(name)
        return values[-1] if values else float("nan")

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: summarize(v) for k, v in self.samples.items()}


def _system_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(fields) / tick
    return total - (fields[3] + fields[4]) / tick, total  # idle + iowait are not busy


class OtherLoad:
    """``with OtherLoad() as load: ...`` -> ``load.share``: the share of the machine's CPU time
    that *other* processes used meanwhile (0 = a quiet machine, 0.5 = one of two cores busy
    elsewhere), so a benchmark can say whether its figures were taken on a quiet machine.
    ``share`` is None where /proc/stat is missing."""

    share: float | None = None

    def __enter__(self) -> OtherLoad:
        self._sys, self._own = _system_cpu(), _own_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _system_cpu()
        if self._sys is None or end is None:
            return
        busy, total = end[0] - self._sys[0], end[1] - self._sys[1]
        if total > 0:
            self.share = round(min(1.0, max(0.0, (busy - (_own_cpu() - self._own)) / total)), 3)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system
