"""Checkpoint -> static-shape ONNX with metadata, checked and compared against PyTorch."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edge_mtl.checkpoint import load_model
from edge_mtl.export.metadata import INPUT_NAME, build_metadata
from edge_mtl.export.simplify import SIMPLIFIERS, simplify
from edge_mtl.files import sha256
from edge_mtl.runtime.geometry import canonical_focal
from edge_mtl.runtime.preprocess import INPUT_FORMATS, MEAN, STD
from edge_mtl.types import CLASSES, OUTPUT_NAMES

PARITY_ATOL = 1e-4
# The gate is relative to float32 itself. Per output, the float64 forward of the same network on
# the same inputs is the truth; PyTorch's own float32 error against it (its "noise": summation order
# and rounding, which grows with activation size and network depth) is what any float32 engine
# may be expected to show. The ONNX graph passes when its error against float64 is at most
# PARITY_ATOL + PARITY_NOISE_FACTOR x that noise: onnxruntime's error measures 0.7-1.5x
# PyTorch's on the outputs of both backbones (and on each backbone, FPN and head tensor of the
# TF-padded MobileNetV2), up to 3.2x on the box distances of the tiny TF-padded test network on
# frames of the world with street-tree avenues, while a wrong graph (a stem weight off by
# 0.01 %, a shifted TF pad) lands 5x to 1e4x above the bound (tests/export/test_onnx.py). An
# element-wise ``rtol * |ref|`` does not work: a box edge near 0 px is ``point - distance`` with
# distances of hundreds of pixels, and depth is ``exp`` of a sigmoid, so their float32 error
# follows the operands, not the result.
PARITY_NOISE_FACTOR = 4.0
# The noise counted is at most this fraction of the output's largest |value|, so a network that
# float32 cannot compute (PyTorch's own error beyond it) cannot widen the gate without limit.
PARITY_NOISE_CAP = 1e-4


@dataclass
class Reference:
    """PyTorch's outputs for the parity inputs, in float32 and float64, and per output the noise
    (max |float32 - float64|, capped: PARITY_NOISE_CAP) and largest |float64 value|."""

    inputs: list[np.ndarray]
    fp32: list[dict[str, np.ndarray]]
    fp64: list[dict[str, np.ndarray]]
    noise: dict[str, float]
    scale: dict[str, float]
    feeds: list[np.ndarray] | None = None  # what the ONNX reads, when not ``inputs`` (uint8 frames)


def reference_outputs(model: torch.nn.Module, inputs: list[np.ndarray],
                      feeds: list[np.ndarray] | None = None) -> Reference:
    """``model`` (float32, unchanged) and a float64 copy of it run on each input; ``feeds``: what
    the ONNX graph reads instead (the fitted uint8 frames of a ``--uint8-input`` export)."""
    import copy

    model64 = copy.deepcopy(model).double()
    fp32, fp64 = [], []
    noise = dict.fromkeys(OUTPUT_NAMES, 0.0)
    scale = dict.fromkeys(OUTPUT_NAMES, 0.0)
    with torch.inference_mode():
        for x in inputs:
            r32 = {k: v.numpy() for k, v in model(torch.from_numpy(x)).items()}
            r64 = {k: v.numpy() for k, v in model64(torch.from_numpy(x).double()).items()}
            for k in OUTPUT_NAMES:
                noise[k] = max(noise[k], float(np.abs(r32[k] - r64[k]).max(initial=0.0)))
                scale[k] = max(scale[k], float(np.abs(r64[k]).max(initial=0.0)))
            fp32.append(r32)
            fp64.append(r64)
    noise = {k: min(v, PARITY_NOISE_CAP * scale[k]) for k, v in noise.items()}
    return Reference(list(inputs), fp32, fp64, noise, scale, feeds)


@dataclass
class ExportResult:
    path: Path
    opset: int
    simplifier: str
    nodes_before: int
    nodes_after: int
    # stage ("exported", "simplified") -> output name -> max abs difference to PyTorch (float32)
    parity: dict[str, dict[str, float]] = field(default_factory=dict)
    # stage -> output name -> max |ONNX - float64| / (atol + noise_factor x noise); <= 1 passes
    parity_ratio: dict[str, dict[str, float]] = field(default_factory=dict)
    # output name -> PyTorch float32's own max |error| against float64 on the parity inputs
    parity_noise: dict[str, float] = field(default_factory=dict)


def parity_inputs(size: tuple[int, int], batch: int = 1, seed: int = 0, frames: int = 2,
                  input_format: str = "float") -> list[np.ndarray]:
    """Rendered road frames, pre-processed for ``input_format``: what the model sees in use.

    Normalised noise is left out on purpose: it drives the box regressors far outside their
    range, so the gate (relative to PyTorch's own float32 error there) would judge the graph
    on activations it never computes in use.
    """
    from edge_mtl.data.world import render_random
    from edge_mtl.runtime.preprocess import preprocess

    return [np.stack([preprocess(render_random(seed + i).sample.image, size, input_format=input_format)]
                     * batch) for i in range(frames)]


def parity(model_path: str | os.PathLike, reference: torch.nn.Module | Reference,
           inputs: list[np.ndarray] | None = None, atol: float = PARITY_ATOL,
           noise_factor: float = PARITY_NOISE_FACTOR) -> tuple[dict[str, float], dict[str, float]]:
    """Per output: largest |onnxruntime - PyTorch float32| and the gate's ratio, largest
    |onnxruntime - float64| / (atol + noise_factor x PyTorch's own float32 error); <= 1 passes.

    ``reference``: the model (run on ``inputs``) or its ``reference_outputs``, computed once.
    """
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        detail = " ".join(str(e).split())[:300]
        raise ValueError(f"{model_path}: onnxruntime cannot load it ({type(e).__name__}: {detail})") from None
    ref = reference if isinstance(reference, Reference) else reference_outputs(reference, inputs or [])
    worst = dict.fromkeys(OUTPUT_NAMES, 0.0)
    error = dict.fromkeys(OUTPUT_NAMES, 0.0)
    for x, r32, r64 in zip(ref.feeds or ref.inputs, ref.fp32, ref.fp64, strict=True):
        got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {INPUT_NAME: x}), strict=True))
        for k in OUTPUT_NAMES:
            if got[k].shape != r32[k].shape:
                raise ValueError(f"{model_path}: output {k} has shape {list(got[k].shape)}, "
                                 f"PyTorch's {list(r32[k].shape)}")
            worst[k] = max(worst[k], float(np.abs(got[k] - r32[k]).max(initial=0.0)))
            # NaN compares as not <= 1: an output that is NaN in ONNX alone fails the gate
            err = np.abs(got[k].astype(np.float64) - r64[k])
            error[k] = max(error[k], float(err.max(initial=0.0)) if not np.isnan(err).any() else np.inf)
    ratio = {k: error[k] / (atol + noise_factor * ref.noise[k]) for k in OUTPUT_NAMES}
    return worst, ratio


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 17,
                simplifier: str = "onnxslim", batch: int = 1, atol: float = PARITY_ATOL,
                noise_factor: float = PARITY_NOISE_FACTOR, input_format: str = "float") -> ExportResult:
    """Export ``checkpoint`` to ``out``; raises if the checker or the parity check fails.

    ``input_format`` ``uint8``: the graph reads fitted BGR uint8 frames and normalises them
    itself (`edge_mtl.export.graph_input`); its parity is judged against the float model on
    the same frames normalised on the CPU."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input format {input_format!r}: expected one of {list(INPUT_FORMATS)}")
    if simplifier not in SIMPLIFIERS:
        raise ValueError(f"unknown simplifier {simplifier!r}; choose from {list(SIMPLIFIERS)}")
    if not 13 <= opset <= 20:
        raise ValueError(f"opset {opset} outside the supported range 13..20 (TensorRT 8.5 reads "
                         "<= 17, TensorRT 10 <= 20)")
    cfg, model = load_model(checkpoint)
    size = (cfg.model.input_height, cfg.model.input_width)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".export.tmp.onnx")
    try:
        result = _export_checked(checkpoint, cfg, model, size, tmp, out, opset, simplifier, batch,
                                 atol, noise_factor, input_format)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def _torch_export(model: torch.nn.Module, size: tuple[int, int], batch: int, path: Path,
                  opset: int, input_format: str = "float") -> None:
    """The TorchScript exporter (DESIGN: dynamo=False), on every torch that has ``dynamo``."""
    import inspect
    from contextlib import nullcontext

    from edge_mtl.export.graph_input import uint8_input

    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    if input_format == "uint8":
        example, reading = torch.zeros(batch, *size, 3, dtype=torch.uint8), uint8_input(model)
    else:
        example, reading = torch.zeros(batch, 3, *size), nullcontext()
    with torch.no_grad(), warnings.catch_warnings(), reading:
        warnings.simplefilter("ignore", DeprecationWarning)  # the exporter's own notice
        torch.onnx.export(model, (example,), str(path),
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          opset_version=opset, do_constant_folding=True, **kwargs)


def _export_checked(checkpoint, cfg, model, size, tmp: Path, out: Path, opset: int,
                    simplifier: str, batch: int, atol: float, noise_factor: float,
                    input_format: str = "float") -> ExportResult:
    import onnx

    from edge_mtl.export.graph_input import preprocess_nodes

    _torch_export(model, size, batch, tmp, opset, input_format)
    proto = onnx.load(str(tmp))
    feeds = parity_inputs(size, batch, input_format="uint8") if input_format == "uint8" else None
    ref = reference_outputs(model, parity_inputs(size, batch), feeds)
    result = ExportResult(path=out, opset=opset, simplifier=simplifier,
                          nodes_before=len(proto.graph.node), nodes_after=len(proto.graph.node),
                          parity_noise=dict(ref.noise))
    stages = [("exported", proto)]
    if simplifier != "none":
        try:
            proto = simplify(proto, simplifier)
        except (ImportError, RuntimeError, ValueError):
            raise
        except Exception as e:  # a simplifier's own failure: name the stage and the tool
            raise ValueError(f"{out}: {simplifier} failed to simplify the exported graph "
                             f"({type(e).__name__}: {e}); retry with --simplifier none") from e
        result.nodes_after = len(proto.graph.node)
        stages.append(("simplified", proto))

    meta = build_metadata(size, MEAN.tolist(), STD.tolist(), CLASSES[: cfg.model.num_classes],
                          OUTPUT_NAMES, cfg.model.backbone, sha256(checkpoint),
                          sum(p.numel() for p in model.parameters()), cfg.model.resize,
                          canonical_focal(cfg.model.input_width, cfg.model.canonical_focal),
                          input_format)
    for stage, p in stages:
        del p.metadata_props[:]
        onnx.helper.set_model_props(p, meta)
        try:
            onnx.checker.check_model(p, full_check=True)
            preprocess_nodes(p.graph)  # a uint8 graph still starts as TensorRT needs
        except (onnx.checker.ValidationError, ValueError) as e:
            who = "onnx.checker" if isinstance(e, onnx.checker.ValidationError) else "edge_mtl"
            raise ValueError(f"{out}: {who} rejects the {stage} graph: {e}") from e
        onnx.save(p, str(tmp))
        diffs, ratios = parity(tmp, ref, atol=atol, noise_factor=noise_factor)
        result.parity[stage], result.parity_ratio[stage] = diffs, ratios
        bad = [k for k, v in ratios.items() if not v <= 1.0]
        if bad:
            raise ValueError(f"{out}: ONNX ({stage}) differs from the float64 reference beyond "
                             f"{atol:g} + {noise_factor:g} x PyTorch float32's own error: "
                             + ", ".join(f"{k} {ratios[k]:.3g}x the bound (max |diff| to PyTorch "
                                         f"{diffs[k]:.2e}, PyTorch float32 vs float64 "
                                         f"{ref.noise[k]:.2e})" for k in bad))
    return result
