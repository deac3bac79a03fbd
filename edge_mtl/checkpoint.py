"""Checkpoint files: config + weights (+ optimizer state and step while training)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from edge_mtl.config import Config
from edge_mtl.files import sha256, write_atomic  # noqa: F401  (sha256 re-exported: checkpoint.sha256)
from edge_mtl.model.tritask import TriTaskNet, build_model

FORMAT = "edge_mtl.ckpt/1"


class NonFiniteError(ValueError):
    """A checkpoint would hold, or holds, NaN or inf."""


def non_finite(tree: Any, prefix: str = "") -> list[str]:
    """Names of the floating tensors in a (nested dict/list of) tensors that hold NaN or inf."""
    if isinstance(tree, torch.Tensor):
        return [prefix or "tensor"] if tree.is_floating_point() and not torch.isfinite(tree).all() else []
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return []
    return [name for k, v in items for name in non_finite(v, f"{prefix}.{k}" if prefix else str(k))]


def save_checkpoint(path: str | os.PathLike, cfg: Config, model: torch.nn.Module,
                    **state: Any) -> Path:
    """Write atomically (temp file + rename) so an interrupted save never corrupts a run.

    Refused (`NonFiniteError`, the file already there kept) when any tensor holds NaN or inf.
    """
    path = Path(path)
    payload = {"format": FORMAT, "config": cfg.to_dict(), "model": model.state_dict(), **state}
    bad = non_finite(payload)
    if bad:
        raise NonFiniteError(f"{path}: not written, {len(bad)} tensor(s) hold NaN or inf "
                             f"({', '.join(bad[:3])}); the file already there is kept")
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic(payload, path)
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
    weights = payload.get("model")
    if not isinstance(payload.get("config"), dict) or not isinstance(weights, dict) or \
            not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(f"{path}: damaged edge_mtl checkpoint (needs a config mapping and a model "
                         "of named tensors)")
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


def check_finite_weights(weights: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """`NonFiniteError` naming the file and tensors when any weight or buffer is NaN or inf."""
    bad = non_finite(weights)
    if bad:
        raise NonFiniteError(f"{path}: {len(bad)} weight tensor(s) hold NaN or inf ({', '.join(bad[:3])}); "
                             "this checkpoint cannot be evaluated, exported or resumed")


def load_model(path: str | os.PathLike) -> tuple[Config, TriTaskNet]:
    """Rebuild the network from a checkpoint's own config; returns it in eval mode, fp32.
    A checkpoint with non-finite weights is refused."""
    payload = read_checkpoint(path)
    check_finite_weights(payload["model"], path)
    cfg = Config.from_dict(payload["config"], source=f"{path}:config")
    cfg.model.pretrained = None  # the checkpoint already holds the weights
    model = build_model(cfg.model)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}
    load_weights(model, state, path)
    return cfg, model.eval()


def release(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Strip optimizer state and store weights in fp16: the small file that ships in models/."""
    payload = read_checkpoint(src)
    check_finite_weights(payload["model"], src)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    bad = non_finite(weights)
    if bad:
        raise NonFiniteError(f"{src}: {', '.join(bad[:3])} overflow fp16; not released")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic({"format": FORMAT, "config": payload["config"], "model": weights,
                  "step": payload.get("step")}, dst)
    return dst


def _save_atomic(payload: dict[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomic(path, buffer.getvalue())
