"""YAML configs: round trip, clear errors naming the bad key, overrides."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_mtl.config import Config, apply_overrides
from edge_mtl.paths import DEFAULT_CONFIG, shipped_file


def test_default_model_config_file_loads_and_round_trips(tmp_path):
    cfg = Config.load(DEFAULT_CONFIG)
    assert cfg.model.backbone == "mobilenet_v2" and cfg.model.tf_padding
    assert shipped_file(cfg.model.pretrained).is_file()  # the ImageNet start it names ships too
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


SECTIONS = typing.get_type_hints(Config)  # section name -> its dataclass
SETTINGS = [(name, f.name) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


# --- every value typed and in range (each of these passed silently, or crashed later, before) ---

def _load(tmp_path, text: str, name: str = "x.yaml") -> Config:
    path = tmp_path / name
    path.write_text(text)
    return Config.load(path)


def test_numbers_are_coerced_to_the_field_type(tmp_path):
    cfg = apply_overrides(Config(), ["train.lr=1e-3", "train.steps=1e3", "train.grad_clip=5",
                                     "train.ckpt_every=250", "model.min_depth=1"])
    assert cfg.train.lr == 1e-3 and isinstance(cfg.train.lr, float)  # YAML 1.1 reads 1e-3 as text
    assert cfg.train.steps == 1000 and isinstance(cfg.train.steps, int)
    assert isinstance(cfg.train.grad_clip, float) and isinstance(cfg.model.min_depth, float)
    cfg = _load(tmp_path, "train:\n  lr: '2e-4'\n  batch_size: '4'\n")
    assert (cfg.train.lr, cfg.train.batch_size) == (2e-4, 4)


@pytest.mark.parametrize("section, key, value, problem", [
    ("train", "steps", "abc", "is not an integer"),
    ("train", "steps", 0, "must be >= 1"),
    ("train", "steps", 2.5, "is not an integer"),
    ("train", "steps", True, "is not an integer"),
    ("train", "steps", None, "is not an integer"),
    ("train", "ckpt_every", 0, "must be >= 1"),
    ("train", "log_every", 0, "must be >= 1"),
    ("train", "batch_size", -2, "must be >= 1"),
    ("train", "lr", 0, "must be > 0"),
    ("train", "lr", "fast", "is not a number"),
    ("train", "lr", float("nan"), "is not a finite number"),
    ("train", "lr", float("inf"), "is not a finite number"),
    ("train", "lr", False, "is not a number"),
    ("train", "weight_decay", -0.1, "must be >= 0"),
    ("train", "warmup_lr_steps", -1, "must be >= 0"),
    ("train", "crop_width", 16, "must be >= 32"),
    ("train", "workers", -1, "must be >= 0"),
    ("train", "grad_clip", 0, "must be > 0"),
    ("train", "bn_batches", -1, "must be >= 0"),
    ("train", "max_bad_steps", 0, "must be >= 1"),
    ("train", "seed", -1, "must be >= 0"),
    ("train", "hflip", 1, "is not a boolean"),
    ("train", "amp", "yes please", "is not a boolean"),
    ("train", "data", 5, "is not a list"),
    ("train", "data", [5], "train.data[0]=5 is not a string"),
    ("train", "data_options", {"kitty": {}}, "train.data_options key='kitty' must be one of"),
    ("train", "init", [], "is not a string"),
    ("model", "backbone", "resnet50", "must be one of"),
    ("model", "num_classes", 0, "must be >= 1"),
    ("model", "fpn_channels", 0, "must be >= 1"),
    ("model", "head_channels", 0, "must be >= 1"),
    ("model", "seg_channels", 0, "must be >= 1"),
    ("model", "min_depth", 0, "must be > 0"),
    ("model", "lane_stride", 3, "must be one of [2, 4]"),
    ("model", "input_width", "wide", "is not an integer"),
    ("loss", "box_weight", -1, "must be >= 0"),
    ("loss", "silog_lambda", 1.5, "must be <= 1"),
    ("loss", "qfl_beta", "x", "is not a number"),
    ("weighting", "strategy", "magic", "must be one of ['fixed', 'equal', 'uncertainty'"),
    ("weighting", "warmup_steps", -5, "must be >= 0"),
    ("weighting", "fixed", {"det": -1.0}, "weighting.fixed.det=-1.0 must be >= 0"),
    ("weighting", "fixed", {"det": float("nan")}, "is not a finite number"),
    ("weighting", "fixed", {"car": 1.0}, "weighting.fixed key='car' must be one of"),
    ("weighting", "fixed", [1.0], "is not a mapping"),
])
def test_bad_values_are_refused_naming_file_key_and_value(tmp_path, section, key, value, problem):
    import yaml

    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ValueError) as e:
        Config.load(path)
    message = str(e.value)
    assert message.startswith(f"{path}: {section}.{key}") and problem in message, message


def test_every_field_of_every_section_is_checked():
    """A list is valid for no field: a field added later (its type hint alone) is checked too."""
    for section, key in SETTINGS:
        with pytest.raises(ValueError, match=rf"^src: {section}\.{key}(\[0\])?="):
            Config.from_dict({section: {key: [1]}}, source="src")


def test_null_is_accepted_only_where_the_hint_says_so(tmp_path):
    cfg = _load(tmp_path, "train:\n  crop_width: null\n  init: ~\nmodel:\n  pretrained: null\n")
    assert cfg.train.crop_width is None and cfg.train.init is None and cfg.model.pretrained is None
    with pytest.raises(ValueError, match=r"x\.yaml: train\.batch_size=None is not an integer"):
        _load(tmp_path, "train:\n  batch_size: null\n")


def test_depth_range_must_be_ordered():
    with pytest.raises(ValueError, match=r"overrides: model\.max_depth=1\.0 must be greater than "
                                         r"model\.min_depth=2\.0"):
        apply_overrides(Config(), ["model.min_depth=2", "model.max_depth=1"])


def test_choices_agree_with_the_code_that_uses_them():
    from edge_mtl.config import BACKBONES, STRATEGIES
    from edge_mtl.model.backbone import BACKBONES as BUILT
    from edge_mtl.types import TASKS
    from edge_mtl.weighting import build_weighting

    assert set(BACKBONES) == set(BUILT)
    for strategy in STRATEGIES:
        build_weighting(Config.from_dict({"weighting": {"strategy": strategy}}).weighting, TASKS)


def test_yaml_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"x\.yaml:3: invalid YAML: mapping values are not allowed"):
        _load(tmp_path, "train:\n  steps: 3\n   lr: 1\n")
    with pytest.raises(ValueError, match=r"x\.yaml:4: invalid YAML: .* \(while parsing a flow sequence "
                                         r"at line 3\)"):
        _load(tmp_path, "train:\n  steps: 3\n  lr: [1e-3\n")
    with pytest.raises(ValueError, match=r"x\.yaml:2: invalid YAML: could not determine a "
                                         r"constructor for the tag .*python/object"):
        _load(tmp_path, "train:\n  data: !!python/object/apply:os.system ['echo owned']\n")
    with pytest.raises(ValueError, match=r"x\.yaml: invalid YAML value: month must be in 1\.\.12"):
        _load(tmp_path, "train:\n  data: 2024-13-01\n")
    with pytest.raises(ValueError, match=r"x\.yaml: invalid YAML: nested too deeply"):
        _load(tmp_path, "train: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "bin.yaml").write_bytes(b"train:\n  data: \xff\xfe\n")
    with pytest.raises(ValueError, match=r"bin\.yaml: not UTF-8 text"):
        Config.load(tmp_path / "bin.yaml")
    with pytest.raises(ValueError, match=r"x\.yaml: top level must be a mapping"):
        _load(tmp_path, "- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"x\.yaml: train must be a mapping"):
        _load(tmp_path, "train: 5\n")
    with pytest.raises(ValueError, match=r"x\.yaml: unknown key\(s\) \[5\]"):
        _load(tmp_path, "5: a\n")


def test_overrides_name_the_override_and_key():
    with pytest.raises(ValueError, match=r"override 'train\.steps=\[': train\.steps: the value is not "
                                         r"valid YAML"):
        apply_overrides(Config(), ["train.steps=["])
    with pytest.raises(ValueError, match=r"override 'train\.steps=abc': train\.steps='abc' is not an "):
        apply_overrides(Config(), ["train.steps=abc"])
    with pytest.raises(ValueError, match=r"override 'train\.lr=\.inf': train\.lr=inf"):
        apply_overrides(Config(), ["train.lr=.inf"])
    with pytest.raises(ValueError, match=r"override 'train': expected section\.key=value"):
        apply_overrides(Config(), ["train"])
    cfg = apply_overrides(Config(), ["train.out=2024", "train.data=yes",
                                     "weighting.fixed={det: 2, lane: 1, depth: 0.5}"])
    assert (cfg.train.out, cfg.train.data, cfg.weighting.fixed) == ("2024", ["yes"],
                                                                    {"det": 2.0, "lane": 1.0, "depth": 0.5})


@pytest.mark.parametrize(("override", "problem"), [
    ("train.crop_width=100", "train.crop_width=100 must be a multiple of 32"),
    ("weighting.fixed={det: 2}", "needs a weight for every task; missing ['lane', 'depth']"),
    ("weighting.fixed={det: 0, lane: 1, depth: 1}", "every weight must be > 0"),
])
def test_settings_that_would_fail_only_once_training_runs_are_refused_at_load(override, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        apply_overrides(Config(), [override])
    zero_det = "weighting.fixed={det: 0, lane: 1, depth: 1}"
    fixed = apply_overrides(Config(), ["weighting.strategy=fixed", zero_det])
    assert fixed.weighting.fixed["det"] == 0.0  # a zero weight is fine for fixed weighting


def test_validated_checks_a_config_changed_in_code():
    cfg = Config()
    cfg.train.steps = "12"
    assert cfg.validated().train.steps == 12
    cfg.train.steps = 0
    with pytest.raises(ValueError, match=r"config: train\.steps=0 must be >= 1"):
        cfg.validated()


# --- properties: any input ends in a valid Config or in a ValueError that names where ---

NUMERIC_TEXT = st.sampled_from(["1e-3", "1e3", "250", "-1", "0", "1.5", "nan", "-inf", "1_000", "0x10",
                                " 7 ", "1e400", "9" * 5000, "", "yes", "null"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | NUMERIC_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6) | st.sampled_from(["det", "lane", "depth"]),
                                        inner, max_size=3), max_leaves=6)
PROPERTY = settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow])


def _assert_valid(cfg: Config, tmp_dir) -> None:
    """A config that loaded holds only well-typed values and survives save -> load."""
    assert cfg.validated() == cfg
    path = tmp_dir / "round_trip.yaml"
    cfg.save(path)
    assert Config.load(path) == cfg


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(SETTINGS), VALUES), min_size=1, max_size=3))
def test_mutated_config_dicts_load_or_name_the_key(tmp_path_factory, changes):
    data = Config().to_dict()
    for (section, key), value in changes:
        data[section][key] = value
    try:
        cfg = Config.from_dict(data, source="mutated.yaml")
    except ValueError as e:
        message = str(e)
        assert message.startswith("mutated.yaml: ")
        assert any(f"{section}.{key}" in message for (section, key), _ in changes), message
        return
    _assert_valid(cfg, tmp_path_factory.getbasetemp())


@PROPERTY
@given(st.dictionaries(st.sampled_from([*SECTIONS, "extra"]) | st.text(max_size=5),
                       st.dictionaries(st.sampled_from([k for _, k in SETTINGS]) | st.text(max_size=5),
                                       VALUES, max_size=4) | VALUES, max_size=4))
def test_random_dicts_load_or_name_the_source(tmp_path_factory, data):
    try:
        cfg = Config.from_dict(data, source="random.yaml")
    except ValueError as e:
        assert str(e).startswith("random.yaml"), str(e)
        return
    _assert_valid(cfg, tmp_path_factory.getbasetemp())


DEFAULT_TEXT = Path(DEFAULT_CONFIG).read_text()


@st.composite
def mutated_yaml(draw) -> str:
    text = draw(st.sampled_from([DEFAULT_TEXT, ""]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        insert = draw(st.text(max_size=6) | st.sampled_from(
            [":", "- ", "[", "{", "!!python/object:os.system ", "&a ", "*a", "\n  ", "'", "null",
             ".nan", "1e-3", "yes", "\t", "%YAML 1.1\n", "---\n", "0x1F"]))
        text = text[:at] + insert + text[at + cut:]
    return text


@PROPERTY
@given(mutated_yaml() | st.text(max_size=200))
def test_random_and_mutated_yaml_text_loads_or_names_the_file(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = Config.load(path)
    except ValueError as e:
        assert str(e).startswith(str(path)), str(e)
        return
    _assert_valid(cfg, tmp_path_factory.getbasetemp())


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(SETTINGS) | st.tuples(st.text(max_size=5), st.text(max_size=5)),
                          st.text(max_size=10) | NUMERIC_TEXT | st.sampled_from(["[1, 2]", "{det: 1}", "~"])),
                min_size=1, max_size=3))
def test_random_overrides_apply_or_name_the_override(tmp_path_factory, items):
    overrides = [f"{section}.{key}={raw}" for (section, key), raw in items]
    try:
        cfg = apply_overrides(Config(), overrides)
    except ValueError as e:
        message = str(e)
        assert message.startswith(("override ", "overrides: ")), message
        named = [repr(item) for item in overrides] + [item.partition("=")[0] for item in overrides]
        assert any(name in message for name in named), message
        return
    _assert_valid(cfg, tmp_path_factory.getbasetemp())


def test_data_sources_parse_and_a_bad_one_names_itself(tmp_path):
    cfg = apply_overrides(Config(), ["train.data=[kitti:/d/kitti@2, bdd100k:/d/bdd, data/train]"])
    assert cfg.train.data == ["kitti:/d/kitti@2", "bdd100k:/d/bdd", "data/train"]
    one = apply_overrides(Config(), ["train.data=tusimple:/d/tu"])
    assert one.train.data == ["tusimple:/d/tu"]  # one source needs no list
    with pytest.raises(ValueError, match="unknown format 'kitty'"):
        apply_overrides(Config(), ["train.data=[kitty:/d/kitti]"])
    with pytest.raises(ValueError, match="weight '-1' must be a positive number"):
        apply_overrides(Config(), ["train.data=[kitti:/d/kitti@-1]"])


def test_reader_formats_named_in_config_are_the_registry():
    from edge_mtl.config import READER_FORMATS
    from edge_mtl.data.formats import READERS

    assert set(READER_FORMATS) == set(READERS)
