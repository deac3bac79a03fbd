"""The quantization report: run folders of eval / bench / camera JSONs -> markdown, JSON, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_mtl.cli import main
from edge_mtl.report import SCHEMA, build_report
from edge_mtl.report.tables import METRICS, is_flagged, relative_change, relative_loss

MODEL = {"path": "model.onnx", "sha256": "ab" * 32, "input_size": [384, 640],
         "class_names": ["car", "truck", "pedestrian"], "backbone": "mobilenet_v3_large",
         "params": 3222503, "checkpoint_sha256": "cd" * 32}
HOST = {"machine": "x86_64", "processor": "x86_64", "cpus": 2, "python": "3.11.7"}
FP32 = {"map50": 0.93, "map": 0.725, "iou": 0.935, "f1": 0.967, "abs_rel": 0.0421, "rmse": 1.94,
        "delta1": 0.989}


def stat(p50: float) -> dict:
    return {"p50": p50, "p90": p50 * 1.2, "mean": p50 * 1.05, "max": p50 * 2}


def eval_json(precision: str = "fp32", backend: str = "onnxruntime", values: dict | None = None,
              data: str = "data/val", n: int = 20, tasks: tuple = ("det", "lane", "depth"),
              model: dict | None = None) -> dict:
    """The shape `edge-mtl eval --json` writes (edge_mtl/evaluate.py)."""
    v = FP32 | (values or {})
    metrics = {"det": {"num_images": n, "num_objects": 107, "num_detections": 1141, "map50": v["map50"],
                       "map": v["map"], "ap50_per_class": {"car": 0.92, "truck": 0.97, "pedestrian": 0.9}},
               "lane": {"iou": v["iou"], "f1": v["f1"], "precision": 0.947, "recall": 0.987},
               "depth": {"abs_rel": v["abs_rel"], "rmse": v["rmse"], "delta1": v["delta1"], "num_images": n,
                         "max_depth": 80.0}}
    return {"schema": "edge_mtl.eval/1", "model": model or MODEL, "backend": backend, "precision": precision,
            "device": "cpu", "providers": ["CPUExecutionProvider"], "input_size": [384, 640],
            "data": {"path": data, "num_samples": n, "labelled": {t: n for t in tasks}},
            "metrics": {t: metrics[t] for t in tasks}, "seconds": 1.7}


def bench_json(precision: str = "fp32", backend: str = "onnxruntime") -> dict:
    """The shape `edge-mtl bench --json` writes (edge_mtl/bench.py)."""
    return {"schema": "edge_mtl.bench/1", "model": MODEL, "backend": backend, "precision": precision,
            "device": "cpu", "providers": ["CPUExecutionProvider"], "input_size": [384, 640],
            "frame_size": [720, 1280], "frames": 30, "warmup": 20, "model_only_ms": stat(20.0),
            "stages_ms": {"pre": stat(5.0), "infer": stat(21.0), "post": stat(2.0), "e2e": stat(28.0)},
            "fps": {"model_only_p50": 50.0, "e2e": 35.7}, "host": HOST}


def camera_json(precision: str = "fp32", backend: str = "onnxruntime") -> dict:
    """The shape `edge-mtl camera --bench-json` writes (edge_mtl/camera/loop.py `_summary`)."""
    return {"schema": "edge_mtl.camera/1",
            "source": {"value": "8 frames in memory x 30", "kind": "memory", "live": False, "fps": 30.0},
            "model": MODEL, "backend": backend, "precision": precision, "device": "cpu",
            "providers": ["CPUExecutionProvider"], "input_size": [384, 640], "frame_size": [720, 1280],
            "frames": 30, "dropped": 0, "stop_reason": "end of stream", "elapsed_s": 0.9,
            "fps": {"mean": 32.1, "p50": 31.5},
            "stages_ms": {"capture": stat(0.3), "pre": stat(4.0), "infer": stat(22.0), "post": stat(1.3),
                          "draw": stat(1.7), "output": stat(0.001), "loop": stat(31.7)},
            "pre_post_draw_ms": stat(7.0), "record": None, "recorded_frames": 0, "host": HOST}


def write(folder: Path, name: str, data: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def metric(mid: str):
    return next(m for m in METRICS if m.id == mid)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    write(run, "eval_fp32.json", eval_json())
    # INT8: det mAP@0.5 2 % worse, lane IoU 0.5 % worse, AbsRel 3 % worse (higher), RMSE 5 % better
    write(run, "eval_int8.json", eval_json("int8", values={"map50": 0.93 * 0.98, "iou": 0.935 * 0.995,
                                                          "abs_rel": 0.0421 * 1.03, "rmse": 1.94 * 0.95}))
    write(run, "bench.json", bench_json())
    write(run, "camera.json", camera_json())
    (run / "model.onnx").write_bytes(b"\0" * 2_500_000)  # not a real ONNX: size from disk, params from JSON
    return run


def test_relative_loss_direction_and_flag_threshold():
    map50, abs_rel, rmse, lane = (metric(m) for m in ("det.map50", "depth.abs_rel", "depth.rmse", "lane.iou"))
    assert relative_change(0.9, 1.0) == pytest.approx(-0.1)
    assert relative_loss(map50, 0.9, 1.0) == pytest.approx(0.1)  # higher is better: a drop is a loss
    assert relative_loss(abs_rel, 0.0505, 0.05) == pytest.approx(0.01)  # lower is better: a rise is a loss
    assert is_flagged(map50, 0.98, 1.0) and not is_flagged(map50, 0.995, 1.0)
    assert not is_flagged(map50, 1.05, 1.0)  # a gain is never flagged
    assert is_flagged(abs_rel, 0.0206, 0.02) and not is_flagged(abs_rel, 0.018, 0.02)
    assert not is_flagged(lane, 0.99, 1.0)  # exactly 1 %: within the budget
    assert is_flagged(lane, 0.9899, 1.0)
    assert not is_flagged(rmse, 3.0, 1.0)  # not a headline metric
    assert relative_change(0.5, 0.0) is None and not is_flagged(map50, 0.5, 0.0)
    assert relative_change(None, 1.0) is None and not is_flagged(map50, None, 1.0)


def test_report_tables_flags_and_files(run_dir: Path, tmp_path: Path):
    import cv2

    out = tmp_path / "out"
    report = build_report([run_dir], out)
    assert report["schema"] == SCHEMA
    saved = json.loads((out / "report.json").read_text(),
                       parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert saved["schema"] == SCHEMA and saved["accuracy"]["flags"] == report["accuracy"]["flags"]

    rows = {r["label"]: r for r in report["accuracy"]["rows"]}
    assert list(rows) == ["FP32 (torch)", "FP32 (onnxruntime)", "INT8-QDQ (onnxruntime)", "TensorRT FP16",
                          "TensorRT INT8"]
    int8 = rows["INT8-QDQ (onnxruntime)"]
    assert rows["FP32 (onnxruntime)"]["is_reference"] and int8["reference"] == "FP32 (onnxruntime)"
    assert sorted(int8["flags"]) == ["depth.abs_rel", "det.map50"]
    assert int8["relative"]["det.map50"] == pytest.approx(-0.02)
    assert int8["relative"]["depth.rmse"] == pytest.approx(-0.05)
    assert {(f["row"], f["metric"]) for f in report["accuracy"]["flags"]} == {
        ("INT8-QDQ (onnxruntime)", "det.map50"), ("INT8-QDQ (onnxruntime)", "depth.abs_rel")}
    for label in ("FP32 (torch)", "TensorRT FP16", "TensorRT INT8"):
        assert not rows[label]["measured"] and set(rows[label]["metrics"].values()) == {None}

    speed = {r["label"]: r for r in report["speed"]}
    assert speed["FP32 (onnxruntime)"]["model_only_p50_ms"] == 20.0
    assert speed["FP32 (onnxruntime)"]["bench_fps"] == 35.7
    assert speed["FP32 (onnxruntime)"]["camera_fps_p50"] == 31.5
    assert speed["TensorRT INT8"]["bench_fps"] is None and not speed["TensorRT INT8"]["measured"]
    camera = next(r for r in report["latency"] if r["kind"] == "camera")
    assert camera["stages"]["draw"]["p50"] == 1.7 and camera["pre_post_draw"]["p50"] == 7.0
    (model,) = report["models"]
    assert (model["file"], model["bytes"], model["mb"], model["params"]) == ("model.onnx", 2_500_000, 2.5,
                                                                             3222503)

    md = (out / "report.md").read_text()
    table_row = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    trt_cells = table_row["TensorRT FP16"].strip("| ").split(" | ")[1:]
    assert trt_cells and set(trt_cells) == {"not measured"}
    assert "−2.00 % ⚠" in md and "(−0.50 %)" in md and "+3.00 % ⚠" in md and "(−5.00 %)" in md

    assert set(report["plots"]) == {"accuracy", "latency", "accuracy_vs_fps"}
    for name in report["plots"].values():
        assert f"]({name})" in md
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


def test_foreign_and_sidecar_jsons_are_skipped_or_used(tmp_path: Path):
    run = tmp_path / "run"
    write(run, "eval.json", eval_json())
    write(run, "config.json", {"lr": 0.1})
    write(run, "other.json", {"schema": "someone.else/2"})
    write(run, "list.json", "[1, 2]")
    report = build_report([run], tmp_path / "out")
    skipped = {Path(s["path"]).name: s["why"] for s in report["skipped"]}
    assert set(skipped) == {"config.json", "other.json", "list.json"}
    assert "someone.else/2" in skipped["other.json"] and "no \"schema\"" in skipped["config.json"]
    assert [Path(i["path"]).name for i in report["inputs"]] == ["eval.json"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "skipped" in md and "other.json" in md
    # a report's own JSON in the folder is not read back as a measurement
    again = build_report([run, tmp_path / "out"], tmp_path / "out")
    assert [Path(i["path"]).name for i in again["inputs"]] == ["eval.json"]


def test_broken_json_is_an_error_naming_the_file(tmp_path: Path, capsys):
    run = tmp_path / "run"
    write(run, "eval.json", eval_json())
    write(run, "bench_broken.json", '{"schema": "edge_mtl.bench/1", "frames": ')
    with pytest.raises(ValueError, match=r"bench_broken\.json: not valid JSON"):
        build_report([run], tmp_path / "out")
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 2
    assert "bench_broken.json" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_report([tmp_path / "nowhere"], tmp_path / "out")


def test_unmeasured_cells_and_other_data_are_not_compared(tmp_path: Path):
    run = tmp_path / "run"
    write(run, "a_fp32.json", eval_json(tasks=("det", "lane")))  # no depth labels
    write(run, "b_int8.json", eval_json("int8", tasks=("det", "lane"), values={"map50": 0.5}))
    write(run, "c_int8_other.json", eval_json("int8", data="data/val200", n=200, values={"map50": 0.1}))
    report = build_report([run], tmp_path / "out")
    rows = [r for r in report["accuracy"]["rows"] if r["measured"]]
    assert len({r["label"] for r in rows}) == 3  # duplicates (backend, precision) get distinct labels
    same = next(r for r in rows if r["source"].endswith("b_int8.json"))
    other = next(r for r in rows if r["source"].endswith("c_int8_other.json"))
    assert same["metrics"]["depth.abs_rel"] is None and same["flags"] == ["det.map50"]
    assert other["reference"] is None and other["flags"] == []  # no FP32 measured on data/val200
    md = (tmp_path / "out" / "report.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {same['label']} |"))
    assert line.count("not measured") == 3  # AbsRel, RMSE, δ1
    assert "no FP32 reference on this data" in md
    assert not (tmp_path / "out" / "latency.png").exists() and "latency" in report["plot_notes"]


def test_runtime_nesting_and_empty_folder(tmp_path: Path):
    run = tmp_path / "run"
    nested = eval_json("fp16", backend="tensorrt")
    nested["runtime"] = {k: nested.pop(k) for k in ("backend", "precision", "device", "providers")}
    nested["runtime"]["tensorrt_version"] = "10.3.0"
    write(run, "eval_trt.json", nested)
    (tmp_path / "empty").mkdir()
    report = build_report([tmp_path / "empty", run], tmp_path / "out")
    rows = {r["label"]: r for r in report["accuracy"]["rows"]}
    assert rows["TensorRT FP16"]["measured"] and "TensorRT 10.3.0" in rows["TensorRT FP16"]["measured_on"]
    assert any("empty" in n for n in report["notes"])

    nothing = build_report([tmp_path / "empty"], tmp_path / "out2")
    assert nothing["plots"] == {} and not list((tmp_path / "out2").glob("*.png"))
    assert all(not r["measured"] for r in nothing["accuracy"]["rows"])
    assert "not measured" in (tmp_path / "out2" / "report.md").read_text()


def test_cli_report_prints_written_paths(run_dir: Path, capsys):
    assert main(["report", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert str(run_dir / "report.md") in printed and str(run_dir / "report.json") in printed
    assert all(Path(p).is_file() for p in printed)


def test_speed_rows_keep_devices_apart(tmp_path):
    run = tmp_path / "run"
    write(run, "bench_cpu.json", bench_json())
    gpu = bench_json() | {"device": "cuda", "model_only_ms": stat(3.0),
                          "host": HOST | {"machine": "aarch64"}}
    write(run, "bench_gpu.json", gpu)
    rows = [r for r in build_report([run], tmp_path / "out")["speed"]
            if (r["backend"], r["precision"]) == ("onnxruntime", "fp32")]
    assert sorted((r["device"], r["model_only_p50_ms"]) for r in rows) == [("cpu", 20.0), ("cuda", 3.0)]
    for r in rows:
        assert len(r["measured_on"]) == 1 and r["label"].endswith(r["device"])


def test_nan_null_and_text_metrics_read_invalid_not_unmeasured(tmp_path: Path, capsys):
    run = tmp_path / "run"
    write(run, "eval_fp32.json", eval_json())
    int8 = eval_json("int8", values={"map50": float("nan"), "iou": None, "rmse": "n/a"})
    del int8["metrics"]["depth"]["delta1"]  # a missing key stays "not measured"
    write(run, "eval_int8.json", int8)  # json.dumps writes the bare NaN an old eval JSON holds
    assert "NaN" in (run / "eval_int8.json").read_text()
    report = build_report([run], tmp_path / "out")
    row = next(r for r in report["accuracy"]["rows"] if r["label"] == "INT8-QDQ (onnxruntime)")
    assert row["invalid"] == {"det.map50": "NaN", "lane.iou": "null", "depth.rmse": '"n/a"'}
    assert row["metrics"]["depth.delta1"] is None and "depth.delta1" not in row["invalid"]
    assert sorted(row["flags"]) == ["depth.rmse", "det.map50", "lane.iou"]  # not a silent pass
    flags = {f["metric"]: f for f in report["accuracy"]["flags"]}
    assert flags["det.map50"]["invalid"] == "NaN" and flags["det.map50"]["value"] is None
    saved = json.loads((tmp_path / "out" / "report.json").read_text(),
                       parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    saved_row = next(r for r in saved["accuracy"]["rows"] if r["label"] == row["label"])
    assert saved_row["invalid"] == row["invalid"]
    md = (tmp_path / "out" / "report.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| INT8-QDQ (onnxruntime) |"))
    cells = line.strip("| ").split(" | ")[1:8]
    assert (cells[0], cells[2], cells[5]) == ("invalid (NaN) ⚠", "invalid (null) ⚠", 'invalid ("n/a") ⚠')
    assert cells[6] == "not measured"
    assert "det mAP@0.5 is invalid (NaN)" in md and "No headline metric" not in md
    assert main(["report", str(run), "--out", str(tmp_path / "out2")]) == 0
    assert "det mAP@0.5 is invalid (NaN)" in capsys.readouterr().err


def test_an_invalid_reference_is_flagged_too(tmp_path: Path):
    run = tmp_path / "run"
    write(run, "eval_fp32.json", eval_json(values={"abs_rel": float("inf")}))
    write(run, "eval_int8.json", eval_json("int8"))
    report = build_report([run], tmp_path / "out")
    assert {(f["row"], f["metric"], f["invalid"]) for f in report["accuracy"]["flags"]} == {
        ("FP32 (onnxruntime)", "depth.abs_rel", "Infinity")}
