"""Silhouettes: the parts (boxes, ellipsoids, cylinders) that make up vehicles, people and props.

Parts live in the object's frame: x right, y down with the ground at y = 0, z forward (the
way a vehicle or person faces). A part's ``role`` picks its material (`materials.py`).
``lod`` (level of detail) 0 is full detail; 1 merges small parts of far objects; 2 (objects
too small to be labelled) keeps only the big boxes. Far objects stay cheap, and whatever is
rendered is what the labels measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_mtl.data.world.scene import Prop, Vehicle


@dataclass(frozen=True)
class Part:
    prim: str  # box, ellipsoid, cylinder (along x), pole (cylinder along y)
    centre: tuple[float, float, float]
    half: tuple[float, float, float]  # box half sizes; ellipsoid radii; cylinder (half length, r, r)
    role: str


def _box(role: str, x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> Part:
    """A box from corner ranges (y0 < y1, both <= 0 above the ground)."""
    return Part("box", ((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2),
                ((x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2), role)


def _wheels(w: float, r: float, axles: list[float], tyre: float, lod: int) -> list[Part]:
    if lod:
        return [_box("wheel", -w / 2 + 0.05, w / 2 - 0.05, -2 * r * 0.9, 0.0, a - r * 0.85, a + r * 0.85)
                for a in axles]
    parts = []
    for a in axles:
        for side in (-1, 1):
            parts.append(Part("cylinder", (side * (w / 2 - tyre), -r, a), (tyre, r, r), "wheel"))
    return parts


def vehicle_parts(veh: Vehicle, lod: int = 0) -> list[Part]:
    if lod >= 2:
        small = ("wheel", "chassis", "legs", "head", "bed")
        parts = [p for p in vehicle_parts(veh, 1) if p.role not in small]
        low = max(parts, key=lambda p: p.centre[1] + p.half[1])  # the lowest box reaches the ground
        top = low.centre[1] - low.half[1]
        parts[parts.index(low)] = Part(low.prim, (low.centre[0], top / 2, low.centre[2]),
                                       (low.half[0], -top / 2, low.half[2]), low.role)
        return parts
    w, h, length = veh.size
    half_l = length / 2
    shape = veh.shape
    rng = np.random.default_rng(veh.style)
    if shape == "person":
        return person_parts(veh, lod)
    if shape in ("bus", "truck"):
        r, clear = 0.5, 0.35
    elif shape in ("suv", "pickup", "van"):
        r, clear = float(rng.uniform(0.34, 0.39)), float(rng.uniform(0.2, 0.28))
    else:
        r, clear = float(rng.uniform(0.29, 0.33)), float(rng.uniform(0.13, 0.19))
    tyre = 0.11 if shape not in ("bus", "truck") else 0.15
    inset = 0.02
    parts: list[Part] = []
    if shape in ("sedan", "hatchback", "suv", "pickup"):
        belt = h * float(rng.uniform(0.52, 0.6) if shape != "suv" else rng.uniform(0.52, 0.58))
        cw = w * float(rng.uniform(0.82, 0.9))
        if shape == "sedan":
            c0 = -half_l + length * float(rng.uniform(0.2, 0.27))
            c1 = half_l - length * float(rng.uniform(0.3, 0.36))
        elif shape == "hatchback":
            c0, c1 = -half_l + 0.12, half_l - length * float(rng.uniform(0.3, 0.36))
        elif shape == "suv":
            c0, c1 = -half_l + 0.1, half_l - length * float(rng.uniform(0.28, 0.33))
        else:  # pickup: cab in front of an open bed
            c0, c1 = -half_l + length * float(rng.uniform(0.38, 0.45)), half_l - length * 0.3
        parts.append(_box("body", -w / 2, w / 2, -belt, -clear, -half_l, half_l))
        parts.append(_box("cabin", -cw / 2, cw / 2, -h, -belt, c0, c1))
        if shape == "pickup":
            parts.append(_box("bed", -w / 2 + 0.08, w / 2 - 0.08, -belt - 0.01, -belt + 0.25,
                              -half_l + 0.1, c0 - 0.05))
        axles = [half_l - float(rng.uniform(0.75, 1.0)), -half_l + float(rng.uniform(0.75, 1.0))]
    elif shape == "van":
        nose = float(rng.uniform(0.5, 1.0))
        parts.append(_box("van", -w / 2, w / 2, -h, -clear, -half_l, half_l - nose))
        parts.append(_box("body", -w / 2, w / 2, -h * 0.5, -clear, half_l - nose, half_l))
        axles = [half_l - nose - 0.2, -half_l + 0.9]
    elif shape == "bus":
        parts.append(_box("bus", -w / 2, w / 2, -h, -clear, -half_l, half_l))
        axles = [half_l - 2.6, -half_l + 3.2]
    else:  # truck: cab and a cargo box
        cab_l = float(rng.uniform(1.9, 2.4))
        cab_h = min(h, float(rng.uniform(2.8, 3.2)))
        parts.append(_box("cab", -w / 2 + 0.05, w / 2 - 0.05, -cab_h, -0.55, half_l - cab_l, half_l))
        parts.append(_box("cargo", -w / 2, w / 2, -h, -1.15, -half_l, half_l - cab_l - 0.3))
        parts.append(_box("chassis", -w / 2 + 0.25, w / 2 - 0.25, -1.15, -0.55, -half_l + 0.3,
                          half_l - cab_l))
        axles = [half_l - 1.4, -half_l + 2.2, -half_l + 1.0]
    parts += _wheels(w - 2 * inset, r, axles, tyre, lod)
    return parts


def person_parts(veh: Vehicle, lod: int = 0) -> list[Part]:
    w, h, d = veh.size
    rng = np.random.default_rng(veh.style)
    hip, shoulder = 0.47 * h, 0.81 * h
    torso_w = w - 0.2
    stride = float(rng.uniform(-0.18, 0.18)) if abs(veh.speed) > 0.3 else 0.0
    head = Part("ellipsoid", (0.0, -(h - 0.115), 0.01), (0.085, 0.115, 0.1), "head")
    torso = _box("torso", -torso_w / 2, torso_w / 2, -shoulder, -hip + 0.05, -d / 2 + 0.05, d / 2 - 0.05)
    if lod:
        return [_box("legs", -torso_w / 2 + 0.02, torso_w / 2 - 0.02, -hip, 0.0, -0.08, 0.08),
                _box("torso", -w / 2, w / 2, -shoulder, -hip + 0.05, -d / 2 + 0.05, d / 2 - 0.05), head]
    parts = [torso, head]
    for side in (-1, 1):
        lx = side * torso_w * 0.25
        lz = side * stride
        parts.append(_box("leg", lx - 0.065, lx + 0.065, -hip, 0.0, lz - 0.075, lz + 0.075))
        ax = side * (torso_w / 2 + 0.05)
        az = -side * stride * 0.8
        parts.append(_box("arm", ax - 0.045, ax + 0.045, -shoulder + 0.02, -0.44 * h, az - 0.05, az + 0.05))
    return parts


def prop_parts(prop: Prop, lod: int = 0) -> list[Part]:
    if lod >= 2 and prop.kind in ("lamp", "pole", "sign"):
        return prop_parts(prop, 1)[:1] if prop.kind != "sign" else prop_parts(prop, 1)[1:]
    across, h, along = prop.size
    rng = np.random.default_rng(prop.style)
    if prop.kind == "building":
        parts = [_box("facade", -across / 2, across / 2, -h, 0.0, -along / 2, along / 2)]
        if rng.random() < 0.4 and not lod:  # a roof box set back
            parts.append(_box("roof", -across / 2 + 1.0, across / 2 - 1.0, -h - float(rng.uniform(1, 3)), -h,
                              -along / 2 + 1.0, along / 2 - 1.0))
        return parts
    if prop.kind in ("tree", "conifer"):
        rc = across / 2
        trunk_r = float(np.clip(rc * 0.09, 0.08, 0.35))
        if prop.kind == "conifer":
            ch = h * float(rng.uniform(0.7, 0.85))
            bare = max(h - ch, 0.3) + 0.3  # the trunk reaches into the crown
            parts = [Part("pole", (0.0, -bare / 2, 0.0), (bare / 2, trunk_r, trunk_r), "trunk"),
                     Part("ellipsoid", (0.0, -(h - ch / 2), 0.0), (rc * 0.8, ch / 2, rc * 0.8), "crown")]
            return parts
        trunk_h = h - rc * 1.8
        parts = [Part("pole", (0.0, -trunk_h / 2 - 0.3, 0.0), (trunk_h / 2 + 0.3, trunk_r, trunk_r), "trunk"),
                 Part("ellipsoid", (0.0, -(h - rc * 0.9), 0.0), (rc, rc * 0.9, rc), "crown")]
        if not lod and rng.random() < 0.35:
            off = rng.uniform(-0.5, 0.5, 3) * rc
            centre = (float(off[0]), -(h - rc * 1.1) + abs(float(off[1])), float(off[2]))
            parts.append(Part("ellipsoid", centre, (rc * 0.7, rc * 0.6, rc * 0.7), "crown"))
        return parts
    if prop.kind == "bush":
        return [Part("ellipsoid", (0.0, -h * 0.5, 0.0), (across / 2, h / 2, along / 2), "crown")]
    if prop.kind == "lamp":
        r = 0.08
        arm = along  # the arm reaches over the road: towards -x in the prop frame
        parts = [Part("pole", (0.0, -h / 2, 0.0), (h / 2, r, r), "metal")]
        if not lod:
            parts.append(_box("metal", -arm, 0.0, -h - 0.08, -h + 0.02, -0.05, 0.05))
        parts.append(_box("lamp", -arm - 0.05, -arm + 0.55, -h - 0.05, -h + 0.1, -0.15, 0.15))
        return parts
    if prop.kind == "pole":
        r = across / 2
        parts = [Part("pole", (0.0, -h / 2, 0.0), (h / 2, r, r), "wood")]
        if not lod:
            parts.append(_box("wood", -1.0, 1.0, -h + 0.5, -h + 0.65, -0.06, 0.06))
        return parts
    if prop.kind == "sign":
        bw, bh = across, along
        parts = [Part("pole", (0.0, -(h - bh) / 2, 0.0), ((h - bh) / 2 + 0.01, 0.04, 0.04), "metal"),
                 _box("board", -bw / 2, bw / 2, -h, -(h - bh), -0.03, 0.03)]
        return parts
    raise ValueError(f"unknown prop kind {prop.kind!r}")
