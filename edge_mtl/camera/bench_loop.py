"""End-to-end camera-loop benchmark on frames already in memory (no disk, no camera).

    python -m edge_mtl.camera.bench_loop --model M --frames 300 --json loop.json [--images DIR]

Runs `run_camera` headless on 1280x720 frames (rendered from the synthetic world, or read from
``--images``) through the overlay, and prints the p50 FPS and the p50 of pre + post + draw per
frame. The JSON is the camera summary (``edge_mtl.camera/1``) plus ``other_cpu_share``: the share
of the machine's CPU that other processes used during the run (0 on a quiet machine; a warning is
printed above 5 %).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edge_mtl.camera.loop import DEFAULT_MODEL, run_camera, write_summary
from edge_mtl.camera.sources import MemorySource
from edge_mtl.runtime.timing import OtherLoad

QUIET_SHARE = 0.05  # above this share of the CPU taken by other processes, the run was not quiet


def bench_loop(model: str, frames: int = 300, images: str | None = None, backend: str = "auto",
               device: str = "auto", json_path: str | None = None, record: str | None = None,
               tune_malloc: bool = True, ort_threads: int | None = None, ort_spin: bool = False
               ) -> dict[str, Any]:
    """The camera summary of ``frames`` loop iterations over in-memory 1280x720 frames."""
    import cv2

    from edge_mtl.bench import load_frames

    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    pool = [f if f.shape[:2] == (720, 1280) else cv2.resize(f, (1280, 720), interpolation=cv2.INTER_AREA)
            for f in load_frames(images)]
    with OtherLoad() as load:
        summary = run_camera(MemorySource(pool, count=frames, fps=30.0), model, backend, device,
                             headless=True, record=record, tune_malloc=tune_malloc,
                             backend_options={"onnxruntime": {"threads": ort_threads, "spin": ort_spin}})
    summary["other_cpu_share"] = load.share  # CPU other processes took meanwhile (0 = quiet)
    if json_path:
        write_summary(summary, json_path)
    return summary


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
    args = p.parse_args(argv)
    from edge_mtl.cli import one_line, user_errors

    try:
        s = bench_loop(args.model, args.frames, args.images, args.backend, args.device, args.json,
                       args.record, tune_malloc=not args.no_tune_malloc, ort_threads=args.ort_threads,
                       ort_spin=args.ort_spin)
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
