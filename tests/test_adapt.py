"""adapt-bn: target-domain BatchNorm statistics, nothing else changed."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from edge_mtl.checkpoint import load_model
from edge_mtl.cli import main


def test_adapt_bn_moves_only_trainable_batchnorm_statistics(tmp_path):
    from edge_mtl.checkpoint import save_checkpoint
    from edge_mtl.config import Config
    from edge_mtl.model.tritask import build_model
    from tests.helpers import tiny_model_config

    cfg = Config(model=tiny_model_config(freeze_backbone=2))
    torch.manual_seed(0)
    src = save_checkpoint(tmp_path / "src.pt", cfg, build_model(cfg.model).eval(), step=7)
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):  # bright frames: statistics unlike the fresh model's (0 mean, 1 variance)
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(150, 256, (90, 160, 3), dtype=np.uint8))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 90))
    for _ in range(4):
        writer.write(rng.integers(0, 100, (90, 160, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "adapted.pt"
    args = ["adapt-bn", str(src), "--source", str(frames), "--source", str(video), "--out", str(out)]
    assert main(args) == 0
    _, before = load_model(src)
    _, after = load_model(out)
    a, b = before.state_dict(), after.state_dict()
    frozen = {k for k in a if k.startswith(("backbone.features.0.", "backbone.features.1."))}
    moved = {k for k in a if "running_mean" in k and not torch.equal(a[k], b[k])}
    assert moved and not moved & frozen  # trainable BNs adapted, frozen ones kept
    weights = [k for k in a if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(a[k], b[k]) for k in weights)  # no weight changed


def test_adapt_bn_refuses_what_it_cannot_read(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["adapt-bn", str(tiny_checkpoint), "--source", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "x.pt")]) == 2
    assert "no images" in capsys.readouterr().err
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (tmp_path / "one").mkdir()
    (tmp_path / "bad.png").rename(tmp_path / "one" / "bad.png")
    assert main(["adapt-bn", str(tiny_checkpoint), "--source", str(tmp_path / "one"),
                 "--out", str(tmp_path / "x.pt")]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
    assert main(["adapt-bn", str(tiny_checkpoint), "--out", str(tmp_path / "x.pt")]) == 2  # no --source
    assert "--source" in capsys.readouterr().err
