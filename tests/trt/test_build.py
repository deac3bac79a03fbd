"""Engine builds through the stub TensorRT of both API generations (8.5 and 10.x)."""

from __future__ import annotations

import json
import sys

import pytest

from edge_mtl.quantize.calibset import load_calibration_set
from edge_mtl.trt.build import build_engine
from edge_mtl.trt.sidecar import check_sidecar, sidecar_path
from edge_mtl.types import OUTPUT_NAMES
from tests.trt.models import make_tiny_onnx
from tests.trt.stub_tensorrt import CACHE_DEVICE, CACHE_MAGIC, make_tensorrt_stub, read_plan


def plan(engine) -> dict:
    return read_plan(engine.read_bytes())


def test_fp16(trt, cudart, tiny_onnx, tmp_path):
    out = tmp_path / "sub" / "tiny.engine"
    path, side = build_engine(tiny_onnx, out, workspace_mb=256, progress=False)
    record = plan(path)
    assert path == out and record["flags"] == ["FP16"]
    assert record["pools"] == {"WORKSPACE": 256 << 20} and record["device_type"] == "GPU"
    assert side == json.loads(sidecar_path(out).read_text()) == check_sidecar(out, trt.__version__,
                                                                             "NVIDIA Stub GPU")
    assert side["tensorrt_version"] == trt.__version__ and side["precision"] == "fp16"
    assert side["device"] == {"name": "NVIDIA Stub GPU", "compute_capability": "8.7"}
    assert side["input"] == {"name": "image", "shape": [1, 3, 64, 128]}
    assert side["outputs"] == list(OUTPUT_NAMES)
    assert side["build"] == {"flags": ["FP16"], "workspace_mb": 256, "dla_core": None, "timing_cache": None,
                             "int8": None, "calibration": None}
    assert side["model"]["input_size"] == [64, 128] and side["model"]["backbone"] == "tiny"
    assert side["model"]["class_names"] == ["car", "truck", "pedestrian"]
    assert side["model"]["checkpoint_sha256"] == "ab" * 32
    assert (side["model"]["resize"], side["model"]["canonical_focal"]) == ("crop", 100.0)  # geometry kept
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.engine", "tiny.engine.json"]  # no .tmp


@pytest.mark.parametrize("precision", ["int8", "best"])
def test_qdq_model_builds_as_explicit_int8(trt, cudart, qdq_onnx, tmp_path, precision):
    path, side = build_engine(qdq_onnx, tmp_path / "q.engine", precision=precision, progress=False)
    record = plan(path)
    assert record["flags"] == ["FP16", "INT8"] and record["calibration"] is None
    assert side["build"]["int8"] == "explicit" and side["precision"] == precision


def test_qdq_model_without_fast_fp16_is_int8_only(trt, cudart, qdq_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(trt.Builder, "platform_has_fast_fp16", False)
    path, _ = build_engine(qdq_onnx, tmp_path / "q.engine", precision="int8", progress=False)
    assert plan(path)["flags"] == ["INT8"]


def test_qdq_model_refused_in_fp16(trt, cudart, qdq_onnx, tmp_path):
    with pytest.raises(ValueError, match=r"tiny_int8\.onnx: holds Q/DQ nodes.*int8 or best"):
        build_engine(qdq_onnx, tmp_path / "q.engine", precision="fp16")


def test_qdq_model_refuses_a_calibration_set(trt, cudart, qdq_onnx, calib_folder, tmp_path):
    with pytest.raises(ValueError, match="INT8 scales are already in the graph"):
        build_engine(qdq_onnx, tmp_path / "q.engine", precision="int8", calib=str(calib_folder))


def test_fp32_model_in_int8_needs_calibration(trt, cudart, tiny_onnx, tmp_path):
    with pytest.raises(ValueError, match=r"tiny.onnx: an FP32 model \(no Q/DQ nodes\).*--calib"):
        build_engine(tiny_onnx, tmp_path / "e.engine", precision="int8")


@pytest.mark.parametrize("precision", ["int8", "best"])
def test_implicit_int8_calibrates_once_then_reuses_the_cache(trt, cudart, tiny_onnx, calib_folder, tmp_path,
                                                             precision):
    path, side = build_engine(tiny_onnx, tmp_path / "e.engine", precision=precision,
                              calib=str(calib_folder), calib_limit=3, progress=False)
    record = plan(path)
    # FP16 next to INT8, so unquantized layers run in half precision (like trtexec --int8 --fp16)
    assert record["flags"] == ["FP16", "INT8"]
    assert record["calibration"] == {"cache_read": False, "batches": 3}
    assert side["build"]["flags"] == ["INT8", "FP16"]
    calibration = side["build"]["calibration"]
    assert side["build"]["int8"] == "implicit"
    assert calibration["images"] == 3 and calibration["cache_reused"] is False
    assert calibration["set"] == "frames" and calibration["limit"] == 3
    with open(calibration["cache"], "rb") as f:
        assert f.read().startswith(b"TRT-")
    assert cudart.memory.live()["device"] == 0  # the calibration buffer was freed

    path, side = build_engine(tiny_onnx, tmp_path / "e.engine", precision=precision,
                              calib=str(calib_folder), calib_limit=3, progress=False)
    assert plan(path)["calibration"] == {"cache_read": True, "batches": 0}
    calibration = side["build"]["calibration"]
    assert calibration["cache_reused"] is True and calibration["images"] == 0


def test_implicit_int8_without_fast_fp16_is_int8_only(trt, cudart, tiny_onnx, calib_folder, tmp_path,
                                                      monkeypatch):
    monkeypatch.setattr(trt.Builder, "platform_has_fast_fp16", False)
    path, _ = build_engine(tiny_onnx, tmp_path / "e.engine", precision="int8", calib=str(calib_folder),
                           progress=False)
    assert plan(path)["flags"] == ["INT8"]


def test_implicit_int8_on_dla_enables_fp16_too(trt, cudart, tiny_onnx, calib_folder, tmp_path):
    path, side = build_engine(tiny_onnx, tmp_path / "dla.engine", precision="int8", dla_core=0,
                              calib=str(calib_folder), progress=False)
    assert plan(path)["flags"] == ["FP16", "GPU_FALLBACK", "INT8"]
    assert side["build"]["flags"] == ["INT8", "FP16", "GPU_FALLBACK"]


def test_unreadable_image_fails_the_build_and_keeps_no_cache(trt, cudart, tiny_onnx, calib_folder, tmp_path,
                                                             capsys):
    """The bindings swallow what get_batch raises and take it as the end of the batches: the build
    must still fail, with the image named, and leave no truncated cache to be reused."""
    calib_set = load_calibration_set(str(calib_folder), progress=False)
    broken = calib_set.images[2]
    kept = broken.read_bytes()
    broken.unlink()  # unreadable after the set was checked
    out = tmp_path / "e.engine"
    with pytest.raises(ValueError, match=f"calibration set frames: .*{broken.name}: image not found"):
        build_engine(tiny_onnx, out, precision="int8", calib=calib_set, progress=False)
    assert not out.exists() and not list(tmp_path.glob("*.calib"))
    assert cudart.memory.live()["device"] == 0  # the calibration buffer was freed

    broken.write_bytes(kept)
    _, side = build_engine(tiny_onnx, out, precision="int8", calib=calib_set, progress=False)
    assert side["build"]["calibration"]["cache_reused"] is False
    assert side["build"]["calibration"]["images"] == 5


def test_calibration_cache_that_cannot_be_written_fails_the_build(trt, cudart, tiny_onnx, calib_folder,
                                                                  tmp_path):
    (tmp_path / "not_a_folder").write_text("")
    out = tmp_path / "e.engine"
    with pytest.raises(OSError):
        build_engine(tiny_onnx, out, precision="int8", calib=str(calib_folder),
                     calib_cache=tmp_path / "not_a_folder" / "e.calib", progress=False)
    assert not out.exists()


def test_implicit_int8_fills_batches_of_the_network_input(trt, cudart, tmp_path, calib_folder):
    onnx_path = make_tiny_onnx(tmp_path / "b2.onnx", batch=2)
    path, side = build_engine(onnx_path, tmp_path / "b2.engine", precision="int8", calib=str(calib_folder),
                              progress=False)
    assert side["input"]["shape"] == [2, 3, 64, 128]
    assert plan(path)["calibration"] == {"cache_read": False, "batches": 2}  # 5 images: 2 batches of 2
    assert side["build"]["calibration"]["images"] == 4


def test_calibration_set_smaller_than_one_batch(trt, cudart, tmp_path, calib_folder):
    onnx_path = make_tiny_onnx(tmp_path / "b4.onnx", batch=4)
    with pytest.raises(ValueError, match=r"calibration set frames: 3 image\(s\) to use, fewer than one batch "
                                         r"of the network input \[4, 3, 64, 128\]"):
        build_engine(onnx_path, tmp_path / "b4.engine", precision="int8", calib=str(calib_folder),
                     calib_limit=3, progress=False)


def test_calibration_cache_is_keyed_by_onnx_and_images(trt, cudart, tiny_onnx, calib_folder, tmp_path):
    _, first = build_engine(tiny_onnx, tmp_path / "e.engine", precision="int8", calib=str(calib_folder),
                            calib_limit=2, progress=False)
    _, more = build_engine(tiny_onnx, tmp_path / "e.engine", precision="int8", calib=str(calib_folder),
                           calib_limit=4, progress=False)
    assert first["build"]["calibration"]["cache"] != more["build"]["calibration"]["cache"]
    assert more["build"]["calibration"]["cache_reused"] is False


def test_fp16_refuses_a_calibration_set(trt, cudart, tiny_onnx, calib_folder, tmp_path):
    with pytest.raises(ValueError, match="calibration set applies to INT8 builds only"):
        build_engine(tiny_onnx, tmp_path / "e.engine", calib=str(calib_folder))


def test_dla(trt, cudart, tiny_onnx, tmp_path):
    path, side = build_engine(tiny_onnx, tmp_path / "dla.engine", dla_core=1, progress=False)
    record = plan(path)
    assert record["device_type"] == "DLA" and record["dla_core"] == 1
    assert record["flags"] == ["FP16", "GPU_FALLBACK"]
    assert side["build"]["dla_core"] == 1 and side["build"]["flags"] == ["FP16", "GPU_FALLBACK"]


def test_dla_refuses_an_explicit_int8_model(trt, cudart, qdq_onnx, tmp_path):
    with pytest.raises(ValueError, match=r"Q/DQ.*DLA runs implicit INT8 only.*--calib"):
        build_engine(qdq_onnx, tmp_path / "dla.engine", precision="int8", dla_core=0)
    assert not (tmp_path / "dla.engine").exists()


def test_dla_core_that_does_not_exist(trt, cudart, tiny_onnx, tmp_path):
    with pytest.raises(RuntimeError, match="DLA core 2 asked for, but NVIDIA Stub GPU has 2 DLA cores"):
        build_engine(tiny_onnx, tmp_path / "dla.engine", dla_core=2)
    with pytest.raises(ValueError, match="DLA core must be 0 or more"):
        build_engine(tiny_onnx, tmp_path / "dla.engine", dla_core=-1)


def test_timing_cache_persisted_and_reused(trt, cudart, tiny_onnx, tmp_path):
    cache = tmp_path / "caches" / "timing.cache"
    path, side = build_engine(tiny_onnx, tmp_path / "a.engine", timing_cache=cache, progress=False)
    assert cache.read_bytes().startswith(CACHE_MAGIC) and plan(path)["timing_cache_hit"] is False
    assert side["build"]["timing_cache"] == str(cache.resolve())
    path, _ = build_engine(tiny_onnx, tmp_path / "b.engine", timing_cache=cache, progress=False)
    assert plan(path)["timing_cache_hit"] is True


def stub_cache(version: str, device: str = CACHE_DEVICE) -> bytes:
    return CACHE_MAGIC + json.dumps({"version": version, "device": device, "entries": ["x"]}).encode()


@pytest.mark.parametrize("blob", [b"\x00not a timing cache", b"other version"])
def test_timing_cache_corrupt_or_of_another_version_is_dropped(trt, cudart, tiny_onnx, tmp_path, capsys,
                                                               blob):
    """Such a cache fails in create_timing_cache (an error logged, None back), not in set_timing_cache."""
    cache = tmp_path / "timing.cache"
    cache.write_bytes(stub_cache("7.1.3") if blob == b"other version" else blob)
    path, _ = build_engine(tiny_onnx, tmp_path / "a.engine", timing_cache=cache, progress=False)
    err = capsys.readouterr().err
    assert f"warning: timing cache {cache} is corrupt or from another TensorRT version" in err
    assert "starting from an empty cache" in err and plan(path)["timing_cache_hit"] is False
    assert json.loads(cache.read_bytes()[len(CACHE_MAGIC):])["version"] == trt.__version__


def test_timing_cache_that_create_timing_cache_refuses_by_raising(trt, cudart, tiny_onnx, tmp_path, capsys,
                                                                  monkeypatch):
    create = trt.IBuilderConfig.create_timing_cache

    def raising(self, blob):
        if bytes(blob):
            raise RuntimeError("Serialization assertion failed")
        return create(self, blob)

    monkeypatch.setattr(trt.IBuilderConfig, "create_timing_cache", raising)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"garbage")
    build_engine(tiny_onnx, tmp_path / "a.engine", timing_cache=cache, progress=False)
    assert (f"timing cache {cache} is corrupt or from another TensorRT version (RuntimeError: Serialization "
            "assertion failed)") in capsys.readouterr().err


def test_timing_cache_of_another_device_is_dropped(trt, cudart, tiny_onnx, tmp_path, capsys):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(stub_cache(trt.__version__, device="Orin"))
    build_engine(tiny_onnx, tmp_path / "a.engine", timing_cache=cache, progress=False)
    assert (f"warning: timing cache {cache} was recorded on a GPU with other device properties"
            in capsys.readouterr().err)
    assert json.loads(cache.read_bytes()[len(CACHE_MAGIC):])["device"] == CACHE_DEVICE


def test_parser_errors_name_the_node(trt, cudart, tmp_path):
    onnx_path = make_tiny_onnx(tmp_path / "odd.onnx", extra_op="WeirdOp")
    with pytest.raises(ValueError, match=r"odd.onnx: TensorRT .*ONNX parser rejects it:\n"
                                         r"  node '/head/extra' \(WeirdOp\): No importer registered"):
        build_engine(onnx_path, tmp_path / "odd.engine", progress=False)


def test_opset_out_of_range(trt, cudart, tmp_path):
    onnx_path = make_tiny_onnx(tmp_path / "new.onnx", opset=21)
    with pytest.raises(ValueError, match=r"  graph: Unsupported ONNX opset 21"):
        build_engine(onnx_path, tmp_path / "new.engine", progress=False)


@pytest.mark.parametrize(("missing", "precision", "error"), [
    ("fast_fp16", "fp16", "NVIDIA Stub GPU \\(compute capability 8.7\\) has no fast FP16"),
    ("fast_int8", "int8", "NVIDIA Stub GPU \\(compute capability 8.7\\) has no fast INT8")])
def test_platform_without_fast_precision(trt, cudart, qdq_onnx, tiny_onnx, tmp_path, monkeypatch, missing,
                                         precision, error):
    stub = make_tensorrt_stub("8.5" if trt.__version__.startswith("8.") else "10", **{missing: False})
    monkeypatch.setitem(sys.modules, "tensorrt", stub)
    model = tiny_onnx if precision == "fp16" else qdq_onnx
    with pytest.raises(RuntimeError, match=error):
        build_engine(model, tmp_path / "e.engine", precision=precision)


def test_build_failure_reports_tensorrt_errors(trt, cudart, tiny_onnx, tmp_path, monkeypatch):
    def fail(self, network, config):
        self.error("out of workspace for tactic 42")

    monkeypatch.setattr(trt.Builder, "build_serialized_network", fail)
    with pytest.raises(RuntimeError, match=r"could not build .*tiny\.onnx: out of workspace for tactic 42"):
        build_engine(tiny_onnx, tmp_path / "e.engine", progress=False)
    assert not (tmp_path / "e.engine").exists()


def test_errors_of_a_later_build_are_reported(trt, cudart, tiny_onnx, tmp_path, monkeypatch):
    """TensorRT's logger is process-wide: the first build's logger gets the messages of every later
    Builder, so each build must see them there (and only its own)."""
    build_engine(tiny_onnx, tmp_path / "first.engine", progress=False)
    for error in ("out of workspace for tactic 42", "no implementation for layer /stem/mean"):
        monkeypatch.setattr(trt.Builder, "build_serialized_network",
                            lambda self, network, config, e=error: self.error(e))
        with pytest.raises(RuntimeError, match=r"could not build .*tiny\.onnx") as info:
            build_engine(tiny_onnx, tmp_path / "e.engine", progress=False)
        assert str(info.value).endswith(f": {error}")  # not the previous build's error


def test_no_tensorrt(monkeypatch, cudart, tiny_onnx, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(RuntimeError, match="TensorRT Python bindings not found"):
        build_engine(tiny_onnx, tmp_path / "e.engine")


def test_bad_arguments(tiny_onnx, tmp_path):
    with pytest.raises(ValueError, match="unknown precision 'fp32'"):
        build_engine(tiny_onnx, tmp_path / "e.engine", precision="fp32")
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx not found"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "e.engine")
    with pytest.raises(ValueError, match="workspace must be a positive"):
        build_engine(tiny_onnx, tmp_path / "e.engine", workspace_mb=0)
