from __future__ import annotations

import importlib.util
import json
import math
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_mtl.bench import load_frames
from edge_mtl.camera import loop
from edge_mtl.camera.bench_loop import main as bench_main
from edge_mtl.camera.loop import _open_window, backend_candidates, gpu_runtime_available, run_camera
from edge_mtl.camera.sources import FrameSource
from edge_mtl.cli import main
from tests.helpers import write_random_frames

APP = Path(__file__).resolve().parents[2] / "apps" / "camera.py"
STAGES = ("capture", "pre", "infer", "post", "draw", "output", "loop")


def count_frames(path) -> tuple[int, tuple[int, ...] | None]:
    cap = cv2.VideoCapture(str(path))
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    cap.release()
    return n, shape


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three small frames, one of them gray."""
    return write_random_frames(tmp_path / "frames", 3, (180, 320), gray=(1,))


class ScriptedSource(FrameSource):
    """Frames of 180x320; on read number ``at`` it runs ``action`` (raise, signal...)."""

    def __init__(self, at: int, action):
        self.at, self.action, self.n = at, action, 0
        self.closed = False

    def _read(self):
        self.n += 1
        if self.n == self.at:
            self.action()
        if self.n > 10:
            return None
        return np.full((180, 320, 3), 20 * self.n, np.uint8), self.n - 1

    def close(self):
        self.closed = True


def quiet(msg: str) -> None:
    pass


def truncated_jpeg(shape: tuple[int, int]) -> bytes:
    """A JPEG of random pixels cut after half its bytes (OpenCV still decodes it, partly grey)."""
    data = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 256, (*shape, 3), np.uint8))[1]
    return data.tobytes()[: data.size // 2]


def test_a_stem_chooses_among_its_siblings(tmp_path):
    for suffix in (".pt", ".onnx", ".engine"):
        (tmp_path / f"m{suffix}").write_bytes(b"")
    stem = tmp_path / "m"
    got, _ = backend_candidates(stem, available=lambda kind: True)
    assert [(c.backend, c.device, c.path.suffix) for c in got] == [
        ("tensorrt", "cuda", ".engine"), ("onnxruntime", "cuda", ".onnx"), ("torch", "cuda", ".pt"),
        ("onnxruntime", "cpu", ".onnx"), ("torch", "cpu", ".pt")]
    got, notes = backend_candidates(stem, available=lambda kind: False)
    assert [(c.backend, c.device) for c in got] == [("onnxruntime", "cpu"), ("torch", "cpu")]
    assert any("tensorrt not available" in n for n in notes)
    got, _ = backend_candidates(stem, device="cuda", available=lambda k: k == "torch-cuda")
    assert [(c.backend, c.device) for c in got] == [("torch", "cuda")]
    with pytest.raises(RuntimeError, match="no backend"):
        backend_candidates(stem, device="cuda", available=lambda kind: False)
    got, _ = backend_candidates(stem, backend="onnxruntime", device="cpu")
    assert got[0].path == tmp_path / "m.onnx"
    (tmp_path / "m.engine").unlink()
    with pytest.raises(FileNotFoundError, match="tensorrt"):
        backend_candidates(stem, backend="tensorrt")
    with pytest.raises(FileNotFoundError, match="other"):
        backend_candidates(tmp_path / "other")
    (tmp_path / "m.int8.onnx").write_bytes(b"")  # a stem with a dot: its own sibling, not m.onnx
    got, _ = backend_candidates(tmp_path / "m.int8", available=lambda kind: False)
    assert [c.path.name for c in got] == ["m.int8.onnx"]


def test_a_named_file_is_never_replaced_by_a_sibling(tmp_path):
    for suffix in (".pt", ".onnx", ".engine"):
        (tmp_path / f"m{suffix}").write_bytes(b"")
    got, _ = backend_candidates(tmp_path / "m.onnx", available=lambda kind: True)
    assert [(c.backend, c.device, c.path.name) for c in got] == [
        ("onnxruntime", "cuda", "m.onnx"), ("onnxruntime", "cpu", "m.onnx")]  # auto: the device only
    got, _ = backend_candidates(tmp_path / "m.pt", available=lambda kind: False)
    assert [(c.backend, c.device, c.path.name) for c in got] == [("torch", "cpu", "m.pt")]
    with pytest.raises(RuntimeError, match=r"m\.engine on device 'auto'"):
        backend_candidates(tmp_path / "m.engine", available=lambda kind: False)
    with pytest.raises(ValueError, match=r"m\.onnx: a \.onnx file runs on the onnxruntime backend, not torc"):
        backend_candidates(tmp_path / "m.onnx", backend="torch")
    (tmp_path / "m.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"m\.onnx not found"):
        backend_candidates(tmp_path / "m.onnx")  # m.pt and m.engine are there: not taken


def test_a_corrupt_named_onnx_fails_naming_it_while_a_stem_falls_back(tmp_path, tiny_checkpoint, folder,
                                                                      capsys):
    (tmp_path / "x.onnx").write_bytes(b"not a protobuf")
    shutil.copy(tiny_checkpoint, tmp_path / "x.pt")
    js = tmp_path / "run.json"
    assert main(["camera", "--source", str(folder), "--model", str(tmp_path / "x.onnx"), "--headless",
                 "--max-frames", "1", "--bench-json", str(js)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{tmp_path / 'x.onnx'}" in err and "x.pt" not in err
    assert not js.exists()
    logs: list[str] = []
    with loop.open_model(tmp_path / "x", device="cpu", log=logs.append) as runner:  # a stem: siblings allowed
        assert runner.name == "torch"
    assert any("cannot open" in m and "x.onnx" in m for m in logs)


def test_onnxruntime_gpu_means_the_cuda_provider_not_tensorrts(monkeypatch):
    import onnxruntime as ort

    cpu, cuda, trt = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
    monkeypatch.setattr(ort, "get_available_providers", lambda: [trt, cpu])
    assert not gpu_runtime_available("onnxruntime-gpu")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [trt, cuda, cpu])
    assert gpu_runtime_available("onnxruntime-gpu")


def test_folder_run_records_a_playable_mp4_and_writes_the_summary(tmp_path, tiny_onnx, folder):
    logs: list[str] = []
    out, js = tmp_path / "out" / "run.mp4", tmp_path / "out" / "run.json"
    summary = run_camera(folder, tiny_onnx, headless=True, record=out, bench_json=js, log=logs.append)
    assert count_frames(out) == (3, (180, 320, 3))
    data = json.loads(js.read_text())
    assert data == json.loads(json.dumps(summary))
    assert data["schema"] == "edge_mtl.camera/1" and data["backend"] == "onnxruntime"
    assert (data["frames"], data["dropped"], data["stop_reason"]) == (3, 0, "end of stream")
    assert data["source"]["kind"] == "folder" and data["frame_size"] == [180, 320]
    assert data["fps"]["mean"] > 0 and data["fps"]["p50"] > 0
    for stage in STAGES:
        assert len({"p50", "p90"} & set(data["stages_ms"][stage])) == 2
    assert data["stages_ms"]["capture"]["max"] >= 0 and data["pre_post_draw_ms"]["p50"] > 0
    assert data["record"] == str(out) and data["recorded_frames"] == 3
    assert any("backend onnxruntime" in m for m in logs)


def test_video_source_and_max_frames(tmp_path, tiny_onnx):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 180))
    for i in range(4):
        writer.write(np.full((180, 320, 3), 50 * i, np.uint8))
    writer.release()
    summary = run_camera(str(video), tiny_onnx, headless=True, max_frames=2, log=quiet)
    assert (summary["frames"], summary["stop_reason"]) == (2, "max frames")
    assert summary["source"]["fps"] == pytest.approx(10.0)


def test_keyboard_interrupt_finalises_the_recording(tmp_path, tiny_onnx):
    def interrupt():
        raise KeyboardInterrupt

    src, out, js = ScriptedSource(3, interrupt), tmp_path / "int.mp4", tmp_path / "int.json"
    summary = run_camera(src, tiny_onnx, headless=True, record=out, bench_json=js, log=quiet)
    assert (summary["frames"], summary["stop_reason"]) == (2, "interrupted")
    assert count_frames(out)[0] == 2 and js.is_file() and src.closed


@pytest.mark.parametrize("serial", [True, False])
def test_sigterm_stops_cleanly_and_restores_the_handler(tmp_path, tiny_onnx, serial):
    before = signal.getsignal(signal.SIGTERM)
    src, out = ScriptedSource(3, lambda: signal.raise_signal(signal.SIGTERM)), tmp_path / "term.mp4"
    summary = run_camera(src, tiny_onnx, headless=True, record=out, log=quiet, serial=serial)
    assert summary["stop_reason"] == "SIGTERM"
    if serial:  # the frame being read is finished, then the loop stops
        assert summary["frames"] == 3
    else:  # raised on the capture thread; the main thread stops at once, whichever frame it is on
        assert summary["frames"] < 10
    assert count_frames(out)[0] == summary["frames"] and src.closed
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_failing_source_still_finalises_the_recording(tmp_path, tiny_onnx):
    def fail():
        raise RuntimeError("source 'rtsp://cam' stopped delivering frames")

    src, out, js = ScriptedSource(4, fail), tmp_path / "fail.mp4", tmp_path / "fail.json"
    with pytest.raises(RuntimeError, match="rtsp://cam"):
        run_camera(src, tiny_onnx, headless=True, record=out, bench_json=js, log=quiet)
    assert count_frames(out)[0] == 3 and src.closed
    summary = json.loads(js.read_text())  # what ran before the failure is kept
    assert summary["frames"] == 3
    assert summary["stop_reason"].startswith("error: RuntimeError: source 'rtsp")


def test_any_error_in_the_loop_writes_the_summary_then_raises(tmp_path, tiny_onnx, monkeypatch):
    from edge_mtl.runtime.onnx_backend import OnnxRuntimeBackend

    def corrupt():
        raise ValueError("frame 002.jpg: truncated JPEG")

    js = tmp_path / "value.json"
    with pytest.raises(ValueError, match=r"002\.jpg"):
        run_camera(ScriptedSource(3, corrupt), tiny_onnx, headless=True, bench_json=js, log=quiet)
    summary = json.loads(js.read_text())
    assert summary["frames"] == 2
    assert summary["stop_reason"] == "error: ValueError: frame 002.jpg: truncated JPEG"

    calls = {"n": 0}
    run = OnnxRuntimeBackend._run

    def failing_run(self, images):  # the warm-up and two frames, then the backend fails
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("CUDA error: an illegal memory access\n(stack trace...)")
        return run(self, images)

    monkeypatch.setattr(OnnxRuntimeBackend, "_run", failing_run)
    js = tmp_path / "backend.json"
    with pytest.raises(RuntimeError, match="illegal memory access"):
        run_camera(ScriptedSource(99, quiet), tiny_onnx, headless=True, bench_json=js, log=quiet)
    summary = json.loads(js.read_text())
    assert summary["frames"] == 2
    assert summary["stop_reason"] == "error: RuntimeError: CUDA error: an illegal memory access"


def test_corrupt_frames_are_skipped_counted_and_named(tmp_path, tiny_onnx, folder, capsys):
    bad = folder / "001b.jpg"
    bad.write_bytes(truncated_jpeg((180, 320)))
    js = tmp_path / "run.json"
    summary = run_camera(folder, tiny_onnx, headless=True, bench_json=js, log=quiet)
    assert (summary["frames"], summary["stop_reason"]) == (3, "end of stream")
    assert summary["corrupt_frames"] == 1 and summary["corrupt_files"] == [str(bad)]
    assert json.loads(js.read_text())["corrupt_files"] == [str(bad)]
    warning = [ln for ln in capsys.readouterr().err.splitlines() if "corrupt" in ln]
    assert len(warning) == 1 and str(bad) in warning[0] and "truncated JPEG" in warning[0]


def test_a_folder_of_corrupt_frames_is_an_error_with_a_summary(tmp_path, tiny_onnx):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        (frames / f"{i}.jpg").write_bytes(truncated_jpeg((180, 320)))
    js = tmp_path / "run.json"
    with pytest.raises(ValueError, match=r"all 2 images are corrupt .*0\.jpg: truncated JPEG"):
        run_camera(frames, tiny_onnx, headless=True, bench_json=js, log=quiet)
    summary = json.loads(js.read_text())
    assert summary["frames"] == 0 and summary["corrupt_frames"] == 2
    assert summary["stop_reason"].startswith("error: ValueError: source ")


def test_summary_json_is_strict(tmp_path):
    js = tmp_path / "s.json"
    loop.write_summary({"fps": {"mean": math.nan, "p50": math.inf}, "frames": 0}, js)
    data = json.loads(js.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["fps"] == {"mean": None, "p50": None}


def test_bench_frames_must_be_whole_images(tmp_path):
    frames = write_random_frames(tmp_path / "frames", 2, (36, 64))
    (frames / "002.jpg").write_bytes(truncated_jpeg((36, 64)))
    with pytest.raises(ValueError, match=r"002\.jpg: truncated JPEG"):
        load_frames(frames)


def test_no_display_runs_headless(monkeypatch):
    logs: list[str] = []
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert _open_window(False, "t", logs.append) is None and "no display" in logs[-1]
    assert _open_window(True, "t", logs.append) is None and len(logs) == 1


def test_app_and_cli_run_the_loop(tmp_path, tiny_onnx, folder):
    spec = importlib.util.spec_from_file_location("camera_app", APP)
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    js = tmp_path / "app.json"
    assert app.main(["--source", str(folder), "--model", tiny_onnx, "--headless", "--max-frames", "2",
                     "--bench-json", str(js)]) == 0
    assert json.loads(js.read_text())["frames"] == 2
    assert app.main(["--source", str(tmp_path / "missing"), "--model", tiny_onnx]) == 2


def test_bench_loop_runs_on_frames_in_memory(tmp_path, tiny_onnx, folder, capsys):
    js = tmp_path / "bench.json"
    assert bench_main(["--model", tiny_onnx, "--frames", "3", "--images", str(folder),
                       "--json", str(js)]) == 0
    data = json.loads(js.read_text())
    assert data["frames"] == 3 and data["frame_size"] == [720, 1280] and data["source"]["kind"] == "memory"
    assert 0.0 <= data["other_cpu_share"] <= 1.0
    assert "pre+post+draw p50" in capsys.readouterr().out


def test_a_failing_recording_does_not_replace_an_older_file_of_its_name(tmp_path, tiny_onnx, monkeypatch):
    from edge_mtl.video import Recorder

    out, js = tmp_path / "drive.mp4", tmp_path / "drive.json"
    out.write_bytes(b"an older recording")
    real, calls = Recorder.write, {"n": 0}

    def disk_full(self, image):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(self, image)

    monkeypatch.setattr(Recorder, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run_camera(ScriptedSource(6, quiet), tiny_onnx, headless=True, record=out, bench_json=js, log=quiet)
    assert out.read_bytes() == b"an older recording"
    assert json.loads(js.read_text())["stop_reason"].startswith("error: OSError")
