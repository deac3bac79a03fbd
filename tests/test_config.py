"""YAML configs: round trip, clear errors naming the bad key, overrides."""

from __future__ import annotations

import pytest

from edge_mtl.cli import DEFAULT_CONFIG
from edge_mtl.config import Config, apply_overrides


def test_default_model_config_file_loads_and_round_trips(tmp_path):
    cfg = Config.load(DEFAULT_CONFIG)
    assert cfg.model.backbone == "mobilenet_v3_large"
    path = tmp_path / "c.yaml"
    cfg.save(path)
    assert Config.load(path) == cfg


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  backbon: mobilenet_v2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml\.model: unknown key\(s\) \['backbon'\]"):
        Config.load(path)
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        Config.load(tmp_path / "nope.yaml")


def test_overrides_parse_values():
    cfg = apply_overrides(Config(), ["train.steps=7", "model.backbone=mobilenet_v2",
                                     "train.crop_width=null"])
    assert cfg.train.steps == 7 and cfg.model.backbone == "mobilenet_v2"
    assert cfg.train.crop_width is None
    with pytest.raises(ValueError, match="no such setting"):
        apply_overrides(Config(), ["train.stepz=7"])
    with pytest.raises(ValueError, match="multiple of 32"):
        apply_overrides(Config(), ["model.input_width=100"])
