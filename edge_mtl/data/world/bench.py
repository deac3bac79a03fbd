"""Rendering speed of the synthetic world: ``python -m edge_mtl.data.world.bench --num 50``.

Renders ``--num`` random frames (seeds ``--seed``, ``--seed + 1``, ...) in this process, after
one warm-up frame, and prints JSON: frames per second (wall and CPU time) and per-frame
latency percentiles. ``edge-mtl synth`` runs these renders in worker processes and adds the
JPEG / PNG writes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def bench(num: int, seed: int = 0) -> dict:
    from edge_mtl.data.world import render_random

    if num <= 0:
        raise ValueError(f"--num must be positive, got {num}")
    render_random(seed + num)  # warm-up: textures, noise pools, imports
    times = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(num):
        t = time.perf_counter()
        render_random(seed + i)
        times.append(time.perf_counter() - t)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ms = np.asarray(times) * 1000
    return {"schema": "edge_mtl.world_bench/1", "frames": num, "seed": seed,
            "seconds": round(wall, 3), "frames_per_s": round(num / wall, 3),
            "cpu_frames_per_s": round(num / cpu, 3) if cpu > 0 else None,
            "ms_per_frame": {"mean": round(float(ms.mean()), 1),
                             "p50": round(float(np.percentile(ms, 50)), 1),
                             "p90": round(float(np.percentile(ms, 90)), 1), "max": round(float(ms.max()), 1)}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_mtl.data.world.bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--num", type=int, default=50, help="frames to render (default 50)")
    ap.add_argument("--seed", type=int, default=0, help="first scene seed (default 0)")
    args = ap.parse_args(argv)
    if args.num <= 0:
        ap.error(f"--num must be positive, got {args.num}")
    print(json.dumps(bench(args.num, args.seed)))


if __name__ == "__main__":
    main()
