"""Checkpoint files: config + weights (+ optimizer state and step while training)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from edge_mtl.config import Config
from edge_mtl.files import sha256  # noqa: F401  (re-exported: checkpoint.sha256)
from edge_mtl.model.tritask import TriTaskNet, build_model

FORMAT = "edge_mtl.ckpt/1"


def save_checkpoint(path: str | os.PathLike, cfg: Config, model: torch.nn.Module,
                    **state: Any) -> Path:
    """Write atomically (temp file + rename) so an interrupted save never corrupts a run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": cfg.to_dict(), "model": model.state_dict(), **state}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an edge_mtl checkpoint (expected format {FORMAT!r})")
    config = payload.get("config")
    model_cfg = config.get("model") if isinstance(config, dict) else None
    if isinstance(model_cfg, dict):  # written before model.lane_stride existed: the stride-2 head
        model_cfg.setdefault("lane_stride", 2)
    return payload


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor],
                 path: str | os.PathLike) -> None:
    """``load_state_dict`` (strict) whose failure names the file and the way out."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        detail = str(e).splitlines()[-1].strip()[:300]
        raise ValueError(f"{path}: its weights do not fit the network this config builds "
                         f"({detail}); a checkpoint of another architecture (e.g. the earlier "
                         f"experimental stride-4 lane head) can seed a new run with "
                         f"--set train.init={path}") from None


def load_model(path: str | os.PathLike) -> tuple[Config, TriTaskNet]:
    """Rebuild the network from a checkpoint's own config; returns it in eval mode, fp32."""
    payload = read_checkpoint(path)
    cfg = Config.from_dict(payload["config"], source=f"{path}:config")
    cfg.model.pretrained = None  # the checkpoint already holds the weights
    model = build_model(cfg.model)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}
    load_weights(model, state, path)
    return cfg, model.eval()


def release(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Strip optimizer state and store weights in fp16: the small file that ships in models/."""
    payload = read_checkpoint(src)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "config": payload["config"], "model": weights,
                "step": payload.get("step")}, dst)
    return dst


