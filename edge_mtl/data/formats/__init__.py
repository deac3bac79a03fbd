"""Dataset readers by format name, and the ``FORMAT:PATH[@WEIGHT]`` spec that names one.

``READERS`` is a plain dict; each reader is a `Reader` in its own module. A bare path (no
``FORMAT:``) is the project's own synthetic format, as before readers existed.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats.bdd100k import Bdd100kReader
from edge_mtl.data.formats.coco import CocoReader
from edge_mtl.data.formats.culane import CulaneReader
from edge_mtl.data.formats.kitti import KittiReader, KittiTrackingReader
from edge_mtl.data.formats.kitti_depth import KittiDepthReader
from edge_mtl.data.formats.synth import SynthReader
from edge_mtl.data.formats.tusimple import TusimpleReader
from edge_mtl.data.reader import Reader

__all__ = ["READERS", "DataSpec", "Reader", "open_reader"]

READERS: dict[str, type[Reader]] = {
    "synth": SynthReader,
    "bdd100k": Bdd100kReader,
    "kitti": KittiReader,
    "kitti-tracking": KittiTrackingReader,
    "kitti-depth": KittiDepthReader,
    "tusimple": TusimpleReader,
    "culane": CulaneReader,
    "coco": CocoReader,
}


@dataclass(frozen=True)
class DataSpec:
    """One dataset of a run: its format, where it lies, and its sampling weight."""

    format: str
    path: str
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        """``FORMAT:PATH[@WEIGHT]``; a bare ``PATH`` is ``synth:PATH``."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"data source {text!r}: expected FORMAT:PATH[@WEIGHT]")
        head, sep, rest = text.partition(":")
        if sep and head in READERS:
            fmt, path = head, rest
        elif sep and re.fullmatch(r"[a-z][a-z0-9_-]+", head):  # not a path (nor a drive letter)
            raise ValueError(f"data source {text!r}: unknown format {head!r}; known: {sorted(READERS)}")
        else:
            fmt, path = "synth", text
        weight = 1.0
        base, at, tail = path.rpartition("@")
        if at:
            try:
                weight = float(tail)
            except ValueError:
                base = None  # an '@' that is part of the path
            if base is not None:
                if not (math.isfinite(weight) and weight > 0):
                    raise ValueError(f"data source {text!r}: weight {tail!r} must be a positive number")
                path = base
        if not path:
            raise ValueError(f"data source {text!r}: no path after {fmt}:")
        return cls(fmt, path, weight)

    def __str__(self) -> str:
        return f"{self.format}:{self.path}" + (f"@{self.weight:g}" if self.weight != 1.0 else "")


def open_reader(spec: DataSpec | str, options: Mapping[str, Mapping[str, Any]] | None = None) -> Reader:
    """The reader for ``spec`` with its format's entry of ``options`` (format -> keyword options)."""
    spec = DataSpec.parse(spec) if isinstance(spec, str) else spec
    cls = READERS[spec.format]
    opts = dict((options or {}).get(spec.format) or {})
    allowed = [p.name for p in inspect.signature(cls.__init__).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise DatasetError(f"{spec.format}: unknown reader option(s) {unknown}; "
                           f"{spec.format} takes {allowed or 'none'}")
    return cls(spec.path, **opts)
