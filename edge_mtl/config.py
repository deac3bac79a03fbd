"""Dataclass configs, read from and written to YAML. No registries, no inheritance.

Every value read (`Config.load`, `Config.from_dict`, `apply_overrides`) is checked against its
field's type hint and the range in the field's metadata before anything runs: ``ge`` (>=),
``gt`` (>), ``le`` (<=), ``choices``, and for a mapping the ``keys`` it may hold (the bounds
then apply to its values). Numbers are coerced (YAML 1.1 reads ``1e-3`` as text; an int is a
valid float), bools and numbers are never taken for each other, NaN and inf are refused. A new
field needs only its type hint and, where it has one, its range.
"""

from __future__ import annotations

import dataclasses
import math
import os
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edge_mtl.runtime.geometry import RESIZE_MODES
from edge_mtl.types import CLASSES, TASKS

T = TypeVar("T")

# What edge_mtl.model.backbone.BACKBONES and edge_mtl.weighting.build_weighting accept, named
# here so that reading a config needs no torch (tests/test_config.py checks that they agree).
BACKBONES: tuple[str, ...] = ("mobilenet_v3_large", "mobilenet_v3_small", "mobilenet_v2")
READER_FORMATS: tuple[str, ...] = ("synth", "bdd100k", "kitti", "kitti-tracking", "kitti-depth", "tusimple",
                                   "culane", "coco")
# loss-level (one backward of a weighted sum), then gradient-level (edge_mtl.weighting)
LOSS_STRATEGIES: tuple[str, ...] = ("fixed", "equal", "uncertainty", "dwa", "rlw", "famo", "logloss")
GRADIENT_STRATEGIES: tuple[str, ...] = ("gradnorm", "pcgrad", "cagrad", "nash_mtl", "imtl_g", "aligned_mtl",
                                        "upgrad")
STRATEGIES: tuple[str, ...] = LOSS_STRATEGIES + GRADIENT_STRATEGIES

_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 60


@dataclass
class ModelConfig:
    backbone: str = field(default="mobilenet_v3_large", metadata={"choices": BACKBONES})
    input_height: int = 384
    input_width: int = 640
    num_classes: int = field(default=3, metadata={"ge": 1, "le": len(CLASSES)})
    fpn_channels: int = field(default=64, metadata={"ge": 1})
    head_channels: int = field(default=64, metadata={"ge": 1})
    seg_channels: int = field(default=32, metadata={"ge": 1})
    # where the lane head computes (output is stride 2 either way); see LaneHead
    lane_stride: int = field(default=4, metadata={"choices": (2, 4)})
    # the depth head's range, in canonical-focal metres (metres x canonical_focal / the camera's
    # focal in input pixels; the same as metres for the synthetic camera at 384x640)
    min_depth: float = field(default=0.5, metadata={"gt": 0})
    max_depth: float = field(default=120.0, metadata={"gt": 0})
    pretrained: str | None = None  # local path to ImageNet backbone weights; never downloaded
    # TF 'SAME' padding (0 before, 1 after on even maps) for the backbone's strided convolutions
    # instead of torchvision's 1 on both sides: what weights converted from TensorFlow were trained
    # with (models/mobilenet_v2_imagenet.pt needs true). Same parameters; exports as Conv pads
    tf_padding: bool = False
    # the first N blocks of the backbone's ``features`` keep their initial (pretrained) weights and
    # BatchNorm statistics in training; -1 = all. Features learnt on real images, kept real
    freeze_backbone: int = field(default=0, metadata={"ge": -1})
    # how a frame of any size reaches the input (edge_mtl.runtime.geometry): letterbox or crop
    resize: str = field(default="letterbox", metadata={"choices": RESIZE_MODES})
    # depth is learnt at this focal length (input pixels); null = 0.8 x input_width
    canonical_focal: float | None = field(default=None, metadata={"gt": 0})

    def __post_init__(self) -> None:
        for name in ("input_height", "input_width"):
            value = getattr(self, name)
            if value <= 0 or value % 32:
                raise ValueError(f"model.{name}={value} must be a positive multiple of 32")
        if self.lane_stride not in (2, 4):
            raise ValueError(f"model.lane_stride={self.lane_stride} must be 2 or 4")
        if not self.max_depth > self.min_depth:
            raise ValueError(f"model.max_depth={self.max_depth} must be greater than "
                             f"model.min_depth={self.min_depth}")


@dataclass
class LossConfig:
    box_weight: float = field(default=2.0, metadata={"ge": 0})
    qfl_beta: float = field(default=2.0, metadata={"ge": 0})
    lane_dice_weight: float = field(default=1.0, metadata={"ge": 0})
    lane_pos_weight: float = field(default=4.0, metadata={"ge": 0})
    silog_lambda: float = field(default=0.85, metadata={"ge": 0, "le": 1})


@dataclass
class WeightingConfig:
    strategy: str = field(default="uncertainty", metadata={"choices": STRATEGIES})
    warmup_steps: int = field(default=300, metadata={"ge": 0})
    fixed: dict[str, float] = field(default_factory=lambda: {"det": 1.0, "lane": 1.0, "depth": 1.0},
                                    metadata={"keys": TASKS, "ge": 0})
    # keyword options of the dynamic strategy, e.g. {temperature: 2.0} for dwa (its class's own)
    options: dict[str, Any] = field(default_factory=dict)
    # where a gradient-level strategy's per-task gradients are taken (edge_mtl.weighting.gradients):
    # at the shared features (one trunk backward) or on the shared parameters (one per task)
    gradients: str = field(default="representation", metadata={"choices": ("representation", "parameters")})

    def __post_init__(self) -> None:
        missing = [t for t in TASKS if t not in self.fixed]
        if missing:
            raise ValueError(f"weighting.fixed needs a weight for every task; missing {missing}")
        if self.strategy == "uncertainty" and not all(w > 0 for w in self.fixed.values()):
            raise ValueError(f"weighting.fixed={self.fixed}: uncertainty weighting starts from "
                             "log(weight), so every weight must be > 0")


@dataclass
class AugmentConfig:
    """Training augmentation (edge_mtl.data.augment); geometric changes move every label."""

    scale_jitter: float = field(default=0.15, metadata={"ge": 0, "le": 0.5})  # zoom in [1-j, 1+j]
    rotate_deg: float = field(default=2.0, metadata={"ge": 0, "le": 15})  # roll in [-r, r]
    translate: float = field(default=0.04, metadata={"ge": 0, "le": 0.25})  # shift, fraction of size
    color_jitter: float = field(default=0.3, metadata={"ge": 0, "le": 1})  # brightness/contrast/saturation
    hue: float = field(default=0.02, metadata={"ge": 0, "le": 0.5})
    blur_p: float = field(default=0.1, metadata={"ge": 0, "le": 1})
    noise_p: float = field(default=0.1, metadata={"ge": 0, "le": 1})
    jpeg_p: float = field(default=0.1, metadata={"ge": 0, "le": 1})
    # a band of rows cut from the camera frame first, at an aspect ratio drawn up to wide_aspect
    # (KITTI is 3.3:1, CULane 2.8:1): the letterboxed strip such sensors give
    wide_p: float = field(default=0.0, metadata={"ge": 0, "le": 1})
    wide_aspect: float = field(default=3.4, metadata={"ge": 1, "le": 8})


@dataclass
class TrainConfig:
    # datasets as FORMAT:PATH[@WEIGHT] (edge_mtl.data.formats; a bare path is synth:PATH)
    data: list[str] = field(default_factory=lambda: ["synth:data/train"])
    # sampling probability of a dataset ~ (weight * size) ** (1 / mix_temperature)
    mix_temperature: float = field(default=1.0, metadata={"gt": 0})
    # reader options by format, e.g. {bdd100k: {lane_width: 6}}
    data_options: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={"keys": READER_FORMATS})
    out: str = "runs/train"
    # the tasks trained (others' labels ignored: a single-task model is tasks: [det])
    tasks: list[str] = field(default_factory=lambda: list(TASKS), metadata={"choices": TASKS})
    # a missing label: masked out of its task's loss, or (an ablation) taken as background
    missing: str = field(default="mask", metadata={"choices": ("mask", "background")})
    steps: int = field(default=2000, metadata={"ge": 1})
    batch_size: int = field(default=8, metadata={"ge": 1})
    lr: float = field(default=2e-3, metadata={"gt": 0})
    weight_decay: float = field(default=0.05, metadata={"ge": 0})
    warmup_lr_steps: int = field(default=100, metadata={"ge": 0})
    # random horizontal crop for speed (a multiple of 32); None = full width
    crop_width: int | None = field(default=320, metadata={"ge": 32})
    hflip: bool = True
    workers: int = field(default=1, metadata={"ge": 0})
    # read every sample before training (RUN/data_check.json); false trusts data checked before
    # (`edge-mtl check-data`): a bad sample is then only skipped when a batch meets it
    check_data: bool = True
    seed: int = field(default=0, metadata={"ge": 0, "le": 2**32 - 1})  # numpy's seed range
    amp: bool = True  # float16 mixed precision (with a GradScaler) on CUDA
    # bfloat16 autocast and channels-last tensors on a CPU that computes bfloat16 natively
    # (AVX512-BF16 or AMX: 1.09 s a step instead of 1.7 for tritask_mnv2 on 2 such cores);
    # float32 on other CPUs
    amp_cpu: bool = False
    log_every: int = field(default=10, metadata={"ge": 1})
    # per-task gradient norms and cosines at the shared features every N steps (0: off); also
    # step time in ms. The run's log.csv, log.png and, with the tensorboard package, RUN/tb
    diag_every: int = field(default=50, metadata={"ge": 0})
    tensorboard: bool = True
    ckpt_every: int = field(default=250, metadata={"ge": 1})
    grad_clip: float = field(default=10.0, metadata={"gt": 0})
    # precise-BN batches after training (0 = keep the running averages)
    bn_batches: int = field(default=50, metadata={"ge": 0})
    init: str | None = None  # start from these weights (fine-tuning); new or reshaped layers fresh
    # steps in a row with a non-finite loss or gradient that stop the run
    max_bad_steps: int = field(default=20, metadata={"ge": 1})

    def __post_init__(self) -> None:
        from edge_mtl.data.formats import DataSpec

        if not self.data:
            raise ValueError("train.data lists no dataset")
        for spec in self.data:
            DataSpec.parse(spec)  # an unknown format or a bad weight fails here, naming the source
        if self.crop_width is not None and self.crop_width % 32:
            raise ValueError(f"train.crop_width={self.crop_width} must be a multiple of 32 (the "
                             "network's largest stride), or null for the full width")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        """A config from plain data, every value checked; a ValueError names ``source`` and the key."""
        return _build(cls, data, source)

    def validated(self, source: str = "config") -> Config:
        """This config read back through `from_dict`: for one built or changed in code."""
        return Config.from_dict(self.to_dict(), source)

    def save(self, path: str | os.PathLike) -> None:
        """Write as YAML, atomically (a run's config.yaml is never half written)."""
        import yaml

        from edge_mtl.files import write_atomic

        write_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        data = read_yaml(path)
        return cls.from_dict({} if data is None else data, source=str(path))


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; a ValueError naming the file (and line) if it is none."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:  # syntax errors, and tags safe_load refuses (!!python/object)
        raise ValueError(_yaml_error(path, e)) from None
    except ValueError as e:  # a YAML constructor's own check, e.g. the date 2024-13-01
        raise ValueError(f"{path}: invalid YAML value: {e}") from None
    except RecursionError:
        raise ValueError(f"{path}: invalid YAML: nested too deeply") from None


def _yaml_error(path: Path, e: Exception) -> str:
    """``FILE:LINE: invalid YAML: problem (context at line N)``, on one line."""
    mark, context = getattr(e, "problem_mark", None), getattr(e, "context", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    text = getattr(e, "problem", None) or str(e)
    context_mark = getattr(e, "context_mark", None)
    if context and context_mark is not None:
        text = f"{text} ({context} at line {context_mark.line + 1})"
    return f"{where}: invalid YAML: {' '.join(str(text).split())}"


def _show(value: Any) -> str:
    """``repr`` cut to a readable length (a YAML file can hold anything)."""
    return _SHOW.repr(value)


def _to_number(value: Any, what: str) -> int | float:
    """An int or a float from a number or from numeric text; a bool is no number."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                raise ValueError(f"is not {what}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"is not {what}")
    return value


def _to_int(value: Any) -> int:
    number = _to_number(value, "an integer")
    if isinstance(number, float):
        if not (math.isfinite(number) and number.is_integer()):
            raise ValueError("is not an integer")
        return int(number)
    return number


def _to_float(value: Any) -> float:
    try:
        number = float(_to_number(value, "a number"))
    except OverflowError:
        raise ValueError("is out of range") from None
    if not math.isfinite(number):
        raise ValueError("is not a finite number")
    return number


def _to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("is not a boolean (true or false)")
    return value


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("is not a string (quote it)")
    return value


_SCALARS: dict[type, typing.Callable[[Any], Any]] = {
    bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def _check_range(value: Any, meta: Mapping[str, Any]) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise ValueError(f"must be one of {list(meta['choices'])}")
    if "ge" in meta and not value >= meta["ge"]:
        raise ValueError(f"must be >= {meta['ge']}")
    if "gt" in meta and not value > meta["gt"]:
        raise ValueError(f"must be > {meta['gt']}")
    if "le" in meta and not value <= meta["le"]:
        raise ValueError(f"must be <= {meta['le']}")


# typing.Union[X, None], and X | None (types.UnionType; Python 3.10+, so looked up by name here:
# edge_mtl.compat)
_UNIONS = (typing.Union, getattr(types, "UnionType", typing.Union))


def _optional(hint: Any) -> Any | None:
    """``X`` for a hint ``X | None``, else None."""
    if typing.get_origin(hint) not in _UNIONS:
        return None
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) != 1 or len(typing.get_args(hint)) != 2:
        raise TypeError(f"unsupported config type {hint}: only X | None unions")
    return args[0]


def _check(path: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    """``value`` of the setting ``path`` as ``hint`` within ``meta``; a ValueError names both."""
    inner = _optional(hint)
    if inner is not None:
        if value is None:
            return None
        try:
            return _check(path, value, inner, meta)
        except ValueError as e:
            raise ValueError(f"{e} (or null)") from None
    if hint is Any:  # checked by its consumer (reader options: the reader's signature)
        return value
    if typing.get_origin(hint) is dict:
        return _check_mapping(path, value, hint, meta)
    if typing.get_origin(hint) is list:
        if isinstance(value, str):  # one item may be written without the list
            value = [value]
        if not isinstance(value, list):
            raise ValueError(f"{path}={_show(value)} is not a list")
        (item_hint,) = typing.get_args(hint)
        return [_check(f"{path}[{i}]", v, item_hint, meta) for i, v in enumerate(value)]
    if hint not in _SCALARS:
        raise TypeError(f"config setting {path}: unsupported type {hint}")
    try:
        checked = _SCALARS[hint](value)
        _check_range(checked, meta)
    except ValueError as e:
        raise ValueError(f"{path}={_show(value)} {e}") from None
    return checked


def _check_mapping(path: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{path}={_show(value)} is not a mapping")
    key_hint, value_hint = typing.get_args(hint)
    key_meta = {"choices": meta["keys"]} if "keys" in meta else {}
    value_meta = {k: v for k, v in meta.items() if k != "keys"}
    return {_check(f"{path} key", k, key_hint, key_meta): _check(f"{path}.{k}", v, value_hint, value_meta)
            for k, v in value.items()}


def _build(cls: type[T], data: Any, source: str, prefix: str = "") -> T:
    """``cls`` from a mapping, every value checked (`_check`); errors name ``source`` and the key."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping, "
                         f"got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f"{source}.{prefix.rstrip('.')}" if prefix else source
        raise ValueError(f"{where}: unknown key(s) {_show(sorted(unknown, key=str))}; "
                         f"allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], value, source, f"{prefix}{name}.")
            continue
        try:
            kwargs[name] = _check(prefix + name, value, hints[name], fields[name].metadata)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None
    try:
        return cls(**kwargs)
    except ValueError as e:  # the checks across fields (__post_init__)
        raise ValueError(f"{source}: {e}") from None


def _takes_text(hint: Any) -> bool:
    return (hint is str or _optional(hint) is str
            or (typing.get_origin(hint) is list and typing.get_args(hint) == (str,)))


def _parse_override(item: str, data: dict[str, Any]) -> tuple[str, str, Any]:
    """``section.key=value`` -> (section, key, checked value); a ValueError names ``item``."""
    import yaml

    path, sep, raw = item.partition("=")
    section, _, key = path.partition(".")
    if not sep or not key:
        raise ValueError(f"override {item!r}: expected section.key=value")
    if not isinstance(data.get(section), dict) or key not in data[section]:
        raise ValueError(f"override {item!r}: no such setting {path!r}")
    cls = typing.get_type_hints(Config)[section]
    hint = typing.get_type_hints(cls)[key]
    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        problem = getattr(e, "problem", None) or e
        raise ValueError(f"override {item!r}: {path}: the value is not valid YAML "
                         f"({' '.join(str(problem).split())})") from None
    if _takes_text(hint) and isinstance(value, (bool, int, float)):
        value = raw.strip()  # `train.out=2024` names a folder, not a number
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == key)
    try:
        return section, key, _check(path, value, hint, meta)
    except ValueError as e:
        raise ValueError(f"override {item!r}: {e}") from None


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` strings (values parsed as YAML, checked as in a file) to a config."""
    data = cfg.to_dict()
    for item in overrides:
        section, key, value = _parse_override(item, data)
        data[section][key] = value
    return Config.from_dict(data, source="overrides")


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer >= 1 (an error names the flag and the value)."""
    return _int_at_least(text, 1, "a positive integer")


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def non_negative_int(text: str) -> int:
    """argparse ``type=``: an integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text: str, low: int, what: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value
