"""apps/jetson_deploy.sh: syntax, and its decisions with fake `python3` / `edge-mtl` on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "apps" / "jetson_deploy.sh"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

# Answers the script's `python3 -c ...` probes: TensorRT's version from $FAKE_TRT (absent when
# unset), Python >= 3.10, cuda-python present, OpenCV built with GStreamer, edge_mtl importable.
FAKE_PYTHON = """#!/bin/bash
case "$*" in
    *"import tensorrt"*) [[ -n "${FAKE_TRT:-}" ]] || { echo "No module named 'tensorrt'" >&2; exit 1; }
                         echo "$FAKE_TRT" ;;
    *cv2*) echo YES ;;
    *) exit 0 ;;
esac
"""
FAKE_EDGE = """#!/bin/bash
echo "$*" >> "$FAKE_LOG"
"""


def run(tmp_path: Path, *args: str, trt: str | None) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("python3", FAKE_PYTHON), ("edge-mtl", FAKE_EDGE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for name in ("model.onnx", "model.int8.onnx"):
        (tmp_path / name).write_bytes(b"onnx")
    log = tmp_path / "calls.log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_LOG": str(log), "HOME": str(tmp_path)}
    if trt is not None:
        env["FAKE_TRT"] = trt
    proc = subprocess.run([BASH, str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    return proc, log.read_text().splitlines() if log.exists() else []


def test_script_parses():
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)


def test_stops_with_install_hint_when_tensorrt_is_missing(tmp_path: Path):
    proc, calls = run(tmp_path, "model.onnx", "model.int8.onnx", trt=None)
    assert proc.returncode == 1
    assert "missing on this device" in proc.stderr and "import tensorrt" in proc.stderr
    assert "python3-libnvinfer" in proc.stderr and "--system-site-packages" in proc.stderr
    assert calls == []  # nothing was linted, built or run


@pytest.mark.parametrize(("trt", "args", "target", "onnx", "precision"), [
    ("10.3.0", ("model.onnx", "model.int8.onnx"), "tensorrt-10", "model.int8.onnx", "int8"),
    ("8.5.2.2", ("--precision", "fp16", "model.onnx", "model.int8.onnx"), "tensorrt-8.5", "model.onnx",
     "fp16"),
])
def test_lints_builds_measures_and_reports(tmp_path: Path, trt, args, target, onnx, precision):
    proc, calls = run(tmp_path, "--out", "out", "--frames", "30", *args, trt=trt)
    assert proc.returncode == 0, proc.stderr
    engine = f"out/model_{precision}.engine"
    assert calls == [
        f"check-onnx {onnx} --target {target}",
        f"build-engine {onnx} --out {engine} --precision {precision} --timing-cache out/trt.cache",
        f"bench --model {engine} --backend tensorrt --frames 30 --json out/bench_trt_{precision}.json",
        f"camera --source csi://0 --model {engine} --backend tensorrt --headless --max-frames 30 "
        f"--bench-json out/camera_trt_{precision}.json",
        "report out",
    ]
    assert (tmp_path / "out" / "power.txt").is_file()


def test_refuses_int8_without_the_int8_onnx(tmp_path: Path):
    proc, calls = run(tmp_path, "--precision", "int8", "model.onnx", trt="10.3.0")
    assert proc.returncode == 1 and "INT8 Q/DQ ONNX" in proc.stderr and calls == []
