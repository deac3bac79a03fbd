"""Sequence mode: temporally coherent frames of a drive through the synthetic world."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from edge_mtl.data.world import Frame, Scene, Vehicle, render, sample_scene
from edge_mtl.types import Camera


def drive_scenes(seed: int, num_frames: int, fps: float = 30.0, ego_speed: float = 22.0,
                 camera: Camera | None = None) -> Iterator[Scene]:
    """The ``num_frames`` scenes of one drive (cheap): dashes scroll, traffic moves, the road bends.

    Road layout, weather and lighting stay fixed for the drive; curvature drifts smoothly,
    vehicles move at their own speeds relative to the ego car and are respawned ahead once
    they fall behind the camera or beyond the background.
    """
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, camera)
    dt = 1.0 / fps
    target_curvature = scene.curvature
    for i in range(num_frames):
        yield scene
        if i == num_frames - 1:
            return
        if rng.random() < dt / 4.0:  # a new bend every ~4 s on average
            target_curvature = float(rng.normal(0.0, 0.0012))
        curvature = scene.curvature + (target_curvature - scene.curvature) * min(1.0, dt / 1.5)
        scene = replace(scene, travelled=scene.travelled + ego_speed * dt, curvature=curvature,
                        vehicles=tuple(_advance(scene, v, ego_speed, dt, rng)
                                       for v in scene.vehicles))


def drive(seed: int, num_frames: int, fps: float = 30.0, ego_speed: float = 22.0,
          camera: Camera | None = None) -> Iterator[Frame]:
    """Yield the rendered frames of one drive (`drive_scenes`), named ``drive{seed}_{i:05d}``."""
    for i, scene in enumerate(drive_scenes(seed, num_frames, fps, ego_speed, camera)):
        yield render(scene, name=f"drive{seed}_{i:05d}")


def _render_image(scene: Scene) -> np.ndarray:
    return render(scene).sample.image


def drive_images(seed: int, num_frames: int, fps: float = 30.0, workers: int | None = None
                 ) -> Iterator[np.ndarray]:
    """The BGR camera images of `drive` in order, rendered by ``workers`` processes (default:
    all cores, up to 8): the scenes are drawn in sequence, the ray casting runs in parallel."""
    scenes = drive_scenes(seed, num_frames, fps)
    workers = min(workers or min(os.cpu_count() or 1, 8), num_frames)
    if workers <= 1:
        yield from map(_render_image, scenes)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_render_image, scenes, chunksize=2)


def _advance(scene: Scene, veh: Vehicle, ego_speed: float, dt: float,
             rng: np.random.Generator) -> Vehicle:
    direction = -1.0 if veh.oncoming else 1.0
    z = veh.z + (direction * veh.speed - ego_speed) * dt
    far = scene.background_depth - 12.0
    if z < -veh.size[2] - 2.0 or z > far:
        z = float(rng.uniform(0.6, 0.9)) * far if z < 0 else 6.0
    return replace(veh, z=z)
