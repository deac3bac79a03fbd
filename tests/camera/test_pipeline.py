"""The pipelined camera loop (edge_mtl.camera.pipeline) with fake sources, a stand-in backend and a
fake window: frame order, drops, and every exit path (end, max frames, window, SIGTERM, Ctrl-C,
an error in each stage), each leaving no stage thread behind."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time

import cv2
import numpy as np
import pytest

from edge_mtl.camera import loop, pipeline
from edge_mtl.camera.bench_loop import StandInBackend, compare
from edge_mtl.camera.bench_loop import main as bench_main
from edge_mtl.camera.loop import run_camera
from edge_mtl.camera.sources import FrameSource
from edge_mtl.cli import main
from edge_mtl.runtime.backend import ModelInfo
from edge_mtl.types import CLASSES

SHAPE = (90, 160)  # frames: small, so that the stages cost little next to the waits under test


def quiet(msg: str) -> None:
    pass


def frame_for(index: int) -> np.ndarray:
    """A frame whose bottom-left pixel (untouched by the overlay) carries ``index``."""
    image = np.full((*SHAPE, 3), 60, np.uint8)
    image[-1, 0] = (index % 256, index // 256 % 256, 7)  # a long live run wraps
    return image


def index_of(image: np.ndarray) -> int:
    b, g, _ = image[-1, 0]
    return int(b) + 256 * int(g)


def stand_in(delay_s: float = 0.0, fail_at: int | None = None) -> StandInBackend:
    """A stand-in backend on a 32x64 input with nothing detected (the frame keeps its pixels
    below the HUD); ``fail_at``: its call number (the warm-up is call 1) that raises."""
    info = ModelInfo(path="stand-in", sha256="", input_size=(32, 64), class_names=CLASSES)
    outputs = {"det_logits": np.full((1, 16, len(CLASSES)), -10.0, np.float32),
               "det_boxes": np.zeros((1, 16, 4), np.float32),
               "lane_logits": np.full((1, 1, 8, 16), -10.0, np.float32),
               "depth": np.full((1, 1, 8, 16), 12.0, np.float32)}
    runner = StandInBackend(info, outputs, delay_s)
    if fail_at is not None:
        run = runner._run

        def failing(images):
            if runner.calls + 1 == fail_at:
                raise RuntimeError("CUDA error: an illegal memory access\n(stack trace...)")
            return run(images)

        runner._run = failing
    return runner


class FileLike(FrameSource):
    """``count`` frames, as a file is read: in order, none dropped; ``fail_at``: the read (1-based)
    that raises ``error``."""

    kind = "file"

    def __init__(self, count: int, fail_at: int | None = None, error: BaseException | None = None):
        self.count, self.fail_at, self.error = count, fail_at, error
        self.reads, self.closed = 0, False

    def _read(self):
        self.reads += 1
        if self.reads == self.fail_at:
            raise self.error
        if self.reads > self.count:
            return None
        return frame_for(self.reads - 1), self.reads - 1

    def close(self):
        self.closed = True


class CameraLike(FrameSource):
    """A live source delivering a new frame every ``period_s``, forever (until closed); after
    ``block_after`` frames its read blocks until `close`, as a stalled camera does."""

    kind, live = "webcam", True

    def __init__(self, period_s: float = 0.002, block_after: int | None = None):
        self.period_s, self.block_after = period_s, block_after
        self.reads = 0
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _read(self):
        if self.block_after is not None and self.reads >= self.block_after:
            self._closed.wait(30)
            return None
        if self._closed.wait(self.period_s):
            return None
        self.reads += 1
        return frame_for(self.reads - 1), self.reads - 1

    def close(self):
        self._closed.set()


class FakeWindow:
    """Records the index of each frame shown; ``action(n)`` runs at the n-th show (1-based) and
    its result, when not None, is what `show` returns (False: the window was closed)."""

    def __init__(self, action=None):
        self.shown: list[int] = []
        self.images: list[np.ndarray] = []
        self.action, self.closed = action, False

    def show(self, image):
        self.shown.append(index_of(image))
        self.images.append(image.copy())
        result = self.action(len(self.shown)) if self.action else None
        return True if result is None else result

    def close(self):
        self.closed = True


@pytest.fixture
def window(monkeypatch):
    win = FakeWindow()
    monkeypatch.setattr(loop, "_open_window", lambda headless, title, log: win)
    return win


@pytest.fixture(autouse=True)
def no_stage_left_behind():
    yield
    names = {f"camera {stage}" for stage in pipeline.STAGES}
    left = [t.name for t in threading.enumerate() if t.name in names]
    assert not left, f"stage threads still running: {left}"


def count_frames(path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_put_newest_keeps_only_the_newest():
    q: queue.Queue = queue.Queue(1)
    assert pipeline.put_newest(q, 1) == 0
    assert pipeline.put_newest(q, 2) == 1 and pipeline.put_newest(q, 3) == 1
    assert q.get_nowait() == 3 and q.empty()


@pytest.mark.parametrize("serial", [False, True])
def test_a_file_shows_every_frame_in_order(window, tmp_path, serial):
    src, js = FileLike(12), tmp_path / "run.json"
    s = run_camera(src, stand_in(0.002), serial=serial, bench_json=js, log=quiet)
    assert window.shown == list(range(12)) and src.closed and window.closed
    assert (s["frames"], s["stop_reason"]) == (12, "end of stream")
    assert s["dropped"] == s["dropped_in_pipeline"] == 0
    assert s["mode"] == ("serial" if serial else "pipelined")
    for stage in ("capture", "pre", "infer", "post", "draw", "output", "loop"):
        assert {"p50", "p90", "p95", "mean", "max"} <= set(s["stages_ms"][stage])
    assert s["stages_ms"]["infer"]["p50"] >= 2.0 and s["pre_post_draw_ms"]["p50"] > 0
    assert 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p95"] and s["fps"]["mean"] > 0
    assert json.loads(js.read_text())["mode"] == s["mode"]


def test_pipelined_and_serial_draw_the_same_frames(monkeypatch, tiny_onnx):
    drawn = {}
    for serial in (True, False):
        win = FakeWindow()
        monkeypatch.setattr(loop, "_open_window", lambda headless, title, log, w=win: w)
        run_camera(FileLike(4), tiny_onnx, serial=serial, log=quiet)
        drawn[serial] = win.images
    assert len(drawn[True]) == len(drawn[False]) == 4
    for a, b in zip(drawn[True], drawn[False], strict=True):
        np.testing.assert_array_equal(a[60:], b[60:])  # below the HUD (its figures differ)


@pytest.mark.parametrize("serial", [False, True])
def test_max_frames_reads_no_more_of_a_file(window, serial):
    src = FileLike(50)
    s = run_camera(src, stand_in(), max_frames=5, serial=serial, log=quiet)
    assert (s["frames"], s["stop_reason"]) == (5, "max frames")
    assert window.shown == [0, 1, 2, 3, 4] and src.reads == 5


class AsyncStandIn(StandInBackend):
    """A stand-in that takes two frames in flight, as the TensorRT backend does: `submit`
    returns at once, the "GPU" runs the submitted frames one after the other, each for
    ``delay_s``, and `collect` sleeps until its frame is done. ``events`` logs both calls."""

    max_in_flight = 2

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.events: list[tuple[str, int]] = []
        self.busy_until, self.submitted, self.in_flight, self.most_in_flight = 0.0, 0, 0, 0

    def submit(self, images):
        self._check_input(images)
        self.busy_until = max(self.busy_until, time.perf_counter()) + self.delay_s
        self.submitted += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.events.append(("submit", self.submitted))
        return self.submitted, self.busy_until

    def collect(self, ticket):
        n, done = ticket
        time.sleep(max(0.0, done - time.perf_counter()))
        self.in_flight -= 1
        self.events.append(("collect", n))
        return {k: v.copy() for k, v in self.outputs.items()}


def async_stand_in(delay_s: float) -> AsyncStandIn:
    runner = stand_in()
    return AsyncStandIn(runner.info, runner.outputs, delay_s)


def test_a_backend_with_two_frames_in_flight_overlaps_them(window):
    runner = async_stand_in(0.01)
    s = run_camera(FileLike(20), runner, log=quiet)
    assert window.shown == list(range(20)) and s["stop_reason"] == "end of stream"
    assert runner.most_in_flight == 2 and runner.in_flight == 0
    collects = [n for what, n in runner.events if what == "collect"]
    assert collects == sorted(collects)  # in submission order
    ahead = sum(runner.events.index(("submit", n + 1)) < runner.events.index(("collect", n))
                for n in range(1, 20))
    assert ahead >= 10  # the next frame was queued behind the running one
    # "infer" is a frame's own time on the "GPU", not the wait behind the frame before it
    assert 8 <= s["stages_ms"]["infer"]["p50"] < 18


def test_a_slow_display_does_not_count_as_inference(window):
    """The caller's stage takes 30 ms a frame: the infer stage waits to hand frames on, which is
    not inference (nor a reason to hold frames back)."""
    window.action = lambda n: time.sleep(0.03)
    s = run_camera(FileLike(12), async_stand_in(0.01), log=quiet)
    assert window.shown == list(range(12))
    assert s["stages_ms"]["infer"]["p50"] < 18


def test_an_error_in_submit_comes_after_the_frames_in_flight(window):
    runner = async_stand_in(0.01)
    submit = runner.submit

    def failing(images):
        if runner.submitted == 4:  # frames 0-3 went through (the warm-up runs through infer)
            raise RuntimeError("CUDA error: an illegal memory access")
        return submit(images)

    runner.submit = failing
    with pytest.raises(RuntimeError, match="illegal memory access"):
        run_camera(FileLike(10), runner, log=quiet)
    assert window.shown == [0, 1, 2, 3]


def test_a_live_source_gets_one_frame_at_a_time(window):
    runner = async_stand_in(0.01)
    run_camera(CameraLike(period_s=0.002), runner, max_frames=8, log=quiet)
    assert runner.most_in_flight == 1


def test_a_frame_in_flight_is_not_held_back_for_a_next_one(window):
    """A live source that stalls after 3 frames: the third is collected and shown anyway."""
    timer = threading.Timer(10, os.kill, (os.getpid(), signal.SIGTERM))  # a hang fails, not hangs
    timer.start()
    try:
        s = run_camera(CameraLike(period_s=0.05, block_after=3), async_stand_in(0.005), max_frames=3,
                       log=quiet)
    finally:
        timer.cancel()
    assert (s["frames"], s["stop_reason"]) == (3, "max frames")


def test_a_live_source_with_a_slow_backend_drops_stale_frames(window):
    src = CameraLike(period_s=0.002)
    s = run_camera(src, stand_in(0.03), max_frames=6, log=quiet)
    assert (s["frames"], s["stop_reason"]) == (6, "max frames") and src.closed
    shown = window.shown
    assert shown == sorted(set(shown))  # newer and newer
    assert np.mean(np.diff(shown)) > 3  # ~15 frames arrive per 30 ms inference: most are dropped
    assert s["dropped"] == s["dropped_in_pipeline"] > 0
    in_flight = src.reads - len(shown) - s["dropped_in_pipeline"]  # read, not dropped, not shown
    assert 0 <= in_flight <= 7
    # The backend takes the newest pre-processed frame, a few ms old: shown about one inference
    # (30 ms) after its capture; handed over blocking, it would wait for one more (~90 ms in all).
    assert s["latency_ms"]["p50"] < 70


def test_a_stalled_live_source_is_woken_on_exit(window):
    """The capture stage waits in a read that would last 30 s: closing the source wakes it."""
    src = CameraLike(period_s=0.05, block_after=3)  # slow enough that no frame is dropped
    t0 = time.perf_counter()
    s = run_camera(src, stand_in(), max_frames=3, log=quiet)
    assert (s["frames"], s["stop_reason"], s["dropped"]) == (3, "max frames", 0)
    assert src.closed and time.perf_counter() - t0 < 5


@pytest.mark.parametrize("stage", ["source", "pre", "infer", "post", "draw", "output"])
def test_an_error_in_any_stage_is_raised_after_the_frames_before_it(window, tmp_path, monkeypatch, stage):
    """Frames 0-2 are shown and recorded; the fourth frame fails in ``stage``."""
    error = RuntimeError(f"boom in {stage}\nsecond line")
    src, runner = FileLike(10), stand_in(0.002)
    calls = {"n": 0}

    def fail_fourth(real):
        def wrapped(*args, **kw):
            calls["n"] += 1
            if calls["n"] == 4:
                raise error
            return real(*args, **kw)
        return wrapped

    if stage == "source":
        src = FileLike(10, fail_at=4, error=error)
    elif stage == "pre":
        import edge_mtl.runtime.preprocess as pre

        monkeypatch.setattr(pre, "fit_image", fail_fourth(pre.fit_image))
    elif stage == "infer":
        runner = stand_in(0.002, fail_at=5)  # the warm-up is the first call
        error = RuntimeError("CUDA error: an illegal memory access")
    elif stage == "post":
        import edge_mtl.runtime.postprocess as post

        monkeypatch.setattr(post, "postprocess", fail_fourth(post.postprocess))
    elif stage == "draw":
        import edge_mtl.camera.overlay as overlay

        monkeypatch.setattr(overlay, "draw_overlay", fail_fourth(overlay.draw_overlay))
    else:
        window.action = lambda n: (_ for _ in ()).throw(error) if n == 4 else None
    out, js = tmp_path / "run.mp4", tmp_path / "run.json"
    with pytest.raises(RuntimeError, match=str(error).splitlines()[0]):
        run_camera(src, runner, record=out, bench_json=js, log=quiet)
    assert window.shown[:3] == [0, 1, 2] and len(window.shown) == (4 if stage == "output" else 3)
    summary = json.loads(js.read_text())
    assert summary["frames"] == 3
    assert summary["stop_reason"] == f"error: RuntimeError: {str(error).splitlines()[0]}"
    assert count_frames(out) == (4 if stage == "output" else 3)  # finalised; output wrote, then showed
    assert src.closed and window.closed


def test_the_window_closed_stops_the_run(window):
    window.action = lambda n: False if n == 3 else None
    s = run_camera(FileLike(20), stand_in(), log=quiet)
    assert (s["frames"], s["stop_reason"]) == (3, "window closed") and window.closed


def test_ctrl_c_in_the_main_thread_finalises_the_recording(window, tmp_path):
    def interrupt(n):
        if n == 3:
            raise KeyboardInterrupt

    window.action = interrupt
    out, src = tmp_path / "int.mp4", FileLike(20)
    s = run_camera(src, stand_in(), record=out, log=quiet)
    assert (s["frames"], s["stop_reason"]) == (2, "interrupted")
    assert count_frames(out) == 3 and src.closed  # the third was written before the interrupt


def test_sigterm_in_the_main_thread_stops_after_that_frame(window):
    before = signal.getsignal(signal.SIGTERM)
    window.action = lambda n: signal.raise_signal(signal.SIGTERM) if n == 3 else None
    s = run_camera(FileLike(20), stand_in(), log=quiet)
    assert (s["frames"], s["stop_reason"]) == (3, "SIGTERM")
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize("sig, reason", [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "interrupted")])
def test_a_signal_from_outside_stops_a_live_run(window, sig, reason):
    """kill -TERM / Ctrl-C while the stages wait on their queues: the run ends within a poll.
    Python's own Ctrl-C handler is put in for the test: a shell starts a background job with
    SIGINT ignored, and Python then never installs it. ``max_frames`` bounds a run the signal
    missed (60 s of frames)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), sig))
    timer.start()
    try:
        t0 = time.perf_counter()
        s = run_camera(CameraLike(period_s=0.005), stand_in(0.01), log=quiet, max_frames=12000)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, before)
    assert s["stop_reason"] == reason and s["frames"] > 0
    assert time.perf_counter() - t0 < 5


def test_a_keyboard_interrupt_raised_in_a_stage_stops_the_run(window):
    src = FileLike(10, fail_at=3, error=KeyboardInterrupt())
    s = run_camera(src, stand_in(), log=quiet)
    assert (s["frames"], s["stop_reason"]) == (2, "interrupted") and window.shown == [0, 1]


def test_next_item_never_hangs_once_every_stage_is_gone():
    pipe = pipeline.Pipeline(FileLike(1), stand_in(), threading.Event())  # threads never started
    with pytest.raises(RuntimeError, match="every stage stopped"):
        pipe.next_item()


def test_the_cli_serial_flag(tmp_path, tiny_onnx):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), frame_for(i))
    for flag, mode in (([], "pipelined"), (["--serial"], "serial")):
        js = tmp_path / f"{mode}.json"
        assert main(["camera", "--source", str(frames), "--model", tiny_onnx, "--headless",
                     "--bench-json", str(js), *flag]) == 0
        data = json.loads(js.read_text())
        assert (data["mode"], data["frames"], data["stop_reason"]) == (mode, 3, "end of stream")


def test_bench_compare_runs_and_reports_the_targets(tmp_path, tiny_onnx, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), frame_for(i))
    js = tmp_path / "cmp.json"
    assert bench_main(["--compare", "--model", tiny_onnx, "--images", str(frames), "--frames", "4",
                       "--stand-in-ms", "1", "--rounds", "2", "--json", str(js)]) == 0
    data = json.loads(js.read_text())
    assert data["schema"] == "edge_mtl.camera_pipeline/1" and data["frame_size"] == [720, 1280]
    for name in ("stand_in", "onnxruntime"):
        case = data["cases"][name]
        assert case["serial"]["mode"] == "serial" and case["pipelined"]["mode"] == "pipelined"
        assert case["serial"]["frames"] == case["pipelined"]["frames"] == 4
        assert len(case["rounds"]) == 2 and case["median"]["speedup"] > 0
        assert isinstance(case["target"]["met"], bool) and 0 <= case["target"]["rounds_met"] <= 2
    assert data["cases"]["stand_in"]["pipelined"]["backend"] == "stand-in"
    assert "targets" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown backend"):
        compare(tiny_onnx, 1, images=str(frames), backends=("tensorrt",))
