"""Pre-flight check of a dataset folder: read and validate every sample before a long run.

`check_dataset` decodes every image and label of the folder (in parallel processes) and returns
the readable samples and, for each bad one, its file and the reason. `edge-mtl check-data` prints
it; `train` runs it first and then skips the bad samples (or stops at the first with ``strict``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Any

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.reader import Reader

SCHEMA = "edge_mtl.data_check/1"


@dataclass(frozen=True)
class Problem:
    """One sample that cannot be used: its label file and what is wrong."""

    file: str
    reason: str


@dataclass
class DataCheck:
    root: str
    num_samples: int
    bad: list[Problem] = field(default_factory=list)
    good: list[int] = field(default_factory=list)
    seconds: float = 0.0
    checked: bool = True  # False: not read (train.check_data off), every sample taken as good

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "root": self.root, "num_samples": self.num_samples,
                "num_bad": len(self.bad), "bad": [asdict(p) for p in self.bad],
                "seconds": self.seconds, "checked": self.checked}

    def summary(self) -> str:
        head = f"{self.root}: {self.num_samples - len(self.bad)} of {self.num_samples} samples readable"
        return head + (f", {len(self.bad)} bad" if self.bad else "")


def checks_report(checks: list[DataCheck]) -> dict:
    """The checks of a run's datasets as one report: totals first, then each dataset's own."""
    return {"schema": SCHEMA, "num_samples": sum(c.num_samples for c in checks),
            "num_bad": sum(len(c.bad) for c in checks), "bad": [asdict(p) for c in checks for p in c.bad],
            "datasets": [c.to_dict() for c in checks], "seconds": round(sum(c.seconds for c in checks), 2)}


class BadDataError(DatasetError):
    """``strict`` met a bad sample, or no sample at all is readable."""


_worker_reader: Reader | None = None


def _open_in_worker(spec: str, options: dict | None) -> None:
    from edge_mtl.data.formats import open_reader

    global _worker_reader
    _worker_reader = open_reader(spec, options)


def _check_in_worker(index: int) -> tuple[int, str | None]:
    assert _worker_reader is not None
    return _check_one(_worker_reader, index)


def _check_one(reader: Reader, index: int) -> tuple[int, str | None]:
    try:
        reader[index]
    except DatasetError as e:
        return index, str(e)
    return index, None


def unchecked(root: str | os.PathLike, options: dict | None = None) -> DataCheck:
    """What `check_dataset` returns when the samples are not read: every one taken as good."""
    from edge_mtl.data.formats import DataSpec, open_reader

    spec = str(DataSpec.parse(str(root)))
    n = len(open_reader(spec, options))
    if n == 0:
        raise BadDataError(f"{root}: holds no samples")
    return DataCheck(spec, n, good=list(range(n)), checked=False)


def check_dataset(root: str | os.PathLike, workers: int | None = None, strict: bool = False,
                  progress: bool = True, options: dict | None = None) -> DataCheck:
    """Read every sample of ``root`` (``FORMAT:PATH``, a bare path is synth; ``options`` as for
    `open_reader`); ``strict`` raises at the first bad one (in index order).

    ``workers``: processes (default: the cores, at most 8, from 16 samples on; 1 reads in this
    process).
    """
    from tqdm import tqdm

    from edge_mtl.data.formats import DataSpec, open_reader

    start = time.perf_counter()
    spec = str(DataSpec.parse(str(root)))
    reader = open_reader(spec, options)  # a folder that is not the format fails here, whatever the policy
    result = DataCheck(spec, len(reader))
    indices = range(len(reader))
    if workers is None:  # a process pool pays off only for more than a few samples
        workers = min(os.cpu_count() or 1, 8) if len(indices) >= 16 else 1
    bar = tqdm(total=len(indices), desc=f"check {root}", unit="sample", disable=not progress)
    try:
        if workers <= 1:
            _collect((_check_one(reader, i) for i in indices), result, reader, strict, bar)
        else:
            # spawn: the caller may hold torch's thread pools, which do not survive a fork
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_open_in_worker,
                                     initargs=(spec, options)) as pool:
                _collect(pool.map(_check_in_worker, indices, chunksize=8), result, reader, strict, bar)
    finally:
        bar.close()
    result.seconds = round(time.perf_counter() - start, 2)
    if not result.good:
        raise BadDataError(f"{root}: none of its {len(reader)} samples is readable; first: "
                           f"{result.bad[0].reason}")
    return result


def _collect(outcomes: Iterable[tuple[int, str | None]], result: DataCheck, reader: Reader,
             strict: bool, bar: Any) -> None:
    for index, reason in outcomes:
        bar.update()
        if reason is None:
            result.good.append(index)
            continue
        if strict:
            raise BadDataError(f"{reason} [--strict stops at the first bad sample]")
        result.bad.append(Problem(reader.source(index), reason))
