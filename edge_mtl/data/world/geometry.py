"""Geometry: pixel rays, the ground plane, projection, image regions and exact ray casting.

Two frames. The camera frame is X right, Y down, Z along the optical axis. The road frame
shares the camera's origin and has Y down along gravity, Z forward along the horizontal
projection of the optical axis; the road is the plane ``Y = h`` (h = mount height). The camera
is pitched (down positive) and rolled relative to the road: ``R = Rx(pitch) @ Rz(roll)`` turns
camera-frame vectors into road-frame ones. A pixel's ray is ``t * R (x_n, y_n, 1)`` with
``(x_n, y_n) = ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy)``, so the ray parameter ``t`` *is* the
camera z-depth that depth maps store (the KITTI convention), whatever the pitch and roll.

Casting functions take a pixel region and return the pixels whose ray hits the primitive:
flat pixel indices, the hit depth ``t`` and the hit point in the primitive's own frame.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Tuple

import numpy as np

from edge_mtl.types import Camera

NEAR = 0.05  # metres: nothing is hit nearer than this along the optical axis

Region = Tuple[int, int, int, int]  # r0, r1, c0, c1 (half open); typing's: Python 3.8


def rotation(pitch: float, roll: float) -> np.ndarray:
    """Camera -> road frame: pitch (down positive) about X after roll about the optical axis."""
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return rx @ rz


def yaw_matrix(yaw: float) -> np.ndarray:
    """Object frame -> road frame for an object turned by ``yaw`` about the vertical (Y)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass(frozen=True, eq=False)
class Rays:
    """Road-frame direction of every pixel's ray, scaled so that its camera z is 1."""

    cam: Camera
    rot: np.ndarray  # camera -> road
    dx: np.ndarray  # float32 [H, W]
    dy: np.ndarray
    dz: np.ndarray
    xn: np.ndarray  # float32 [W], normalised image x of each column
    yn: np.ndarray  # float32 [H]
    inv_dy: np.ndarray  # 1 / dy (huge where dy is 0): the depth at which a ray drops one metre

    @property
    def shape(self) -> tuple[int, int]:
        return self.dx.shape

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.dx.reshape(-1), self.dy.reshape(-1), self.dz.reshape(-1)


_RAY_CACHE: OrderedDict[tuple, Rays] = OrderedDict()
_RAY_CACHE_SIZE = 3  # a drive reuses one camera; random frames each bring their own
_RAY_LOCK = threading.Lock()


def rays(cam: Camera, pitch: float = 0.0, roll: float = 0.0) -> Rays:
    """The rays of a camera pitched and rolled relative to the road (cached: a drive reuses them)."""
    key = (replace(cam, mount_height=0.0), float(pitch), float(roll))
    with _RAY_LOCK:
        hit = _RAY_CACHE.get(key)
        if hit is not None:
            _RAY_CACHE.move_to_end(key)
            return hit
    rot = rotation(pitch, roll)
    xn = ((np.arange(cam.width, dtype=np.float64) + 0.5 - cam.cx) / cam.fx).astype(np.float32)
    yn = ((np.arange(cam.height, dtype=np.float64) + 0.5 - cam.cy) / cam.fy).astype(np.float32)
    r = rot.astype(np.float32)
    out = []
    for i in range(3):  # road-frame component i of R @ (xn, yn, 1)
        out.append(np.ascontiguousarray(r[i, 0] * xn[None, :] + (r[i, 1] * yn[:, None] + r[i, 2])))
    with np.errstate(divide="ignore"):
        inv_dy = np.float32(1.0) / (out[1] + np.float32(1e-30))
    rs = Rays(cam, rot, out[0], out[1], out[2], xn, yn, inv_dy)
    with _RAY_LOCK:
        _RAY_CACHE[key] = rs
        while len(_RAY_CACHE) > _RAY_CACHE_SIZE:
            _RAY_CACHE.popitem(last=False)
    return rs


def rows_times(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``points @ m`` for [N, 3] rows, without BLAS (whose threads cost more than the product)."""
    m = m.astype(points.dtype)
    return (points[:, 0:1] * m[0] + points[:, 1:2] * m[1]) + points[:, 2:3] * m[2]


def project(cam: Camera, rot: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Road-frame points [N, 3] -> pixel u, v (continuous, pixel edges at integers) and z."""
    pc = rows_times(points, rot)  # road -> camera is rot.T; row vectors
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = cam.fx * pc[:, 0] / z + cam.cx
        v = cam.fy * pc[:, 1] / z + cam.cy
    return u, v, z


_CUBE = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float64)
_CUBE_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8)
               if np.abs(_CUBE[a] - _CUBE[b]).sum() == 2]


def box_corners(centre: np.ndarray, rot: np.ndarray, half: np.ndarray) -> np.ndarray:
    return centre + rows_times(_CUBE * half, rot.T)


def region_of_points(cam: Camera, rot: np.ndarray, points: np.ndarray,
                     edges: list[tuple[int, int]] | None = None, margin: int = 0) -> Region | None:
    """The pixel rectangle that holds the projection of the convex hull of ``points``.

    Points behind the near plane are replaced by where the hull's ``edges`` cross it (all
    pairs when None), so the rectangle stays conservative for objects beside the camera.
    """
    pc = rows_times(points, rot)
    z = pc[:, 2]
    front = z >= NEAR
    if not front.any():
        return None
    kept = [pc[front]]
    if not front.all():
        n = len(pc)
        pairs = edges if edges is not None else [(a, b) for a in range(n) for b in range(a + 1, n)]
        for a, b in pairs:
            if front[a] != front[b]:
                f = (NEAR - z[a]) / (z[b] - z[a])
                kept.append((pc[a] + f * (pc[b] - pc[a]))[None])
    p = np.concatenate(kept)
    u = cam.fx * p[:, 0] / p[:, 2] + cam.cx
    v = cam.fy * p[:, 1] / p[:, 2] + cam.cy
    c0 = max(int(np.floor(u.min())) - margin, 0)
    c1 = min(int(np.ceil(u.max())) + margin, cam.width)
    r0 = max(int(np.floor(v.min())) - margin, 0)
    r1 = min(int(np.ceil(v.max())) + margin, cam.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return r0, r1, c0, c1


def box_region(cam: Camera, rot: np.ndarray, centre: np.ndarray, orient: np.ndarray,
               half: np.ndarray) -> Region | None:
    return region_of_points(cam, rot, box_corners(centre, orient, half), _CUBE_EDGES)


def ellipsoid_region(cam: Camera, rot: np.ndarray, centre: np.ndarray, orient: np.ndarray,
                     radii: np.ndarray) -> Region | None:
    """The exact image rectangle of an ellipsoid (its outline's tangent lines, from the dual
    quadric), or that of its bounding box when it reaches the near plane."""
    c = rot.T @ centre  # camera frame
    o = rot.T @ orient
    inv_a = o @ np.diag(radii**2) @ o.T  # A^-1 of (X - c)^T A (X - c) = 1
    depth_extent = np.sqrt(inv_a[2, 2])
    if c[2] - depth_extent < 0.2:
        return box_region(cam, rot, centre, orient, radii)
    k = np.array([[cam.fx, 0.0, cam.cx], [0.0, cam.fy, cam.cy], [0.0, 0.0, 1.0]])
    dual = np.outer(c, c) - inv_a  # the dual quadric's upper-left block; the camera sits at 0
    cs = k @ dual @ k.T  # the outline's dual conic
    out = []
    for i in (0, 1):
        disc = cs[i, 2] ** 2 - cs[i, i] * cs[2, 2]
        if disc < 0:
            return box_region(cam, rot, centre, orient, radii)
        r = np.sqrt(disc)
        out.append(sorted(((cs[i, 2] - r) / cs[2, 2], (cs[i, 2] + r) / cs[2, 2])))
    (u0, u1), (v0, v1) = out
    c0, c1 = max(int(np.floor(u0)) - 1, 0), min(int(np.ceil(u1)) + 1, cam.width)
    r0, r1 = max(int(np.floor(v0)) - 1, 0), min(int(np.ceil(v1)) + 1, cam.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return r0, r1, c0, c1


@dataclass
class Hits:
    """The pixels of a region whose rays hit a primitive."""

    flat: np.ndarray  # int64 flat pixel indices
    t: np.ndarray  # float32 hit depth (camera z)
    local: np.ndarray  # float32 [n, 3] hit point in the primitive's frame
    normal: np.ndarray  # float32 [n, 3] unit normal in the primitive's frame


def _local_dirs(rays: Rays, region: Region, orient: np.ndarray) -> tuple[np.ndarray, ...]:
    """Ray directions of a region in a primitive's frame (orient: primitive -> road)."""
    r0, r1, c0, c1 = region
    d = (rays.dx[r0:r1, c0:c1], rays.dy[r0:r1, c0:c1], rays.dz[r0:r1, c0:c1])
    out = []
    for i in range(3):  # (orient.T @ D)_i
        acc = None
        for j in range(3):
            w = float(orient[j, i])
            if abs(w) < 1e-12:
                continue
            term = d[j] * np.float32(w) if w != 1.0 else d[j]
            if acc is None:
                acc = term
            elif acc is d[0] or acc is d[1] or acc is d[2]:
                acc = acc + term
            else:
                acc += term
        out.append(acc if acc is not None else np.zeros_like(d[0]))
    return tuple(out)


def _finish(rays: Rays, region: Region, hit: np.ndarray, t: np.ndarray, origin: np.ndarray,
            dirs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Flat pixel indices, depths and primitive-frame hit points of the pixels in ``hit``."""
    idx = np.flatnonzero(hit)
    if idx.size == 0:
        return None
    r0, _, c0, c1 = region
    width = c1 - c0
    flat = (idx // width + r0) * rays.shape[1] + (idx % width + c0)
    th = t.reshape(-1)[idx]
    local = np.empty((idx.size, 3), np.float32)
    for i in range(3):
        local[:, i] = dirs[i].reshape(-1)[idx] * th + np.float32(origin[i])
    return flat, th, local


def cast_box(rays: Rays, region: Region, centre: np.ndarray, orient: np.ndarray,
             half: np.ndarray) -> Hits | None:
    """Slab test against an oriented box (centre, orient: box -> road, half sizes)."""
    dirs = _local_dirs(rays, region, orient)
    origin = -(orient.T @ centre)
    tnear = tfar = None
    r0, r1, c0, c1 = region
    for i in range(3):
        d = dirs[i]
        if i == 1 and abs(orient[1, 1] - 1.0) < 1e-12:  # upright: the local y is the road's
            inv = rays.inv_dy[r0:r1, c0:c1]
        else:
            inv = np.float32(1.0) / (d + np.float32(1e-30))  # a parallel ray gets a huge, finite 1/d
        mid = inv * np.float32(-origin[i])  # where the ray crosses the slab's centre plane
        rad = np.abs(inv)
        rad *= np.float32(half[i])
        lo = mid - rad
        mid += rad
        tnear = lo if tnear is None else np.maximum(tnear, lo, out=tnear)
        tfar = mid if tfar is None else np.minimum(tfar, mid, out=tfar)
    hit = (tnear <= tfar) & (tnear > NEAR)
    done = _finish(rays, region, hit, tnear, origin, dirs)
    if done is None:
        return None
    flat, t, local = done
    # The face hit is the axis where the point lies on the box surface (largest |local| / half).
    axis = (np.abs(local) / half.astype(np.float32)).argmax(-1)
    normal = np.zeros_like(local)
    idx = np.arange(len(axis))
    normal[idx, axis] = np.sign(local[idx, axis])
    return Hits(flat, t, local, normal)


def cast_ellipsoid(rays: Rays, region: Region, centre: np.ndarray, orient: np.ndarray,
                   radii: np.ndarray) -> Hits | None:
    dirs = _local_dirs(rays, region, orient)
    origin = -(orient.T @ centre)
    o = (origin / radii).astype(np.float32)
    d = [dirs[i] * np.float32(1.0 / radii[i]) for i in range(3)]
    a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    b = o[0] * d[0] + o[1] * d[1] + o[2] * d[2]  # half of b
    c = np.float32(o @ o - 1.0)
    disc = b * b - a * c
    hit = disc >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a
    hit &= t > NEAR
    done = _finish(rays, region, hit, t, origin, dirs)
    if done is None:
        return None
    flat, t, local = done
    normal = local / (radii.astype(np.float32) ** 2)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-9
    return Hits(flat, t, local, normal)


def cast_cylinder(rays: Rays, region: Region, centre: np.ndarray, orient: np.ndarray,
                  half_length: float, radius: float) -> Hits | None:
    """A closed cylinder along its own x axis."""
    dirs = _local_dirs(rays, region, orient)
    origin = -(orient.T @ centre)
    ox, oy, oz = (np.float32(v) for v in origin)
    dx, dy, dz = dirs
    r2 = np.float32(radius * radius)
    hl = np.float32(half_length)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        a = dy * dy + dz * dz
        b = oy * dy + oz * dz
        c = oy * oy + oz * oz - r2
        disc = b * b - a * c
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / a
        x_side = ox + dx * t_side
        ok_side = (disc >= 0) & (t_side > NEAR) & (np.abs(x_side) <= hl)
        t_side = np.where(ok_side, t_side, np.inf)
        inv = np.float32(1.0) / np.where(np.abs(dx) < 1e-9, np.float32(1e-9), dx)
        t_cap = np.minimum((-hl - ox) * inv, (hl - ox) * inv)
        yc, zc = oy + dy * t_cap, oz + dz * t_cap
        ok_cap = (t_cap > NEAR) & (yc * yc + zc * zc <= r2)
        t_cap = np.where(ok_cap, t_cap, np.inf)
    t = np.minimum(t_side, t_cap)
    hit = np.isfinite(t)
    done = _finish(rays, region, hit, t, origin, dirs)
    if done is None:
        return None
    flat, t, local = done
    normal = np.zeros_like(local)
    on_cap = np.abs(np.abs(local[:, 0]) - hl) < 1e-4 * max(1.0, half_length) + 1e-4
    normal[:, 0] = np.where(on_cap, np.sign(local[:, 0]), 0)
    rad = np.sqrt(local[:, 1] ** 2 + local[:, 2] ** 2) + 1e-9
    normal[:, 1] = np.where(on_cap, 0, local[:, 1] / rad)
    normal[:, 2] = np.where(on_cap, 0, local[:, 2] / rad)
    return Hits(flat, t, local, normal)


# ------------------------------------------------------------------ road-following surfaces

@dataclass(frozen=True)
class RoadCurve:
    """The road's centre curve in the road frame: ``X = a0 + a1 Z + a2 Z^2``."""

    a0: float
    a1: float
    a2: float

    def x(self, z: np.ndarray | float) -> np.ndarray | float:
        return self.a0 + (self.a1 + self.a2 * z) * z

    def yaw(self, z: float) -> float:
        return float(np.arctan(self.a1 + 2 * self.a2 * z))


def road_points(curve: RoadCurve, lateral: float, heights: tuple[float, ...], h: float,
                z0: float, z1: float, n: int = 40) -> np.ndarray:
    """Points along a road-following line (for image regions): Z from z0 to z1, log-spaced."""
    z = np.geomspace(max(z0, 0.5), max(z1, z0 + 0.01, 0.51), n)
    x = np.asarray(curve.x(z)) + lateral
    pts = [np.stack([x, np.full_like(z, h - y), z], -1) for y in heights]
    return np.concatenate(pts)


def cast_curtain(rays: Rays, region: Region, curve: RoadCurve, lateral: float, z_max: float,
                 z_min: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """A vertical surface that follows the road at a fixed lateral offset (all heights).

    Returns (flat index, t, road-frame Y, road-frame Z) of the rays that cross it in front of
    the camera with ``z_min <= Z < z_max``; the caller keeps the heights it wants.
    """
    r0, r1, c0, c1 = region
    dx, dy, dz = rays.dx[r0:r1, c0:c1], rays.dy[r0:r1, c0:c1], rays.dz[r0:r1, c0:c1]
    # a2 (Dz t)^2 + (a1 Dz - Dx) t + (a0 + lateral) = 0, the root near the straight-road one.
    qa = np.float32(curve.a2) * dz * dz
    qb = np.float32(curve.a1) * dz - dx
    qc = np.float32(curve.a0 + lateral)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        disc = qb * qb - 4 * qa * qc
        sq = np.sqrt(np.maximum(disc, 0))
        q = -0.5 * (qb + np.where(qb >= 0, sq, -sq))
        t = qc / q
    zz = t * dz
    ok = (disc >= 0) & (t > NEAR) & (zz < z_max) & (zz >= z_min)
    rr, cc = np.nonzero(ok)
    if rr.size == 0:
        return None
    th = t[rr, cc]
    flat = (rr + r0).astype(np.int64) * rays.shape[1] + (cc + c0)
    return flat, th, dy[rr, cc] * th, dz[rr, cc] * th


def cast_level(rays: Rays, region: Region, y: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The horizontal plane at road-frame ``Y = y`` (the road is ``y = h``): (flat index, t)."""
    r0, r1, c0, c1 = region
    dy = rays.dy[r0:r1, c0:c1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.float32(y) / dy
    ok = (t > NEAR) & np.isfinite(t)
    rr, cc = np.nonzero(ok)
    if rr.size == 0:
        return None
    flat = (rr + r0).astype(np.int64) * rays.shape[1] + (cc + c0)
    return flat, t[rr, cc]
