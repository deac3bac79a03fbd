"""Explicit INT8: an FP32 ONNX model -> a Q/DQ ONNX model that TensorRT builds directly and
onnxruntime runs on the CPU (so INT8 accuracy can be measured anywhere).

TensorRT's rules, set explicitly because onnxruntime's defaults differ: int8 activations and
weights, symmetric (zero-point 0), per-channel scales on weights only, per-tensor activations.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_mtl.files import sha256, write_atomic
from edge_mtl.quantize.calibset import CALIBRATION_DIR, CalibrationSet

if TYPE_CHECKING:
    import onnx

METHODS: tuple[str, ...] = ("entropy", "minmax", "percentile")
# Q/DQ goes in front of the layers TensorRT runs in INT8 (convolutions, GEMMs) and on residual
# adds (two activations) so they fuse into the convolution; everything else stays in the
# builder's float precision. Outputs of these ops are not quantized on their own: a tensor gets
# Q/DQ only where an INT8 consumer reads it, so the heads' final outputs (logits, box distances,
# depth) leave the network in float, as TensorRT's Q/DQ placement guide recommends.
WEIGHTED_OPS: tuple[str, ...] = ("Conv", "ConvTranspose", "Gemm", "MatMul")
QUANTIZED_OPS: tuple[str, ...] = (*WEIGHTED_OPS, "Add")
# The default recipe, found with `edge-mtl int8-sensitivity` on tritask_mnv3l (entropy lost 10 %
# depth AbsRel; percentile clipping with these groups in float is within 0.5 % on every
# headline metric): the first inverted-residual block, whose stride-2 features feed every dense
# output; the first stride-16 block and the stride-4 decoder, which the remaining depth loss was
# spread over; and the depth head, whose sigmoid-to-log-depth output magnifies small errors.
DEFAULT_METHOD = "percentile"
DEFAULT_KEEP: tuple[str, ...] = ("/backbone/features.1/", "/backbone/features.7/", "decoder",
                                 "depth_head")
# Named groups of layers that --keep leaves in float (prefixes of exported node names).
KEEP_GROUPS: dict[str, tuple[str, ...]] = {
    "stem": ("/backbone/features.0/",),
    "backbone": ("/backbone/",),
    "neck": ("/neck/",),
    "det_head": ("/det_head/",),
    "decoder": ("/decoder/",),
    "lane_head": ("/lane_head/",),
    "depth_head": ("/depth_head/",),
    "heads": ("/det_head/", "/lane_head/", "/depth_head/"),
}


def nodes_to_quantize(graph: onnx.GraphProto, keep: tuple[str, ...] = ()) -> list[str]:
    """Weighted layers, and Adds of two activations (residuals), not under a kept prefix.

    An Add with a constant operand (the box decoder's anchor points, a bias) stays float: an
    int8 grid on pixel coordinates would cost whole pixels.
    """
    constants = {t.name for t in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    chosen = []
    for n in graph.node:
        if not n.name or (keep and n.name.startswith(keep)):
            continue
        if n.op_type in WEIGHTED_OPS or (
                n.op_type == "Add" and not any(i in constants for i in n.input)):
            chosen.append(n.name)
    return chosen


@dataclass
class QuantizeResult:
    path: Path
    method: str
    images: int
    quantized_nodes: int
    kept_nodes: list[str]
    ranges_cache: Path | None = None  # the activation ranges, reused by later runs
    cache_hit: bool = False


RANGES_DIR = CALIBRATION_DIR / "cache" / "ranges"


def ranges_cache_path(folder: Path, model_sha256: str, calib: CalibrationSet, images: int,
                      method: str, recipe: str = "") -> Path:
    """Where the activation ranges of (model, first ``images`` of ``calib``, method, recipe:
    the calibration options and onnxruntime version) are kept.

    The ranges cover every tensor, so one calibration serves any ``--keep`` choice.
    """
    key = hashlib.sha256("\n".join([model_sha256, method, recipe, *calib.hashes[:images]]).encode())
    return Path(folder) / f"{calib.name}-{method}-{images}-{key.hexdigest()[:16]}.json"


def keep_prefixes(keep: Sequence[str] | None) -> tuple[str, ...]:
    """Group names (``KEEP_GROUPS``) or raw node-name prefixes (starting with ``/``)."""
    prefixes: list[str] = []
    for item in keep or []:
        if item in KEEP_GROUPS:
            prefixes += KEEP_GROUPS[item]
        elif item.startswith("/"):
            prefixes.append(item)
        else:
            raise ValueError(f"--keep {item!r}: not a layer group ({', '.join(KEEP_GROUPS)}) "
                             "nor a node-name prefix starting with '/'")
    return tuple(prefixes)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol, with ``set_range`` so calibration runs in
    chunks: histogram calibrators otherwise hold every image's activations in memory at once."""

    def __init__(self, input_name: str, calib: CalibrationSet, size: tuple[int, int], mode: str, total: int,
                 progress: bool, input_format: str = "float"):
        from tqdm import tqdm

        self.input_name, self.calib, self.size, self.total = input_name, calib, size, total
        self.mode, self.input_format = mode, input_format
        self.bar = tqdm(total=total, desc="calibrate", unit="img", disable=not progress)
        self.set_range(0, total)

    def __len__(self) -> int:
        return self.total

    def set_range(self, start_index: int, end_index: int) -> None:
        self.todo = iter(range(start_index, min(end_index, self.total)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        i = next(self.todo, None)
        if i is None:
            return None
        self.bar.update()
        if self.bar.n == self.total:
            self.bar.close()
        return {self.input_name: self.calib.load(i, self.size, self.mode, self.input_format)}


def _chunk(total: int, most: int = 16) -> int:
    """The largest chunk size <= ``most`` that divides ``total`` (onnxruntime needs one)."""
    return max(d for d in range(1, most + 1) if total % d == 0)


def quantize_qdq(model: str | os.PathLike, out: str | os.PathLike, calib: CalibrationSet,
                 method: str = DEFAULT_METHOD, images: int | None = None,
                 keep: Sequence[str] | None = None,
                 progress: bool = True, cache_dir: str | os.PathLike | None = "default"
                 ) -> QuantizeResult:
    """Calibrate ``model`` on ``calib`` and write the Q/DQ INT8 model to ``out``.

    ``keep``: layer groups left in float; None: the default recipe (``DEFAULT_KEEP``); ``()``:
    quantize every layer. The activation ranges are kept in ``cache_dir`` ("default":
    ``RANGES_DIR``; None: not kept), and a later call for the same model, images, method and
    onnxruntime skips calibration.
    """
    import onnx
    from onnxruntime import __version__ as ort_version
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edge_mtl.export.graph_input import preprocess_nodes
    from edge_mtl.export.metadata import load_onnx, parse_metadata

    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose from {list(METHODS)}")
    src = load_onnx(model)
    props = {p.key: p.value for p in src.metadata_props}
    meta = parse_metadata(props, str(model))
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in src.graph.node):
        raise ValueError(f"{model}: already quantized (holds Q/DQ nodes); calibrate the FP32 export")
    prefixes = keep_prefixes(DEFAULT_KEEP if keep is None else keep)
    kept = [n.name for n in src.graph.node if n.op_type in QUANTIZED_OPS and n.name.startswith(prefixes)]
    # a uint8-input graph's normalising convolution reads 0..255: it stays float
    in_graph = [n for n in preprocess_nodes(src.graph) if n not in kept]
    if prefixes and not kept:
        raise ValueError(f"--keep {keep}: matches no quantizable node of {model}")
    chosen = [n for n in nodes_to_quantize(src.graph, prefixes) if n not in in_graph]
    if not chosen:
        raise ValueError(f"{model}: no layer left to quantize (everything kept in float?)")
    total = len(calib) if images is None else min(images, len(calib))
    if total < 1:
        raise ValueError(f"calibration set {calib.name} has no images to use")
    methods = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
               "percentile": CalibrationMethod.Percentile}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if cache_dir == "default":
        cache_dir = RANGES_DIR
    extra_options = {
        "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS),
        "ActivationSymmetric": True, "WeightSymmetric": True,
        "CalibTensorRangeSymmetric": True,
        # Biases stay float: TensorRT's parser dequantizes int8 only.
        "QuantizeBias": False,
        # Calibrate in chunks (the option applies to every method, not only MinMax).
        "CalibStridedMinMax": _chunk(total),
    }
    recipe = f"onnxruntime {ort_version} {QUANTIZED_OPS} {sorted(extra_options.items())}"
    cache_path = (ranges_cache_path(Path(cache_dir), sha256(model), calib, total, method, recipe)
                  if cache_dir is not None else None)
    cache_hit = cache_path is not None and cache_path.is_file()
    cache_kwargs = {}
    if cache_path is not None and "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        cache_kwargs = {"calibration_cache_path": str(cache_path)}
    elif cache_path is not None:  # an onnxruntime older than the cache: calibrate every time
        cache_path, cache_hit = None, False
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference only: the graph is already simplified, and onnxruntime's optimizer
        # could fuse nodes into contrib ops that TensorRT's parser does not know.
        quant_pre_process(str(model), str(prepared), skip_optimization=True)
        reader = _Reader(meta["input_name"], calib, meta["input_size"], meta["resize"], total,
                         progress and not cache_hit, meta["input_format"])
        with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints once per chunk
            quantize_static(
                str(prepared), str(Path(tmp) / "int8.onnx"), reader,
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8, per_channel=True, reduce_range=False,
                calibrate_method=methods[method], op_types_to_quantize=list(QUANTIZED_OPS),
                nodes_to_quantize=chosen, nodes_to_exclude=kept + in_graph, **cache_kwargs,
                extra_options=extra_options,
            )
        qmodel = onnx.load(str(Path(tmp) / "int8.onnx"))
    del qmodel.metadata_props[:]
    onnx.helper.set_model_props(qmodel, {**props, "edge_mtl.int8": f"qdq {method} {total} images "
                                                   f"of {calib.name}; kept float: {len(kept)} nodes"})
    onnx.checker.check_model(qmodel)
    write_atomic(out, qmodel.SerializeToString())
    quantized = sum(n.op_type == "QuantizeLinear" for n in qmodel.graph.node)
    return QuantizeResult(path=out, method=method, images=total, quantized_nodes=quantized,
                          kept_nodes=kept, ranges_cache=cache_path, cache_hit=cache_hit)
