from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_mtl.data.format import synthesize


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "tiny"
    synthesize(root, 6, seed=11, workers=1, progress=False)
    return str(root)


@pytest.fixture(scope="session")
def dropped_dataset(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("data") / "dropped"
    synthesize(root, 8, seed=12, drop={"det": 0.5, "lane": 0.5, "depth": 0.5},
               workers=1, progress=False)
    return str(root)


@pytest.fixture(autouse=True)
def _ranges_cache_in_tmp(tmp_path_factory, monkeypatch):
    """INT8 activation ranges cached by tests stay out of the checkout's calibration/cache."""
    import edge_mtl.quantize.qdq as qdq

    monkeypatch.setattr(qdq, "RANGES_DIR", tmp_path_factory.getbasetemp() / "ranges")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A randomly initialised tiny model saved as a checkpoint: BN statistics made non-trivial and
    class logits spread out, so detections have distinct scores (ties reorder across backends)."""
    from edge_mtl.checkpoint import save_checkpoint
    from edge_mtl.config import Config
    from edge_mtl.model.tritask import build_model
    from tests.helpers import TINY_SIZE, tiny_model_config

    torch.manual_seed(1)
    cfg = Config(model=tiny_model_config())
    model = build_model(cfg.model).train()
    with torch.no_grad():
        for cls in model.det_head.cls_outs:
            cls.weight.normal_(std=1.0)
        for _ in range(3):
            model(torch.randn(2, 3, *TINY_SIZE))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, cfg, model.eval(), step=0)
    return str(path)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> str:
    from edge_mtl.export.onnx import export_onnx

    return str(export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx").path)
