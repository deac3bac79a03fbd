"""The runtime install (no torch, torchvision, onnxslim): eval, camera, report and INT8
calibration of an exported ONNX model work, eval and camera also without the onnx package, and a
training command names the extra it needs.

The "install" is this interpreter started with ``-S`` on a copy of its site-packages (as
symbolic links) that lacks those packages, so they are absent as on a runtime-only machine:
``import torch`` fails and ``importlib.util.find_spec("torch")`` is None.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAINING = ("torch", "torchvision", "onnxslim", "functorch", "torchgen")


def _top_name(entry: Path) -> str:
    """The import name an entry of site-packages provides (``torch-2.1.dist-info`` -> torch)."""
    name = entry.name.split("-")[0] if entry.suffix in (".dist-info", ".egg-info") else entry.stem
    return name.lower().replace("-", "_")


def bare_python(folder: Path, absent: tuple[str, ...]) -> list[str]:
    """A command line that runs `edge-mtl` on an interpreter where ``absent`` are not installed."""
    folder.mkdir(parents=True, exist_ok=True)
    for packages in {Path(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}:
        if not packages.is_dir():
            continue
        for entry in packages.iterdir():
            link = folder / entry.name
            if _top_name(entry) in absent or entry.suffix == ".pth" or link.exists():
                continue
            if entry.name.startswith("__editable__"):
                continue
            link.symlink_to(entry)
    return [sys.executable, "-S", "-c",
            f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(folder)!r}]; "
            "from edge_mtl.cli import main; sys.exit(main(sys.argv[1:]))"]


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory) -> list[str]:
    return bare_python(tmp_path_factory.mktemp("no_torch"), TRAINING)


@pytest.fixture(scope="module")
def no_torch_no_onnx(tmp_path_factory) -> list[str]:
    return bare_python(tmp_path_factory.mktemp("no_onnx"), (*TRAINING, "onnx"))


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=300)


def test_the_training_packages_are_really_absent(no_torch_no_onnx):
    probe = [*no_torch_no_onnx[:3], no_torch_no_onnx[3].split("from edge_mtl")[0]
             + "import importlib.util as u; import edge_mtl, onnxruntime; "
             "print([u.find_spec(n) is None for n in ('torch', 'torchvision', 'onnx')]); import torch"]
    result = run(probe)
    assert "[True, True, True]" in result.stdout
    assert result.returncode != 0 and "No module named 'torch'" in result.stderr


def test_eval_camera_and_report_of_an_onnx_model_run_without_torch_or_onnx(
        no_torch_no_onnx, tiny_onnx, tiny_dataset, tmp_path):
    result = run(no_torch_no_onnx, "eval", tiny_onnx, "--data", tiny_dataset, "--limit", "2",
                 "--json", str(tmp_path / "eval.json"))
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "eval.json").read_text())
    assert (scores["backend"], scores["precision"]) == ("onnxruntime", "fp32")
    assert set(scores["metrics"]) == {"det", "lane", "depth"} and scores["data"]["num_samples"] == 2
    frames = Path(tiny_dataset) / "images"
    result = run(no_torch_no_onnx, "camera", "--source", str(frames), "--model", tiny_onnx, "--headless",
                 "--max-frames", "3", "--bench-json", str(tmp_path / "camera.json"))
    assert result.returncode == 0, result.stderr
    assert "3 frames" in result.stdout + result.stderr
    result = run(no_torch_no_onnx, "report", str(tmp_path), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report" / "report.md").is_file()


def test_int8_calibration_runs_without_torch_and_is_seen_as_int8_without_onnx(
        no_torch, no_torch_no_onnx, tiny_onnx, tiny_dataset, tmp_path):
    out = tmp_path / "int8.onnx"
    result = run(no_torch, "calibrate", tiny_onnx, "--calib", str(Path(tiny_dataset) / "images"),
                 "--images", "2", "--method", "minmax", "--out", str(out))
    assert result.returncode == 0, result.stderr
    result = run(no_torch_no_onnx, "eval", str(out), "--data", tiny_dataset, "--limit", "1",
                 "--json", str(tmp_path / "eval.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["precision"] == "int8"


def test_a_training_command_names_the_train_extra(no_torch, tiny_dataset, tmp_path):
    result = run(no_torch, "train", "--data", tiny_dataset, "--out", str(tmp_path / "run"), "--steps", "1")
    assert result.returncode == 2
    assert "edge-mtl[train]" in result.stderr and "torch" in result.stderr
    assert "Traceback" not in result.stderr
