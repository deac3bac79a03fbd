"""Checkpoint -> static-shape ONNX with metadata, checked and compared against PyTorch."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edge_mtl.checkpoint import load_model, sha256
from edge_mtl.export.metadata import INPUT_NAME, build_metadata
from edge_mtl.export.simplify import SIMPLIFIERS, simplify
from edge_mtl.runtime.preprocess import MEAN, STD
from edge_mtl.types import CLASSES, OUTPUT_NAMES

PARITY_ATOL = 1e-4


@dataclass
class ExportResult:
    path: Path
    opset: int
    simplifier: str
    nodes_before: int
    nodes_after: int
    # stage ("exported", "simplified") -> output name -> max abs difference to PyTorch
    parity: dict[str, dict[str, float]] = field(default_factory=dict)


def parity_inputs(size: tuple[int, int], batch: int = 1, seed: int = 0) -> list[np.ndarray]:
    """A rendered road frame (what the model sees) and normalised noise (what it never sees)."""
    from edge_mtl.data.world import render_random
    from edge_mtl.runtime.preprocess import preprocess

    rng = np.random.default_rng(seed)
    frame = preprocess(render_random(seed).sample.image, size)
    noise = rng.standard_normal((3, *size)).astype(np.float32)
    return [np.stack([frame] * batch), np.stack([noise] * batch)]


def max_abs_diff(model_path: str | os.PathLike, reference: torch.nn.Module,
                 inputs: list[np.ndarray]) -> dict[str, float]:
    """Largest |onnxruntime - PyTorch| per output over ``inputs`` (CPU, fp32)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    worst = dict.fromkeys(OUTPUT_NAMES, 0.0)
    for x in inputs:
        got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {INPUT_NAME: x}), strict=True))
        with torch.inference_mode():
            ref = reference(torch.from_numpy(x))
        for k in OUTPUT_NAMES:
            worst[k] = max(worst[k], float(np.abs(got[k] - ref[k].numpy()).max()))
    return worst


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, opset: int = 17,
                simplifier: str = "onnxslim", batch: int = 1, atol: float = PARITY_ATOL
                ) -> ExportResult:
    """Export ``checkpoint`` to ``out``; raises if the checker or the parity check fails."""
    import onnx

    if simplifier not in SIMPLIFIERS:
        raise ValueError(f"unknown simplifier {simplifier!r}; choose from {list(SIMPLIFIERS)}")
    if not 13 <= opset <= 21:
        raise ValueError(f"opset {opset} outside the supported range 13..21 (TensorRT 8.5 reads <= 17)")
    cfg, model = load_model(checkpoint)
    size = (cfg.model.input_height, cfg.model.input_width)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".export.tmp.onnx")
    example = torch.zeros(batch, 3, *size)
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (DESIGN: dynamo=False); silence its notice.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (example,), str(tmp), input_names=[INPUT_NAME],
                          output_names=list(OUTPUT_NAMES), opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    proto = onnx.load(str(tmp))
    tmp.unlink()
    inputs = parity_inputs(size, batch)
    result = ExportResult(path=out, opset=opset, simplifier=simplifier,
                          nodes_before=len(proto.graph.node), nodes_after=len(proto.graph.node))
    stages = [("exported", proto)]
    if simplifier != "none":
        proto = simplify(proto, simplifier)
        result.nodes_after = len(proto.graph.node)
        stages.append(("simplified", proto))

    meta = build_metadata(size, MEAN.tolist(), STD.tolist(), CLASSES[: cfg.model.num_classes],
                          OUTPUT_NAMES, cfg.model.backbone, sha256(checkpoint),
                          sum(p.numel() for p in model.parameters()))
    for stage, p in stages:
        del p.metadata_props[:]
        onnx.helper.set_model_props(p, meta)
        onnx.checker.check_model(p, full_check=True)
        onnx.save(p, str(tmp))
        diffs = max_abs_diff(tmp, model, inputs)
        result.parity[stage] = diffs
        bad = {k: v for k, v in diffs.items() if not v <= atol}
        if bad:
            tmp.unlink()
            raise ValueError(f"{out}: ONNX ({stage}) differs from PyTorch beyond {atol:g}: "
                             + ", ".join(f"{k} {v:.2e}" for k, v in bad.items()))
    os.replace(tmp, out)
    return result
