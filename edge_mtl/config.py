"""Dataclass configs, read from and written to YAML. No registries, no inheritance."""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class ModelConfig:
    backbone: str = "mobilenet_v3_large"  # or mobilenet_v3_small, mobilenet_v2
    input_height: int = 384
    input_width: int = 640
    num_classes: int = 3
    fpn_channels: int = 64
    head_channels: int = 64
    seg_channels: int = 32
    lane_stride: int = 4  # where the lane head computes (output is stride 2 either way); see LaneHead
    min_depth: float = 0.5
    max_depth: float = 120.0
    pretrained: str | None = None  # local path to ImageNet backbone weights; never downloaded

    def __post_init__(self) -> None:
        for name in ("input_height", "input_width"):
            value = getattr(self, name)
            if value <= 0 or value % 32:
                raise ValueError(f"model.{name}={value} must be a positive multiple of 32")
        if self.lane_stride not in (2, 4):
            raise ValueError(f"model.lane_stride={self.lane_stride} must be 2 or 4")


@dataclass
class LossConfig:
    box_weight: float = 2.0
    qfl_beta: float = 2.0
    lane_dice_weight: float = 1.0
    lane_pos_weight: float = 4.0
    silog_lambda: float = 0.85


@dataclass
class WeightingConfig:
    strategy: str = "uncertainty"  # or "fixed"
    warmup_steps: int = 300
    fixed: dict[str, float] = field(default_factory=lambda: {"det": 1.0, "lane": 1.0, "depth": 1.0})


@dataclass
class TrainConfig:
    data: str = "data/train"
    out: str = "runs/train"
    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_lr_steps: int = 100
    crop_width: int | None = 320  # random horizontal crop for speed; None = full width
    hflip: bool = True
    workers: int = 1
    seed: int = 0
    amp: bool = True  # mixed precision on CUDA only
    log_every: int = 10
    ckpt_every: int = 250
    grad_clip: float = 10.0
    bn_batches: int = 50  # precise-BN batches after training (0 = keep the running averages)
    init: str | None = None  # start from these weights (fine-tuning); new or reshaped layers fresh


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        return _build(cls, data, source)

    def save(self, path: str | os.PathLike) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: top level must be a mapping")
        return cls.from_dict(data, source=str(path))


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{key}: expected a mapping, got {value!r}")
            value = _build(hint, value, f"{where}.{key}")
        kwargs[key] = value
    return cls(**kwargs)


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a config."""
    import yaml

    data = cfg.to_dict()
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or "." not in path:
            raise ValueError(f"override {item!r}: expected section.key=value")
        section, key = path.split(".", 1)
        if section not in data or key not in data[section]:
            raise ValueError(f"override {item!r}: no such setting {path!r}")
        data[section][key] = yaml.safe_load(raw)
    return Config.from_dict(data, source="overrides")
