"""The main job's orchestration, on the tiny fixtures (a few frames per step)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from edge_mtl import demo
from edge_mtl.cli import main


@pytest.fixture(scope="module")
def demo_run(tiny_checkpoint, tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    out.mkdir()
    (out / "eval_tensorrt_fp16.json").write_text("{}")  # a stale product of an earlier run
    mp = pytest.MonkeyPatch()
    # The TensorRT step as on a machine without it, wherever the test runs.
    mp.setattr(demo, "tensorrt_missing", lambda: ["TensorRT Python bindings not found (test)"])
    lines: list[str] = []
    try:
        data = demo.run_demo(out, tiny_checkpoint, calib=Path(tiny_dataset) / "images", calib_images=2,
                             val_num=2, drive_frames=4, bench_frames=2, bench_warmup=1, progress=False,
                             log=lines.append)
    finally:
        mp.undo()
    return out, data, "\n".join(lines)


def test_demo_lists_every_step_with_its_status(demo_run):
    out, data, _ = demo_run
    on_disk = json.loads((out / "demo.json").read_text())
    assert on_disk == data
    assert data["schema"] == demo.SCHEMA and data["status"] == "done"
    assert [s["name"] for s in data["steps"]] == list(demo.STEPS)
    status = {s["name"]: s["status"] for s in data["steps"]}
    assert status == {name: "skipped" if name == "tensorrt" else "done" for name in demo.STEPS}
    assert all(s["seconds"] >= 0 for s in data["steps"])
    assert data["settings"]["calib_images"] == 2 and data["settings"]["val_seed"] == demo.VAL_SEED


def test_demo_says_why_no_engine_was_built(demo_run):
    out, data, log = demo_run
    trt = next(s for s in data["steps"] if s["name"] == "tensorrt")
    assert "TensorRT Python bindings not found" in trt["reason"]
    assert "not built" in log and "TensorRT Python bindings not found" in log
    assert not list(out.glob("*.engine")) and not (out / "eval_tensorrt_fp16.json").exists()


def test_demo_writes_every_product(demo_run):
    out, data, log = demo_run
    for name in ("model.onnx", "model.int8.onnx", "drive.mp4", "demo_annotated.mp4", "report.md",
                 "report.json", "bench_onnxruntime_fp32.json", "bench_onnxruntime_int8.json"):
        assert (out / name).stat().st_size > 0, name
    assert list(out.glob("*.png")), "the report's plots"
    for precision in ("fp32", "int8"):
        ev = json.loads((out / f"eval_onnxruntime_{precision}.json").read_text())
        assert ev["schema"] == "edge_mtl.eval/1"
        assert ev["precision"] == precision and ev["data"]["num_samples"] == 2
    cam = json.loads((out / "camera_onnxruntime_fp32.json").read_text())
    assert cam["schema"] == "edge_mtl.camera/1" and cam["frames"] == 4 and cam["recorded_frames"] == 4
    calib = next(s for s in data["steps"] if s["name"] == "calibrate")
    assert calib["details"]["images"] == 2
    assert "[3/9] calibrate INT8 (2 images, percentile)" in log
    assert str(out / "report.md") in log and str(out / "demo_annotated.mp4") in log
    assert not list(out.glob("*.tmp*")), "temporary files left behind"


def test_val_set_is_reused_when_complete(demo_run):
    out, _, _ = demo_run
    assert demo._render_val(out / "val", 2, demo.VAL_SEED, progress=False) is True


def test_missing_checkpoint_names_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert main(["demo", "--out", str(tmp_path / "run"), "--checkpoint", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_tensorrt_missing_reports_each_missing_piece():
    missing = demo.tensorrt_missing()
    if find_spec("tensorrt") is None:
        assert any("TensorRT" in m for m in missing)
    assert all(isinstance(m, str) and m for m in missing)


def test_demo_json_is_strict(tmp_path):
    path = tmp_path / "bench.json"
    demo._write_json(path, {"fps": {"e2e": float("nan")}, "steps": [{"seconds": float("inf")}]})
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data == {"fps": {"e2e": None}, "steps": [{"seconds": None}]}
