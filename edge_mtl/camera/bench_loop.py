"""End-to-end camera-loop benchmarks (no camera).

    python -m edge_mtl.camera.bench_loop --model M --frames 300 --json loop.json [--images DIR] [--serial]

Runs `run_camera` headless on 1280x720 frames already in memory (rendered from the synthetic
world, or read from ``--images``) through the overlay, and prints the p50 FPS and the p50 of
pre + post + draw per frame. The JSON is the camera summary (``edge_mtl.camera/1``) plus
``other_cpu_share``: the share of the machine's CPU that other processes used during the run (0
on a quiet machine; a warning is printed above 5 %).

    python -m edge_mtl.camera.bench_loop --compare --model M.onnx --frames 300 \
        [--video V | --images DIR] [--stand-in-ms 20] [--rounds 3] --json benchmarks/camera_pipeline.json

compares the pipelined loop with ``--serial`` on real JPEG frames read from a folder (each
frame decoded by the capture stage, as `edge-mtl camera` does on a folder): the frames of
``--video`` (default: the Udacity 1280x720 clip in ../shared/data/real_video) or ``--images``,
at 1280x720, written as JPEG to a temporary folder (cycled up to ``--frames``). Two backends:

- ``stand_in``: `StandInBackend`, which waits ``--stand-in-ms`` without using the CPU
  (``time.sleep`` releases the GIL as a wait on a GPU stream does) and returns what the model
  gave on the first frame: a Jetson, whose GPU and ARM cores can overlap;
- ``onnxruntime``: the ONNX model in FP32 on the CPU (``--ort-threads``, default one per core).

Each backend runs ``--rounds`` serial/pipelined pairs, alternating, since this shared machine's
speed drifts by more than the difference under test. The JSON (``edge_mtl.camera_pipeline/1``)
has per backend each round's FPS, speed-up, pre + post + draw and latency p50, their medians, the
serial and pipelined summaries (per-stage, pre + post + draw and capture-to-display ms) of the
median round, and the issue's targets (pipelined >= 45 FPS on the 20 ms stand-in; >= 1.1 x
serial and pre + post + draw <= 4 ms p50 on onnxruntime), judged on the medians, with how many
rounds met them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_mtl.camera.loop import DEFAULT_MODEL, run_camera, write_summary
from edge_mtl.camera.sources import MemorySource
from edge_mtl.runtime.backend import Backend, ModelInfo
from edge_mtl.runtime.timing import OtherLoad

QUIET_SHARE = 0.05  # above this share of the CPU taken by other processes, the run was not quiet
COMPARE_SCHEMA = "edge_mtl.camera_pipeline/1"
DEFAULT_VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "real_video" / \
    "udacity_vehicle_test_1280x720.mp4"
FRAME_SIZE = (720, 1280)
TARGETS = {"stand_in": {"pipelined_fps_min": 45.0},
           "onnxruntime": {"speedup_min": 1.1, "pre_post_draw_p50_max_ms": 4.0}}


class StandInBackend(Backend):
    """A GPU-like backend: each run waits ``delay_s`` without using the CPU (``time.sleep``
    releases the GIL, as a wait on a CUDA stream does) and returns copies of fixed ``outputs``
    (batch 1, by output name), e.g. what the real model gave on a real frame (`like`)."""

    name = "stand-in"
    precision = "fixed"
    device = "sleep"
    batch = 1

    def __init__(self, info: ModelInfo, outputs: Mapping[str, np.ndarray], delay_s: float = 0.02):
        self.info, self.delay_s = info, float(delay_s)
        self.outputs = {k: np.ascontiguousarray(v[:1]) for k, v in outputs.items()}
        self.calls = 0

    @classmethod
    def like(cls, runner: Backend, frame: np.ndarray, delay_s: float = 0.02) -> StandInBackend:
        """A stand-in for ``runner`` returning what it gives on ``frame`` (BGR, any size)."""
        from edge_mtl.runtime.preprocess import FramePrep

        return cls(runner.info, runner.infer(FramePrep(runner.info)(frame)), delay_s)

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.calls += 1
        time.sleep(self.delay_s)
        return {k: v.copy() for k, v in self.outputs.items()}

    def close(self) -> None:
        pass

    def runtime_info(self) -> dict[str, Any]:
        return {"delay_ms": round(self.delay_s * 1e3, 3)}


def bench_loop(model: str, frames: int = 300, images: str | None = None, backend: str = "auto",
               device: str = "auto", json_path: str | None = None, record: str | None = None,
               tune_malloc: bool = True, ort_threads: int | None = None, ort_spin: bool = False,
               serial: bool = False) -> dict[str, Any]:
    """The camera summary of ``frames`` loop iterations over in-memory 1280x720 frames."""
    import cv2

    from edge_mtl.bench import load_frames

    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    pool = [f if f.shape[:2] == (720, 1280) else cv2.resize(f, (1280, 720), interpolation=cv2.INTER_AREA)
            for f in load_frames(images)]
    with OtherLoad() as load:
        summary = run_camera(MemorySource(pool, count=frames, fps=30.0), model, backend, device,
                             headless=True, record=record, tune_malloc=tune_malloc, serial=serial,
                             backend_options={"onnxruntime": {"threads": ort_threads, "spin": ort_spin}})
    summary["other_cpu_share"] = load.share  # CPU other processes took meanwhile (0 = quiet)
    if json_path:
        write_summary(summary, json_path)
    return summary


def write_jpeg_frames(folder: str | Path, count: int, video: str | Path | None = None,
                      images: str | Path | None = None, quality: int = 95) -> list[Path]:
    """``count`` 1280x720 JPEG files in ``folder`` (``000000.jpg``...): the frames of ``video``
    (default `DEFAULT_VIDEO`) or of the folder ``images``, resized when not 1280x720, cycled
    when there are fewer than ``count``."""
    import cv2

    from edge_mtl.bench import load_frames

    if images is not None:
        decoded = load_frames(images, count)
    else:
        video = Path(video or DEFAULT_VIDEO)
        if not video.is_file():
            raise FileNotFoundError(f"video {video} not found (give --video or --images)")
        cap, decoded = cv2.VideoCapture(str(video)), []
        while len(decoded) < count:
            ok, frame = cap.read()
            if not ok:
                break
            decoded.append(frame)
        cap.release()
        if not decoded:
            raise ValueError(f"video {video}: no frame decoded")
    h, w = FRAME_SIZE
    encoded = []
    for frame in decoded:
        if frame.shape[:2] != FRAME_SIZE:
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        encoded.append(data.tobytes())
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:06d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        path.write_bytes(encoded[i % len(encoded)])
    return paths


def _brief(s: dict[str, Any]) -> dict[str, Any]:
    """The figures of one camera summary that the comparison reports."""
    keys = ("mode", "frames", "dropped", "stop_reason", "elapsed_s", "fps", "stages_ms", "pre_post_draw_ms",
            "latency_ms", "backend", "precision", "device", "runtime", "other_cpu_share")
    return {k: s.get(k) for k in keys}


def _round_figures(serial: dict[str, Any], piped: dict[str, Any]) -> dict[str, Any]:
    sf, pf = serial["fps"]["mean"], piped["fps"]["mean"]
    return {"serial_fps": sf, "pipelined_fps": pf,
            "speedup": round(pf / sf, 3) if sf and pf else None,
            "serial_pre_post_draw_p50_ms": serial["pre_post_draw_ms"]["p50"],
            "pipelined_pre_post_draw_p50_ms": piped["pre_post_draw_ms"]["p50"],
            "pipelined_latency_p50_ms": piped["latency_ms"]["p50"],
            "other_cpu_share": max(serial["other_cpu_share"] or 0.0, piped["other_cpu_share"] or 0.0)}


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.median(values)), 3) if values else None


def compare(model: str, frames: int = 300, video: str | None = None, images: str | None = None,
            stand_in_ms: float = 20.0, ort_threads: int | None = None,
            backends: tuple[str, ...] = ("stand_in", "onnxruntime"), json_path: str | None = None,
            rounds: int = 3, log: Any = print) -> dict[str, Any]:
    """Serial vs pipelined `run_camera` on a folder of 1280x720 JPEG frames, per backend
    (module docstring), ``rounds`` times each, alternating (serial, pipelined), so that a shared
    machine's drift hits both alike; returns the ``edge_mtl.camera_pipeline/1`` dict: per backend
    each round's FPS and speed-up, their medians, the two full summaries of the median round,
    and the targets, judged on the medians."""
    from edge_mtl.bench import host_info
    from edge_mtl.camera.sources import ImageFolderSource
    from edge_mtl.imageio import read_image
    from edge_mtl.runtime.backend import open_backend

    if frames < 1 or rounds < 1:
        raise ValueError(f"--frames and --rounds must be >= 1, got {frames}, {rounds}")
    unknown = set(backends) - set(TARGETS)
    if unknown:
        raise ValueError(f"unknown backend(s) {sorted(unknown)}; choose from {list(TARGETS)}")
    ort_options = {"threads": ort_threads, "spin": False}
    result: dict[str, Any] = {"schema": COMPARE_SCHEMA, "model": str(model), "frames": frames,
                              "rounds": rounds, "frame_source": str(images or video or DEFAULT_VIDEO),
                              "frame_size": list(FRAME_SIZE), "host": host_info(), "cases": {}}
    with tempfile.TemporaryDirectory(prefix="edge_mtl_jpeg_") as tmp:
        paths = write_jpeg_frames(tmp, frames, video, images)
        first = read_image(paths[0])
        for name in backends:
            runs: list[dict[str, Any]] = []
            for r in range(rounds):
                pair: dict[str, Any] = {}
                for mode in ("serial", "pipelined"):
                    if name == "stand_in":
                        with open_backend(model, "onnxruntime", "cpu", **ort_options) as real:
                            runner: Any = StandInBackend.like(real, first, stand_in_ms / 1e3)
                    else:
                        runner = open_backend(model, "onnxruntime", "cpu", **ort_options)
                    with OtherLoad() as load:
                        s = run_camera(ImageFolderSource(paths, tmp), runner, headless=True,
                                       serial=mode == "serial", log=lambda msg: None)
                    s["other_cpu_share"] = load.share
                    pair[mode] = _brief(s)
                    log(f"bench_loop: {name} round {r + 1} {mode}: {s['fps']['mean']} FPS, pre+post+draw "
                        f"p50 {s['pre_post_draw_ms']['p50']:.2f} ms, latency p50 "
                        f"{s['latency_ms']['p50']:.1f} ms")
                runs.append(pair)
            figures = [_round_figures(pair["serial"], pair["pipelined"]) for pair in runs]
            median = {k: _median([f[k] for f in figures]) for k in figures[0]}
            by_speedup = sorted(range(rounds), key=lambda i: figures[i]["speedup"] or 0.0)
            middle = runs[by_speedup[(rounds - 1) // 2]]
            case: dict[str, Any] = {"median": median, "rounds": figures,
                                    "serial": middle["serial"], "pipelined": middle["pipelined"]}
            target = dict(TARGETS[name])
            if name == "stand_in":
                target["stand_in_ms"] = stand_in_ms
                ok = [f["pipelined_fps"] is not None and f["pipelined_fps"] >= target["pipelined_fps_min"]
                      for f in figures]
                met = median["pipelined_fps"] is not None and \
                    median["pipelined_fps"] >= target["pipelined_fps_min"]
            else:
                ok = [f["speedup"] is not None and f["speedup"] >= target["speedup_min"]
                      and f["serial_pre_post_draw_p50_ms"] <= target["pre_post_draw_p50_max_ms"]
                      for f in figures]
                met = (median["speedup"] is not None and median["speedup"] >= target["speedup_min"]
                       and median["serial_pre_post_draw_p50_ms"] <= target["pre_post_draw_p50_max_ms"])
                target["speedup_met"] = bool(median["speedup"] is not None
                                             and median["speedup"] >= target["speedup_min"])
                target["pre_post_draw_met"] = bool(median["serial_pre_post_draw_p50_ms"]
                                                   <= target["pre_post_draw_p50_max_ms"])
                target["speedup_rounds_met"] = sum((f["speedup"] or 0.0) >= target["speedup_min"]
                                                   for f in figures)
            target["met"] = bool(met)
            target["rounds_met"] = sum(ok)
            case["target"] = target
            result["cases"][name] = case
    if json_path:
        write_summary(result, json_path)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help=".pt, .onnx or .engine run as named, or a stem for the best of its siblings "
                        "(default: %(default)s)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--images", help="folder of frames (default: 8 rendered 1280x720 frames)")
    p.add_argument("--json", help="write the summary JSON here")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--record", help="also write the drawn frames to this mp4")
    p.add_argument("--no-tune-malloc", action="store_true", help="leave glibc's allocator settings alone")
    p.add_argument("--ort-threads", type=int, help="onnxruntime intra-op threads (default: one per core)")
    p.add_argument("--ort-spin", action="store_true",
                   help="let onnxruntime's threads busy-wait between runs (off by default)")
    p.add_argument("--serial", action="store_true", help="run the serial loop instead of the pipeline")
    p.add_argument("--compare", action="store_true",
                   help="serial vs pipelined on JPEG frames from --video or --images, with a stand-in "
                        "backend and with onnxruntime FP32 (the model must be an .onnx)")
    p.add_argument("--video", help=f"--compare: the frames' video (default: {DEFAULT_VIDEO})")
    p.add_argument("--stand-in-ms", type=float, default=20.0,
                   help="--compare: the stand-in backend's wait per frame (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3,
                   help="--compare: serial/pipelined pairs per backend, alternating (default: %(default)s)")
    p.add_argument("--cases", default="stand_in,onnxruntime",
                   help="--compare: the backends, comma-separated (default: %(default)s)")
    args = p.parse_args(argv)
    from edge_mtl.cli import one_line, user_errors

    if args.compare:
        try:
            cases = tuple(c.strip() for c in args.cases.split(",") if c.strip())
            result = compare(args.model, args.frames, args.video, args.images, args.stand_in_ms,
                             args.ort_threads, cases, args.json, args.rounds)
        except user_errors() as e:
            print(f"bench_loop: error: {one_line(e)}", file=sys.stderr)
            return 2
        for name, case in result["cases"].items():
            m = case["median"]
            print(f"bench_loop: {name}, median of {result['rounds']}: serial {m['serial_fps']} FPS, "
                  f"pipelined {m['pipelined_fps']} FPS (x{m['speedup']}), pre+post+draw p50 serial "
                  f"{m['serial_pre_post_draw_p50_ms']} ms; targets "
                  f"{'met' if case['target']['met'] else 'NOT met'}: {case['target']}")
        return 0
    try:
        s = bench_loop(args.model, args.frames, args.images, args.backend, args.device, args.json,
                       args.record, tune_malloc=not args.no_tune_malloc, ort_threads=args.ort_threads,
                       ort_spin=args.ort_spin, serial=args.serial)
    except user_errors() as e:
        print(f"bench_loop: error: {one_line(e)}", file=sys.stderr)
        return 2
    st, ppd = s["stages_ms"], s["pre_post_draw_ms"]
    print(f"bench_loop: p50 {s['fps']['p50']} FPS (mean {s['fps']['mean']}); pre+post+draw p50 "
          f"{ppd['p50']:.2f} ms (pre {st['pre']['p50']:.2f}, post {st['post']['p50']:.2f}, "
          f"draw {st['draw']['p50']:.2f}); infer p50 {st['infer']['p50']:.2f} ms")
    share = s["other_cpu_share"]
    if share is not None and share > QUIET_SHARE:
        print(f"bench_loop: warning: other processes used {share:.0%} of the CPU during the run; "
              "these figures are not from a quiet machine")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
