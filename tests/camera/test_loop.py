from __future__ import annotations

import importlib.util
import json
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_mtl.camera.bench_loop import main as bench_main
from edge_mtl.camera.loop import _open_window, backend_candidates, gpu_runtime_available, run_camera
from edge_mtl.camera.sources import FrameSource
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


def test_backend_order_follows_the_files_and_runtimes(tmp_path):
    for suffix in (".pt", ".onnx", ".engine"):
        (tmp_path / f"m{suffix}").write_bytes(b"")
    got, _ = backend_candidates(tmp_path / "m.onnx", available=lambda kind: True)
    assert [(c.backend, c.device, c.path.suffix) for c in got] == [
        ("tensorrt", "cuda", ".engine"), ("onnxruntime", "cuda", ".onnx"), ("torch", "cuda", ".pt"),
        ("onnxruntime", "cpu", ".onnx"), ("torch", "cpu", ".pt")]
    got, notes = backend_candidates(tmp_path / "m.pt", available=lambda kind: False)
    assert [(c.backend, c.device) for c in got] == [("onnxruntime", "cpu"), ("torch", "cpu")]
    assert any("tensorrt not available" in n for n in notes)
    got, _ = backend_candidates(tmp_path / "m.pt", device="cuda", available=lambda k: k == "torch-cuda")
    assert [(c.backend, c.device) for c in got] == [("torch", "cuda")]
    with pytest.raises(RuntimeError, match="no backend"):
        backend_candidates(tmp_path / "m.pt", device="cuda", available=lambda kind: False)
    got, _ = backend_candidates(tmp_path / "m.pt", backend="onnxruntime", device="cpu")
    assert got[0].path == tmp_path / "m.onnx"
    (tmp_path / "m.engine").unlink()
    with pytest.raises(FileNotFoundError, match="tensorrt"):
        backend_candidates(tmp_path / "m.onnx", backend="tensorrt")
    with pytest.raises(FileNotFoundError, match="other"):
        backend_candidates(tmp_path / "other.pt")


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


def test_sigterm_stops_cleanly_and_restores_the_handler(tmp_path, tiny_onnx):
    before = signal.getsignal(signal.SIGTERM)
    src, out = ScriptedSource(3, lambda: signal.raise_signal(signal.SIGTERM)), tmp_path / "term.mp4"
    summary = run_camera(src, tiny_onnx, headless=True, record=out, log=quiet)
    assert (summary["frames"], summary["stop_reason"]) == (3, "SIGTERM")
    assert count_frames(out)[0] == 3
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_failing_source_still_finalises_the_recording(tmp_path, tiny_onnx):
    def fail():
        raise RuntimeError("source 'rtsp://cam' stopped delivering frames")

    src, out, js = ScriptedSource(4, fail), tmp_path / "fail.mp4", tmp_path / "fail.json"
    with pytest.raises(RuntimeError, match="rtsp://cam"):
        run_camera(src, tiny_onnx, headless=True, record=out, bench_json=js, log=quiet)
    assert count_frames(out)[0] == 3 and src.closed
    summary = json.loads(js.read_text())  # what ran before the failure is kept
    assert summary["frames"] == 3 and summary["stop_reason"].startswith("source failed: source 'rtsp")


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
