"""The deployment path through the command line: export -> check-onnx -> calibrate -> eval -> bench."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from edge_mtl.bench import SCHEMA as BENCH_SCHEMA
from edge_mtl.cli import main
from edge_mtl.evaluate import SCHEMA as EVAL_SCHEMA


def test_export_check_calibrate_eval_bench(tmp_path, tiny_checkpoint, tiny_dataset, capsys):
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    assert main(["export", tiny_checkpoint, "--out", str(fp32)]) == 0
    assert "parity simplified" in capsys.readouterr().out
    assert main(["check-onnx", str(fp32), "--target", "tensorrt-8.5"]) == 0
    assert "OK for tensorrt-8.5" in capsys.readouterr().out

    frames = tmp_path / "frames"
    frames.mkdir()
    for p in sorted(Path(tiny_dataset).glob("images/*.jpg"))[:3]:
        cv2.imwrite(str(frames / p.name), cv2.imread(str(p)))
    assert main(["calibrate", str(fp32), "--calib", str(frames), "--out", str(int8),
                 "--method", "percentile", "--keep", "stem"]) == 0
    assert "percentile calibration on 3 images" in capsys.readouterr().out
    assert main(["check-onnx", str(int8), "--target", "tensorrt-10"]) == 0
    capsys.readouterr()

    results = {}
    for name, model in (("torch", tiny_checkpoint), ("fp32", fp32), ("int8", int8)):
        out = tmp_path / f"{name}.json"
        assert main(["eval", str(model), "--data", tiny_dataset, "--json", str(out), "--limit", "3"]) == 0
        results[name] = json.loads(out.read_text())
    capsys.readouterr()
    assert {r["schema"] for r in results.values()} == {EVAL_SCHEMA}
    assert [results[k]["backend"] for k in results] == ["torch", "onnxruntime", "onnxruntime"]
    assert [results[k]["precision"] for k in results] == ["fp32", "fp32", "int8"]
    # one schema for every backend: the same keys; backend specifics only under "runtime"
    assert len({tuple(sorted(r)) for r in results.values()}) == 1
    assert results["fp32"]["runtime"]["providers"][-1] == "CPUExecutionProvider"
    torch_m, onnx_m = results["torch"]["metrics"], results["fp32"]["metrics"]
    assert torch_m["lane"] == pytest.approx(onnx_m["lane"], rel=1e-3)
    torch_bands, onnx_bands = torch_m["depth"].pop("bands"), onnx_m["depth"].pop("bands")
    assert torch_m["depth"] == pytest.approx(onnx_m["depth"], rel=1e-3)
    assert list(torch_bands) == list(onnx_bands)
    for band, values in torch_bands.items():
        assert values == pytest.approx(onnx_bands[band], rel=1e-3)
    assert results["fp32"]["model"]["checkpoint_sha256"] == results["torch"]["model"]["sha256"]

    bench = tmp_path / "bench.json"
    assert main(["bench", "--model", str(fp32), "--frames", "3", "--warmup", "1",
                 "--json", str(bench), "--ort-spin"]) == 0
    b = json.loads(bench.read_text())
    assert b["runtime"]["spin"] is True and results["fp32"]["runtime"]["spin"] is False
    assert b["schema"] == BENCH_SCHEMA and b["backend"] == "onnxruntime" and b["frames"] == 3
    assert set(b["stages_ms"]) == {"pre", "infer", "post", "e2e"}
    assert b["stages_ms"]["e2e"]["p50"] >= b["stages_ms"]["infer"]["p50"] > 0
    assert b["frame_size"] == [720, 1280] and b["fps"]["e2e"] > 0


def test_deploy_commands_fail_clearly(tmp_path, tiny_onnx, capsys):
    assert main(["calibrate", tiny_onnx, "--calib", str(tmp_path / "none"), "--out",
                 str(tmp_path / "x.onnx")]) == 2
    assert "calibration set" in capsys.readouterr().err
    assert main(["build-engine", tiny_onnx, "--out", str(tmp_path / "m.engine")]) == 2
    assert "TensorRT" in capsys.readouterr().err
    assert not (tmp_path / "m.engine").exists()
    assert main(["bench", "--model", tiny_onnx, "--frames", "0"]) == 2
    assert "--frames" in capsys.readouterr().err
