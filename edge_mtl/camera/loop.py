"""The camera loop: source -> pre -> infer -> post -> overlay -> window / recording, timed per stage.

By default the stages overlap, on threads joined by bounded queues (`edge_mtl.camera.pipeline`:
capture + decode, pre, infer, then post + draw + output in the caller's thread; a live source
keeps the newest frame, a file hands on every frame in order). ``serial=True`` (``--serial``)
runs them one after the other on one frame at a time (`_loop`), as before the pipeline.

The model is a file or a stem. A file the user names (``m.onnx``, ``m.pt``, ``m.engine`` /
``m.plan``) is what runs: it is never replaced by a sibling, and when it cannot be opened the run
fails with an error naming it. A stem without a model suffix (``runs/deploy/m``) lets the loop
choose among ``m.engine`` / ``m.plan``, ``m.onnx`` and ``m.pt``. With ``backend="auto"`` the
candidates are taken from those files, best first:

1. ``tensorrt``           an engine, when ``tensorrt`` and cuda-python import
2. ``onnxruntime`` GPU    an ONNX, when onnxruntime has the CUDA execution provider (its
                          TensorRT provider is never chosen automatically: use an engine)
3. ``torch`` CUDA         a checkpoint, when torch sees a CUDA GPU
4. ``onnxruntime`` CPU    an ONNX
5. ``torch`` CPU          a checkpoint (last resort: export an ONNX for a faster CPU path)

so for a named file auto only picks the device (``m.onnx``: 2 then 4). ``device="cpu"`` keeps
only 4-5, ``device="cuda"`` only 1-3. A candidate that fails to open (a stale engine, say) is
reported and the next one is tried; the last one's failure is the error. An explicit ``backend``
must match a named file's suffix (an error otherwise) and takes the stem's file of that format
(an error when it is missing). The choice is printed.

The summary (returned, and written by ``bench_json``; schema ``edge_mtl.camera/1``) holds
``frames``, ``dropped``, ``corrupt_frames`` / ``corrupt_files`` (image-folder frames skipped as
corrupt), ``stop_reason`` (``end of stream``, ``max frames``, ``SIGTERM``, ``interrupted``,
``window closed`` or ``error: ...``: the summary is written on every exit path of the loop, an
error is raised after it), ``elapsed_s``, ``fps`` (``mean`` over the run, ``p50``
from the median loop time), ``stages_ms`` (``capture``, ``pre``, ``infer``, ``post``, ``draw``,
``output``, ``loop``: p50 / p90 / p95 / mean / max, of the frames shown; ``loop`` is the time
from one shown frame to the next), ``pre_post_draw_ms`` (their per-frame sum), ``latency_ms``
(capture to display: from a live source's grab, or the end of a file read, to the end of the
output stage), ``mode`` (``pipelined`` or ``serial``), ``dropped_in_pipeline`` (the live frames
the pipeline replaced by a newer one before the next stage took them; part of ``dropped``), the
model, backend, source, sizes, recording and host.
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_mtl.camera.sources import FrameSource
from edge_mtl.files import to_json, write_atomic
from edge_mtl.paths import DEFAULT_CHECKPOINT
from edge_mtl.runtime.backend import Backend
from edge_mtl.runtime.timing import StageTimer, summarize
from edge_mtl.video import Recorder

if TYPE_CHECKING:
    from edge_mtl.runtime.postprocess import PostprocessConfig

DEFAULT_MODEL = DEFAULT_CHECKPOINT
SCHEMA = "edge_mtl.camera/1"
_SUFFIXES = {"tensorrt": (".engine", ".plan"), "onnxruntime": (".onnx",), "torch": (".pt",)}
_QUIT_KEYS = (27, ord("q"))  # Esc, q


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    device: str
    path: Path


def model_files(model: str | os.PathLike) -> dict[str, Path]:
    """The model files that exist next to the stem ``model`` (``model`` + ``.engine`` / ``.plan``,
    ``.onnx``, ``.pt``), by backend."""
    path = Path(model)
    found: dict[str, Path] = {}
    for name, suffixes in _SUFFIXES.items():
        for suffix in suffixes:
            candidate = path.with_name(path.name + suffix)
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def named_backend(model: str | os.PathLike) -> str | None:
    """The backend a model file's suffix names, or None for a stem (no model suffix)."""
    suffix = Path(model).suffix.lower()
    return next((name for name, suffixes in _SUFFIXES.items() if suffix in suffixes), None)


def _named_file(path: Path, named: str, backend: str) -> dict[str, Path]:
    """``{named: path}`` for the file the user named (its suffix says ``named``); errors name it."""
    if not path.is_file():
        raise FileNotFoundError(f"model {path} not found")
    if backend not in ("auto", named):
        raise ValueError(f"model {path}: a {path.suffix} file runs on the {named} backend, not {backend} "
                         f"(name the {'/'.join(_SUFFIXES[backend])} file, or the stem without a suffix)")
    return {named: path}


def _stem_files(path: Path, backend: str) -> dict[str, Path]:
    """The siblings of the stem ``path`` that may run (only ``backend``'s unless auto)."""
    if path.is_file():
        raise ValueError(f"model {path}: not a model file (.pt, .onnx, .engine or .plan), and as a stem "
                         "it names no sibling")
    files = model_files(path)
    if backend == "auto":
        if not files:
            raise FileNotFoundError(f"model {path} not found (nor a .engine/.plan, .onnx or .pt with "
                                    "that stem)")
        return files
    if backend not in files:
        raise FileNotFoundError(f"backend {backend} needs a {'/'.join(_SUFFIXES[backend])} model; none "
                                f"found at {path} (edge-mtl export / build-engine)")
    return {backend: files[backend]}


def gpu_runtime_available(kind: str) -> bool:
    """Whether ``tensorrt``, ``onnxruntime-gpu`` or ``torch-cuda`` can run here (imports nothing
    heavy unless the package is installed)."""
    from importlib.util import find_spec

    if kind == "tensorrt":
        return find_spec("tensorrt") is not None and find_spec("cuda") is not None
    if kind == "onnxruntime-gpu":
        if find_spec("onnxruntime") is None:
            return False
        import onnxruntime as ort

        from edge_mtl.runtime.onnx_backend import AUTO_GPU_PROVIDERS  # CUDA; never TensorRT's provider

        return bool(set(AUTO_GPU_PROVIDERS) & set(ort.get_available_providers()))
    if kind == "torch-cuda":
        if sys.version_info < (3, 10):  # no torch models there (edge_mtl.compat.require_python310)
            return False
        import torch

        return torch.cuda.is_available()
    raise ValueError(f"unknown GPU runtime {kind!r}")


def backend_candidates(model: str | os.PathLike, backend: str = "auto", device: str = "auto",
                       available: Callable[[str], bool] = gpu_runtime_available
                       ) -> tuple[list[BackendChoice], list[str]]:
    """The backends to try, best first (see the module docstring), and notes on those skipped."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if backend != "auto" and backend not in _SUFFIXES:
        raise ValueError(f"unknown backend {backend!r}; choose auto, {', '.join(_SUFFIXES)}")
    path = Path(model)
    named = named_backend(path)
    files = _named_file(path, named, backend) if named else _stem_files(path, backend)
    if backend != "auto":
        return [BackendChoice(backend, device, files[backend])], []
    order = (("tensorrt", "cuda", "tensorrt"), ("onnxruntime", "cuda", "onnxruntime-gpu"),
             ("torch", "cuda", "torch-cuda"), ("onnxruntime", "cpu", None), ("torch", "cpu", None))
    choices, notes = [], []
    for name, dev, runtime in order:
        if name not in files or device not in ("auto", dev):
            continue
        if runtime is not None and not available(runtime):
            notes.append(f"{files[name].name}: {runtime} not available")
            continue
        choices.append(BackendChoice(name, dev, files[name]))
    if not choices:
        raise RuntimeError(f"no backend can run {model} on device {device!r} "
                           f"(found {', '.join(str(p) for p in files.values())}; {'; '.join(notes)})")
    return choices, notes


def open_model(model: str | os.PathLike, backend: str = "auto", device: str = "auto",
               log: Callable[[str], object] = print,
               options: Mapping[str, Mapping[str, Any]] | None = None, **kw: Any) -> Backend:
    """Open the best backend for ``model`` (`backend_candidates`), printing the choice.

    ``options``: keyword arguments per backend name, e.g. ``{"onnxruntime": {"threads": 2}}``.
    """
    from edge_mtl.runtime.backend import open_backend

    choices, notes = backend_candidates(model, backend, device, **kw)
    for i, c in enumerate(choices):
        try:
            runner = open_backend(c.path, c.backend, c.device, **(options or {}).get(c.backend, {}))
        except (ImportError, RuntimeError, ValueError, OSError) as e:
            why = _one_line(e)
            if i == len(choices) - 1:
                raise RuntimeError(f"cannot open model {c.path} on {c.backend} ({c.device}): {why}") from e
            notes.append(f"{c.path.name} on {c.backend} {c.device}: {why}")
            log(f"camera: cannot open {c.path} on {c.backend} {c.device} ({why}); trying the next candidate")
            continue
        why = f" [auto; skipped: {'; '.join(notes)}]" if backend == "auto" and notes else \
            (" [auto]" if backend == "auto" else "")
        log(f"camera: backend {runner.name} on {runner.device} ({runner.precision}), {c.path}{why}")
        return runner
    raise AssertionError("unreachable")


def _one_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an error message (backends may raise pages), at most ``limit`` chars."""
    line = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def tune_allocator() -> bool:
    """Keep big buffers in the heap (glibc ``mallopt``); False where that is not possible.

    Each frame allocates several 1-4 MB arrays (resize outputs, full-size lane and depth maps).
    glibc serves those with fresh ``mmap`` pages that fault in on first touch, which on a busy
    CPU measured 4.6 ms -> 0.5 ms for post-processing and 11.5 -> 6.9 ms for pre-processing at
    720p. Raising the mmap and trim thresholds makes the buffers reusable.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 256 << 20))
    except (OSError, AttributeError):  # not glibc
        return False


def display_available() -> bool:
    """False on Linux without $DISPLAY / $WAYLAND_DISPLAY (a window cannot open there)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Window:
    """An OpenCV window; `show` returns False when the user quits (Esc / q / window closed)."""

    def __init__(self, title: str):
        import cv2

        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)  # cv2.error on a build without GUI

    def show(self, image: np.ndarray) -> bool:
        import cv2

        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        return key not in _QUIT_KEYS and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


@contextmanager
def stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM sets ``stop`` (the loop then ends cleanly); the old handler returns after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class _Run:
    frames: int = 0
    frame_size: tuple[int, int] | None = None
    started: float = 0.0
    reason: str = "end of stream"
    recording_failed: bool = False
    mode: str = "pipelined"
    latency: list[float] = field(default_factory=list)  # capture to display, ms, per shown frame
    stale: int = 0  # pipelined, live source: frames replaced in a queue by a newer one


def _loop(src: FrameSource, runner: Backend, timer: StageTimer, run: _Run, stop: threading.Event,
          max_frames: int | None, recorder: Recorder | None, window: Window | None,
          cfg: PostprocessConfig | None, focal: float | None = None) -> None:
    from edge_mtl.camera.present import Presenter
    from edge_mtl.runtime.preprocess import FramePrep

    prep, present = FramePrep(runner.info, focal), Presenter(runner, timer, run, recorder, window, cfg)
    run.started = time.perf_counter()
    while True:
        if stop.is_set():
            run.reason = "SIGTERM"
            return
        if max_frames is not None and run.frames >= max_frames:
            run.reason = "max frames"
            return
        t0 = time.perf_counter()
        with timer.stage("capture"):
            frame = src.read()
        if frame is None:
            timer.samples["capture"].pop()  # that read found the end, not a frame
            run.reason = "end of stream"
            return
        image = frame.image
        run.frame_size = run.frame_size or image.shape[:2]
        with timer.stage("pre"):
            x = prep(image)
        with timer.stage("infer"):
            raw = runner.infer(x)
        keep_going = present.show(image, raw, prep.geometry, prep.depth_scale,
                                  src.dropped if src.live else None)
        end = present.ends[-1]
        timer.samples["loop"].append((end - t0) * 1e3)
        run.latency.append((end - (frame.captured or t0)) * 1e3)
        if not keep_going:
            run.reason = "window closed"
            return


def _open_window(headless: bool, title: str, log: Callable[[str], object]) -> Window | None:
    if headless:
        return None
    if not display_available():
        log("camera: no display ($DISPLAY / $WAYLAND_DISPLAY unset); running headless")
        return None
    import cv2

    try:
        return Window(title)
    except cv2.error as e:
        log(f"camera: cannot open a window ({str(e).strip().splitlines()[-1]}); running headless")
        return None


def _summary(src: FrameSource, runner: Backend, timer: StageTimer, run: _Run, recorder: Recorder | None,
             elapsed: float) -> dict[str, Any]:
    from edge_mtl.bench import host_info

    stages = timer.summary()
    parts = (timer.samples.get(k, []) for k in ("pre", "post", "draw"))
    per_frame = [sum(v) for v in zip(*parts)]
    loop_p50 = stages.get("loop", {}).get("p50", math.nan)
    return {
        "schema": SCHEMA,
        "source": {"value": src.description, "kind": src.kind, "live": src.live, "fps": src.fps},
        "model": runner.info.to_dict(),
        **runner.describe(),
        "input_size": list(runner.info.input_size),
        "frame_size": list(run.frame_size) if run.frame_size else None,
        "mode": run.mode,
        "frames": run.frames,
        "dropped": src.dropped + run.stale,
        "dropped_in_pipeline": run.stale,
        "corrupt_frames": len(src.corrupt),
        "corrupt_files": list(src.corrupt),
        "stop_reason": run.reason,
        "elapsed_s": round(elapsed, 3),
        "fps": {"mean": round(run.frames / elapsed, 2) if run.frames and elapsed > 0 else None,
                "p50": round(1e3 / loop_p50, 2) if loop_p50 and not math.isnan(loop_p50) else None},
        "stages_ms": stages,
        "pre_post_draw_ms": summarize(per_frame) if per_frame else None,
        "latency_ms": summarize(run.latency) if run.latency else None,
        "record": str(recorder.path) if recorder else None,
        "recorded_frames": recorder.frames if recorder else 0,
        "host": host_info(),
    }


def run_camera(source: str | int | os.PathLike | FrameSource,
               model: str | os.PathLike | Backend | None = None,
               backend: str = "auto", device: str = "auto", headless: bool = False,
               record: str | os.PathLike | None = None, max_frames: int | None = None,
               bench_json: str | os.PathLike | None = None, *, width: int | None = None,
               height: int | None = None, fps: int | None = None, flip_method: int = 0,
               postprocess_cfg: PostprocessConfig | None = None, window_title: str = "edge-mtl camera",
               tune_malloc: bool = True, log: Callable[[str], object] = print,
               backend_options: Mapping[str, Mapping[str, Any]] | None = None,
               focal: float | None = None, serial: bool = False, **source_options: Any) -> dict[str, Any]:
    """Run ``model`` on ``source`` until it ends, ``max_frames``, Ctrl-C, SIGTERM or the window
    closes; returns the summary (module docstring), also written to ``bench_json``.

    ``source``: anything `open_source` takes (``width``/``height``/``fps``/``flip_method`` go to
    it, ``source_options`` to live sources). ``record``: an mp4 of the drawn frames, finalised
    on every exit path. ``tune_malloc``: see `tune_allocator`. ``backend_options``: per backend
    name, keyword arguments for it (`open_model`); onnxruntime's threads do not spin by default
    (`edge_mtl.runtime.onnx_backend.session_options`). ``focal``: the camera's focal length in
    its own pixels, for metric depth (default: 0.8 x the frame width, a 64 degree field of view).
    ``model`` may also be an open `Backend` (a stand-in, say): it runs as it is and is closed at
    the end, like a `FrameSource` given as ``source``. ``serial``: run the stages one after the
    other (`_loop`) instead of the pipeline (`edge_mtl.camera.pipeline`).
    """
    from edge_mtl.camera.sources import open_source, parse_source

    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max frames must be >= 1, got {max_frames}")
    if not isinstance(source, FrameSource):
        parse_source(source, width, height, fps, flip_method)  # a bad value fails before the model loads
    if tune_malloc:
        tune_allocator()
    timer, run, stop = StageTimer(), _Run(mode="serial" if serial else "pipelined"), threading.Event()
    failure: Exception | None = None
    with ExitStack() as stack:
        if isinstance(model, Backend):
            runner = stack.enter_context(model)
            log(f"camera: backend {runner.name} on {runner.device} ({runner.precision}), {runner.info.path}")
        else:
            runner = stack.enter_context(open_model(model or DEFAULT_MODEL, backend, device, log=log,
                                                    options=backend_options))
        # Warm up before the source opens: a live source's frames captured meanwhile would
        # count as dropped.
        runner.infer(runner.info.blank_input())
        src = stack.enter_context(open_source(source, width=width, height=height, fps=fps,
                                              flip_method=flip_method, **source_options))
        log(f"camera: source {src.description} ({src.kind}{', live' if src.live else ''})")
        recorder = Recorder(record, src.fps or 30.0) if record else None
        if recorder is not None:
            stack.callback(recorder.close)
        window = _open_window(headless, window_title, log)
        if window is not None:
            stack.callback(window.close)
        stack.enter_context(stop_on_sigterm(stop))
        try:
            if serial:
                _loop(src, runner, timer, run, stop, max_frames, recorder, window, postprocess_cfg, focal)
            else:
                from edge_mtl.camera.pipeline import run_pipeline

                run_pipeline(src, runner, timer, run, stop, max_frames, recorder, window, postprocess_cfg,
                             focal, log=log)
        except KeyboardInterrupt:
            run.reason = "interrupted"
        except Exception as e:  # source, backend, frame or recording: keep what ran, then raise
            run.reason, failure = f"error: {type(e).__name__}: {_one_line(e)}", e
        elapsed = time.perf_counter() - run.started if run.started else 0.0
        failure = _close_recorder(recorder, run, failure)
        summary = _summary(src, runner, timer, run, recorder, elapsed)
    _report(summary, log)
    if bench_json:
        write_summary(summary, bench_json)
    if failure is not None:
        raise failure
    return summary


def _close_recorder(recorder: Recorder | None, run: _Run, failure: Exception | None) -> Exception | None:
    """Finalise the recording: the frames written so far are kept also when the source or backend
    failed, but a recording whose own write failed stays at its partial name (an older file of
    the final name survives). A failure to finalise becomes the run's error unless it has one."""
    if recorder is None:
        return failure
    if run.recording_failed:
        recorder.abort()
        return failure
    try:
        recorder.close()
    except Exception as e:
        if failure is None:
            run.reason, failure = f"error: {type(e).__name__}: {_one_line(e)}", e
    return failure


def write_summary(summary: dict[str, Any], path: str | os.PathLike) -> None:
    """The summary as indented strict JSON at ``path`` (NaN -> null; folders created, written
    atomically)."""
    write_atomic(path, to_json(summary, indent=2) + "\n")


def _report(s: dict[str, Any], log: Callable[[str], object]) -> None:
    st = s["stages_ms"]
    ms = ", ".join(f"{k} {st[k]['p50']:.1f}" for k in ("capture", "pre", "infer", "post", "draw") if k in st)
    fps = s["fps"]["mean"]
    lat = s.get("latency_ms")
    log(f"camera: {s['frames']} frames in {s['elapsed_s']:.1f} s, {s['mode']}"
        + (f" ({fps:.1f} FPS)" if fps else "") + f", {s['dropped']} dropped"
        + (f", {s['corrupt_frames']} corrupt skipped" if s["corrupt_frames"] else "")
        + f"; stop: {s['stop_reason']}"
        + (f"; p50 ms: {ms}" if ms else "")
        + (f"; latency p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms" if lat else "")
        + (f"; recorded {s['recorded_frames']} frames to {s['record']}" if s["record"] else ""))
