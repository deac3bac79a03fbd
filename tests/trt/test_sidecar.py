"""The engine sidecar refuses engines that are not what it describes, foreign or stale."""

from __future__ import annotations

import json

import pytest

from edge_mtl.trt.sidecar import (
    SCHEMA,
    check_sidecar,
    make_sidecar,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

TRT = "10.3.0.26"
GPU = "Orin"


@pytest.fixture
def engine(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"onnx bytes")
    path = tmp_path / "m.engine"
    path.write_bytes(b"engine bytes")
    side = make_sidecar(path, tensorrt_version=TRT, device={"name": GPU, "compute_capability": "8.7"},
                        precision="fp16", input_name="image", input_shape=[1, 3, 64, 128],
                        output_names=["depth"], onnx=onnx, build={"dla_core": None},
                        model={"input_size": [64, 128]})
    write_sidecar(path, side)
    return path


def test_written_next_to_the_engine(engine):
    data = json.loads(sidecar_path(engine).read_text())
    assert sidecar_path(engine).name == "m.engine.json"
    assert data["schema"] == SCHEMA and data["engine"]["file"] == "m.engine"
    assert data["onnx"]["path"].endswith("m.onnx") and len(data["onnx"]["sha256"]) == 64
    assert data["created"].endswith("+00:00")
    assert check_sidecar(engine, TRT, GPU) == data


def test_missing_sidecar(engine):
    sidecar_path(engine).unlink()
    with pytest.raises(ValueError, match=r"m.engine: no sidecar m.engine.json"):
        check_sidecar(engine, TRT, GPU)


def test_not_a_sidecar(engine):
    sidecar_path(engine).write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(ValueError, match="not an edge_mtl engine sidecar"):
        read_sidecar(engine)


def test_engine_replaced(engine):
    engine.write_bytes(b"another engine")
    with pytest.raises(ValueError, match=r"m\.engine: the engine is not the one m\.engine\.json describes"):
        check_sidecar(engine, TRT, GPU)


def test_other_tensorrt_version(engine):
    with pytest.raises(ValueError, match=r"built with TensorRT 10.3.0.26, this is TensorRT 8.5.2.2"):
        check_sidecar(engine, "8.5.2.2", GPU)


def test_other_gpu(engine):
    with pytest.raises(ValueError, match=r"built on 'Orin', this GPU is 'Xavier'"):
        check_sidecar(engine, TRT, "Xavier")


def test_stale_onnx(engine, tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"re-exported")
    with pytest.raises(ValueError, match=r"m.engine: stale, .*m.onnx changed since"):
        check_sidecar(engine, TRT, GPU)


def test_onnx_given_explicitly(engine, tmp_path):
    other = tmp_path / "other.onnx"
    other.write_bytes(b"something else")
    with pytest.raises(ValueError, match="stale"):
        check_sidecar(engine, TRT, GPU, onnx_path=other)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.onnx"):
        check_sidecar(engine, TRT, GPU, onnx_path=tmp_path / "nowhere.onnx")


def test_engine_deployed_without_its_onnx(engine, tmp_path):
    (tmp_path / "m.onnx").unlink()
    assert check_sidecar(engine, TRT, GPU)["precision"] == "fp16"


def test_unknown_precision(tmp_path):
    path = tmp_path / "e.engine"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        make_sidecar(path, tensorrt_version=TRT, device={}, precision="fp8", input_name="image",
                     input_shape=[1], output_names=[], onnx=path, build={}, model={})
