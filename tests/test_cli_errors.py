"""User errors through `edge_mtl.cli.main`: one line `edge-mtl CMD: error: ...`, exit status 2;
bugs (TypeError...) still end in a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_mtl.cli import main
from tests.helpers import write_random_frames


def _one_error_line(capsys, command: str) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"edge-mtl {command}: error: "), lines
    assert "Traceback" not in lines[0]
    return lines[0]


# --- numeric flags: argparse's usage error, naming the flag and the value, before anything runs ---

@pytest.mark.parametrize("argv, flag, value", [
    (["eval", "m.onnx", "--data", "d", "--limit"], "--limit", "0"),
    (["int8-sensitivity", "m.onnx", "--data", "d", "--limit"], "--limit", "-3"),
    (["int8-sensitivity", "m.onnx", "--data", "d", "--images"], "--images", "0"),
    (["int8-sensitivity", "m.onnx", "--data", "d", "--depth"], "--depth", "0"),
    (["train", "--steps"], "--steps", "0"),
    (["train", "--steps"], "--steps", "-5"),
    (["bench", "--model", "m.onnx", "--frames"], "--frames", "0"),
    (["bench", "--model", "m.onnx", "--warmup"], "--warmup", "-1"),
    (["bench", "--model", "m.onnx", "--ort-threads"], "--ort-threads", "0"),
    (["synth", "--out", "o", "--num"], "--num", "0"),
    (["synth", "--out", "o", "--num", "2", "--workers"], "--workers", "0"),
    (["synth", "--out", "o", "--num", "2", "--seed"], "--seed", "-1"),
    (["calibrate", "m.onnx", "--out", "o.onnx", "--images"], "--images", "0"),
    (["build-engine", "m.onnx", "--out", "m.engine", "--workspace"], "--workspace", "0"),
    (["build-engine", "m.onnx", "--out", "m.engine", "--dla-core"], "--dla-core", "-1"),
    (["camera", "--source", "0", "--max-frames"], "--max-frames", "0"),
    (["camera", "--source", "0", "--fps"], "--fps", "0"),
    (["demo", "--calib-images"], "--calib-images", "0"),
    (["demo", "--val-num"], "--val-num", "-1"),
    (["demo", "--drive-frames"], "--drive-frames", "0"),
    (["demo", "--bench-frames"], "--bench-frames", "0"),
])
def test_out_of_range_counts_are_usage_errors(capsys, argv, flag, value):
    assert main([*argv, value]) == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}: '{value}' is not " in err, err


def test_counts_still_parse_and_help_still_exits_0(capsys):
    from edge_mtl.cli import build_parser

    args = build_parser().parse_args(["bench", "--model", "m.onnx", "--frames", "5", "--warmup", "0"])
    assert (args.frames, args.warmup) == (5, 0)
    assert main(["eval", "--help"]) == 0
    assert "--limit" in capsys.readouterr().out


# --- corrupt ONNX (and checkpoint) files: one line naming the file ---

@pytest.fixture(params=["random", "truncated", "empty"])
def corrupt_onnx(request, tmp_path, tiny_onnx) -> Path:
    data = {"random": np.random.default_rng(0).bytes(4096),
            "truncated": Path(tiny_onnx).read_bytes()[: Path(tiny_onnx).stat().st_size // 2],
            "empty": b""}[request.param]
    path = tmp_path / f"{request.param}.onnx"
    path.write_bytes(data)
    return path


@pytest.fixture
def frames(tmp_path) -> Path:
    return write_random_frames(tmp_path / "frames", 1, (64, 128))


@pytest.mark.parametrize("command", ["check-onnx", "calibrate", "int8-sensitivity", "eval", "bench"])
def test_corrupt_onnx_is_one_line_naming_the_file(capsys, tmp_path, corrupt_onnx, frames, tiny_dataset,
                                                  command):
    argv = {
        "check-onnx": [str(corrupt_onnx)],
        "calibrate": [str(corrupt_onnx), "--calib", str(frames), "--out", str(tmp_path / "q.onnx")],
        "int8-sensitivity": [str(corrupt_onnx), "--data", tiny_dataset, "--calib", str(frames)],
        "eval": [str(corrupt_onnx), "--data", tiny_dataset],
        "bench": ["--model", str(corrupt_onnx), "--frames", "1", "--images", str(frames)],
    }[command]
    assert main([command, *argv]) == 2
    assert str(corrupt_onnx) in _one_error_line(capsys, command)
    assert not (tmp_path / "q.onnx").exists()


def test_corrupt_checkpoint_for_export_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(np.random.default_rng(1).bytes(2048))
    assert main(["export", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    assert str(bad) in _one_error_line(capsys, "export")


# --- configs: YAML syntax, refused tags, bad values and overrides stop train before it starts ---

@pytest.mark.parametrize("text, expected", [
    ("train:\n  steps: [3\n", r"bad.yaml:3: invalid YAML"),
    ("train:\n  data: !!python/object/apply:os.system ['echo owned']\n", "bad.yaml:2: invalid YAML"),
    ("train:\n  steps: abc\n", "bad.yaml: train.steps='abc' is not an integer"),
    ("train:\n  ckpt_every: 0\n", "bad.yaml: train.ckpt_every=0 must be >= 1"),
    ("train:\n  lr: .nan\n", "bad.yaml: train.lr=nan is not a finite number"),
])
def test_bad_config_file_stops_train_naming_file_and_key(capsys, tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    assert expected in _one_error_line(capsys, "train")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, expected", [
    ("train.steps=[", "override 'train.steps=[': train.steps: the value is not valid YAML"),
    ("train.batch_size=abc", "train.batch_size='abc' is not an integer"),
    ("train.hflip=2", "train.hflip=2 is not a boolean"),
    ("weighting.fixed={car: 1}", "weighting.fixed key='car' must be one of"),
])
def test_bad_override_stops_train_naming_it(capsys, tmp_path, override, expected):
    assert main(["train", "--set", override, "--out", str(tmp_path / "run")]) == 2
    assert expected in _one_error_line(capsys, "train")


# --- what main() counts as a user error, and what stays a bug ---

def _raise(error: BaseException):
    def check_onnx(*args, **kwargs):
        raise error
    return check_onnx


@pytest.mark.parametrize("error", [
    FloatingPointError("overflow encountered in multiply"),
    ValueError("first line\n  second line"),
    "decode", "yaml",
])
def test_user_errors_end_as_one_line(capsys, monkeypatch, error):
    import yaml
    from google.protobuf.message import DecodeError

    import edge_mtl.export.check

    error = {"decode": DecodeError("Error parsing message"), "yaml": yaml.YAMLError("bad")}.get(error, error)
    monkeypatch.setattr(edge_mtl.export.check, "check_onnx", _raise(error))
    assert main(["check-onnx", "m.onnx"]) == 2
    line = _one_error_line(capsys, "check-onnx")
    assert line.endswith(" ".join(str(error).split()))


def test_bugs_still_raise(monkeypatch):
    import edge_mtl.export.check

    monkeypatch.setattr(edge_mtl.export.check, "check_onnx", _raise(TypeError("a bug")))
    with pytest.raises(TypeError, match="a bug"):
        main(["check-onnx", "m.onnx"])
