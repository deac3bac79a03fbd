"""``synth``: the project's own format, written by `edge-mtl synth` (see `edge_mtl.data.format`)."""

from edge_mtl.data.format import DatasetReader as SynthReader

__all__ = ["SynthReader"]
