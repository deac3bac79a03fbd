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
from edge_mtl.runtime.preprocess import MEAN, STD
from edge_mtl.types import CLASSES, OUTPUT_NAMES

PARITY_ATOL = 1e-4
# Boxes are in input pixels (up to 640) and depth in metres (up to 120), where float32's own
# spacing is ~6e-5 and ~8e-6: the parity bound is atol + rtol * |reference| (numpy.allclose's
# rule), with rtol a few float32 ulps so that summation order alone never fails an export.
PARITY_RTOL = 1e-6


@dataclass
class ExportResult:
    path: Path
    opset: int
    simplifier: str
    nodes_before: int
    nodes_after: int
    # stage ("exported", "simplified") -> output name -> max abs difference to PyTorch
    parity: dict[str, dict[str, float]] = field(default_factory=dict)
    # stage -> output name -> max of |diff| / (atol + rtol |ref|); <= 1 passes
    parity_ratio: dict[str, dict[str, float]] = field(default_factory=dict)


def parity_inputs(size: tuple[int, int], batch: int = 1, seed: int = 0, frames: int = 2
                  ) -> list[np.ndarray]:
    """Rendered road frames, pre-processed: what the model sees in use.

    Normalised noise is left out on purpose: it drives the box regressors far outside their
    range, where float32 summation order alone moves a stride-32 box edge by ~3e-4 px.
    """
    from edge_mtl.data.world import render_random
    from edge_mtl.runtime.preprocess import preprocess

    return [np.stack([preprocess(render_random(seed + i).sample.image, size)] * batch)
            for i in range(frames)]


def parity(model_path: str | os.PathLike, reference: torch.nn.Module, inputs: list[np.ndarray],
           atol: float = PARITY_ATOL, rtol: float = PARITY_RTOL
           ) -> tuple[dict[str, float], dict[str, float]]:
    """Per output: largest |onnxruntime - PyTorch| and largest |diff| / (atol + rtol |ref|)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        detail = " ".join(str(e).split())[:300]
        raise ValueError(f"{model_path}: onnxruntime cannot load it ({type(e).__name__}: {detail})") from None
    worst = dict.fromkeys(OUTPUT_NAMES, 0.0)
    ratio = dict.fromkeys(OUTPUT_NAMES, 0.0)
    for x in inputs:
        got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {INPUT_NAME: x}), strict=True))
        with torch.inference_mode():
            ref = reference(torch.from_numpy(x))
        for k in OUTPUT_NAMES:
            r = ref[k].numpy()
            diff = np.abs(got[k] - r)
            worst[k] = max(worst[k], float(diff.max()))
            ratio[k] = max(ratio[k], float((diff / (atol + rtol * np.abs(r))).max()))
    return worst, ratio


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 17,
                simplifier: str = "onnxslim", batch: int = 1, atol: float = PARITY_ATOL,
                rtol: float = PARITY_RTOL) -> ExportResult:
    """Export ``checkpoint`` to ``out``; raises if the checker or the parity check fails."""
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
                                 atol, rtol)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def _torch_export(model: torch.nn.Module, size: tuple[int, int], batch: int, path: Path,
                  opset: int) -> None:
    """The TorchScript exporter (DESIGN: dynamo=False), on every torch that has ``dynamo``."""
    import inspect

    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the exporter's own notice
        torch.onnx.export(model, (torch.zeros(batch, 3, *size),), str(path),
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          opset_version=opset, do_constant_folding=True, **kwargs)


def _export_checked(checkpoint, cfg, model, size, tmp: Path, out: Path, opset: int,
                    simplifier: str, batch: int, atol: float, rtol: float) -> ExportResult:
    import onnx

    _torch_export(model, size, batch, tmp, opset)
    proto = onnx.load(str(tmp))
    inputs = parity_inputs(size, batch)
    result = ExportResult(path=out, opset=opset, simplifier=simplifier,
                          nodes_before=len(proto.graph.node), nodes_after=len(proto.graph.node))
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
                          canonical_focal(cfg.model.input_width, cfg.model.canonical_focal))
    for stage, p in stages:
        del p.metadata_props[:]
        onnx.helper.set_model_props(p, meta)
        try:
            onnx.checker.check_model(p, full_check=True)
        except onnx.checker.ValidationError as e:
            raise ValueError(f"{out}: onnx.checker rejects the {stage} graph: {e}") from e
        onnx.save(p, str(tmp))
        diffs, ratios = parity(tmp, model, inputs, atol, rtol)
        result.parity[stage], result.parity_ratio[stage] = diffs, ratios
        bad = [k for k, v in ratios.items() if not v <= 1.0]
        if bad:
            raise ValueError(f"{out}: ONNX ({stage}) differs from PyTorch beyond "
                             f"{atol:g} + {rtol:g}|ref|: "
                             + ", ".join(f"{k} max |diff| {diffs[k]:.2e}" for k in bad))
    return result
