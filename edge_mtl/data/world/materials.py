"""Materials: tileable textures, the road surface and its paint, verges, and the colours of every
part of vehicles, people and props.

Colours are given in display BGR 0..255 and shaded in linear light (``(c / 255) ** 2``); every
function works on the compressed arrays of the pixels it colours and returns linear albedo
(plus emission for lights and lit windows). Nothing here decides geometry: which pixels are
paint is a function of the road layout alone, so the lane mask is exact.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from edge_mtl.compat import zip_strict
from edge_mtl.data.world.scene import Prop, Scene, Vehicle
from edge_mtl.data.world.shapes import Part

PAINT_WHITE = (228.0, 230.0, 230.0)
PAINT_YELLOW = (40.0, 185.0, 225.0)


def lin(color) -> np.ndarray:
    c = np.asarray(color, np.float32) / 255.0
    return c * c


def hash01(*keys: np.ndarray) -> np.ndarray:
    """A deterministic uniform [0, 1) per integer key tuple (vectorised, no RNG state)."""
    h = np.zeros(np.broadcast(*keys).shape, np.uint64)
    for i, k in enumerate(keys):
        h ^= (np.asarray(k).astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B9 * (i + 1))) \
            * np.uint64(0x85EBCA6B)
        h ^= h >> np.uint64(15)
    h *= np.uint64(0xC2B2AE35)
    h ^= h >> np.uint64(13)
    return (h & np.uint64(0xFFFFFF)).astype(np.float32) / np.float32(0x1000000)


@lru_cache(maxsize=None)  # functools.cache: Python 3.9
def texture(kind: str, size: int = 256) -> np.ndarray:
    """Tileable noise textures (fixed per process, zero mean, unit std unless binary)."""
    rng = np.random.default_rng({"grain": 1, "patches": 2, "leaves": 3, "clouds": 4, "cracks": 5,
                                 "stains": 6}[kind])
    if kind == "cracks":
        img = np.zeros((size * 2, size * 2), np.uint8)
        import cv2

        n = size * 2
        for _ in range(40):
            p = rng.uniform(0, n, 2)
            ang = rng.uniform(0, 2 * np.pi)
            pts = [p.copy()]
            for _ in range(int(rng.integers(8, 30))):
                ang += rng.normal(0, 0.6)
                p = p + 6 * np.array([np.cos(ang), np.sin(ang)])
                pts.append(p.copy())
            pts = np.array(pts)
            for dx in (-n, 0, n):  # draw wrapped copies so the texture tiles
                for dy in (-n, 0, n):
                    cv2.polylines(img, [np.round(pts + np.array([dx, dy])).astype(np.int32)], False, 255, 1)
        return (img > 0).astype(np.float32)
    spectrum_falloff = {"grain": 2.5, "patches": 0.06, "leaves": 6.0, "clouds": 0.05, "stains": 0.2}[kind]
    noise = rng.normal(0, 1, (size, size))
    f = np.fft.fftfreq(size)
    fx, fy = np.meshgrid(f, f)
    r = np.sqrt(fx * fx + fy * fy) + 1e-3
    if kind in ("patches", "clouds", "stains"):  # 1/f: patchy at every scale
        amp = r ** -1.4 * np.exp(-r / (spectrum_falloff * 4))
    else:
        amp = np.exp(-(r * size / spectrum_falloff) ** 2 / 50)
    t = np.real(np.fft.ifft2(np.fft.fft2(noise) * amp))
    t = (t - t.mean()) / t.std()
    return t.astype(np.float32)


def sample(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest texel at texel coordinates (u along the texture's columns, v its rows), wrapping."""
    n = tex.shape[0]
    shift = n.bit_length() - 1  # power-of-two sizes: wrap by masking
    idx = ((np.asarray(v).astype(np.int32) & (n - 1)) << shift) | (np.asarray(u).astype(np.int32) & (n - 1))
    return np.take(tex.reshape(-1), idx)


@lru_cache(maxsize=None)  # functools.cache: Python 3.9
def _cell_table() -> np.ndarray:
    return np.random.default_rng(99).random(256 * 256, dtype=np.float32).reshape(256, 256)


def cell01(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """A fixed uniform [0, 1) per integer cell (i, j) (wraps every 256 cells)."""
    return sample(_cell_table(), j, i)


# ----------------------------------------------------------------------- road and verges

def _marking_tables(scene: Scene) -> dict[str, np.ndarray]:
    cols = {k: [] for k in ("off", "c0", "c1", "p0", "p1", "d0", "d1", "w", "yellow", "phase")}
    for m in scene.road.markings:
        sep = (m.gap + m.width) / 2
        c0, c1, p0, p1, d0, d1 = 0.0, 0.0, True, False, False, False
        if m.kind == "none":
            p0 = False
        elif m.kind == "dashed":
            d0 = True
        elif m.kind in ("double", "solid_dashed", "dashed_solid"):
            c0, c1, p1 = -sep, sep, True
            d0, d1 = m.kind == "dashed_solid", m.kind == "solid_dashed"
        for k, v in zip_strict(cols, (m.offset, c0, c1, p0, p1, d0, d1, m.width, m.yellow, m.phase)):
            cols[k].append(v)
    return {k: np.asarray(v, np.float32 if k not in ("p0", "p1", "d0", "d1", "yellow") else bool)
            for k, v in cols.items()}


def nearest_boundary(scene: Scene, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest lane boundary and the signed lateral distance to it."""
    off = np.asarray([m.offset for m in scene.road.markings], np.float32)
    j = np.searchsorted((off[1:] + off[:-1]) / 2, lat).astype(np.int32)
    return j, lat - off[j]


def paint_mask(scene: Scene, j: np.ndarray, dist: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which ground points carry lane paint (nearest boundary j, distance to it, distance along
    the road s), and which of them are yellow. Only points on the carriageway should be asked."""
    road = scene.road
    tab = _marking_tables(scene)
    half_w = tab["w"][j] * np.float32(0.5)
    near = np.abs(dist) < half_w + np.abs(tab["c0"][j]) + np.abs(tab["c1"][j])
    idx = np.flatnonzero(near)
    paint = np.zeros(j.shape, bool)
    if idx.size == 0:
        return paint, paint
    jj, dd, ss = j[idx], dist[idx], s[idx]
    hw = half_w[idx]
    dash_on = np.mod(ss + tab["phase"][jj], np.float32(road.dash_period)) < road.dash_length
    on0 = tab["p0"][jj] & (np.abs(dd - tab["c0"][jj]) < hw) & (~tab["d0"][jj] | dash_on)
    on1 = tab["p1"][jj] & (np.abs(dd - tab["c1"][jj]) < hw) & (~tab["d1"][jj] | dash_on)
    on = on0 | on1
    if road.paint_gaps > 0 and on.any():
        second = (dd > tab["c0"][jj] + hw).astype(np.int32)  # the lines of a pair wear apart
        worn = cell01(np.floor(ss * 2.0), jj * 37 + second) < road.paint_gaps
        on &= ~worn
    paint[idx] = on
    yellow = np.zeros(j.shape, bool)
    yellow[idx] = tab["yellow"][jj] & on
    return paint, yellow


def road_shade(scene: Scene, lat: np.ndarray, s: np.ndarray, t: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Brightness of the carriageway (times ``lin(road.asphalt)``) at ground points."""
    road = scene.road
    near = 1.0 / (1.0 + t * np.float32(1 / 18.0))  # texture contrast fades with distance (no aliasing)
    v = sample(texture("grain"), s * 9.0, lat * 9.0) * (np.float32(0.16) * near)
    v += sample(texture("patches"), s * 0.6 + 37.0, lat * 0.6) * np.float32(0.12)
    v += 1.0
    if road.tyre_tracks > 0:
        # Wheel paths 0.85 m either side of a lane's centre: a bump in the distance to the
        # nearest boundary.
        u = (np.abs(dist) - np.float32(road.lane_width / 2 - 0.85)) * np.float32(1 / 0.32)
        v -= np.float32(road.tyre_tracks) * np.maximum(1.0 - u * u, 0.0)
    if road.patches > 0:
        ci, cj = np.floor(s * np.float32(1 / 7.0)), np.floor(lat * np.float32(1 / 2.7))
        cell = cell01(ci, cj)
        patch = cell < 0.12 * road.patches
        v[patch] *= 0.7 + 4.0 * cell[patch] / max(road.patches, 1e-3)
    if road.surface == "concrete":
        v[np.abs(np.mod(s, np.float32(5.0)) - 2.5) > 2.47] *= 0.55
    if road.seams > 0:
        wiggle = 0.06 * np.sin(s * np.float32(1 / 3.7))
        seam = np.abs(dist - 0.35 - wiggle) < 0.035
        seam |= np.abs(np.mod(s, np.float32(53.0)) - 26.5) > 26.45
        v[seam] *= 1.0 - 0.45 * road.seams
    if road.cracks > 0:
        v -= sample(texture("cracks"), s * 14.0, lat * 14.0) * (np.float32(0.45 * road.cracks) * near)
    np.maximum(v, 0.2, out=v)
    if scene.weather.wet > 0:
        v *= 1.0 - 0.45 * scene.weather.wet
    return v


def paint_albedo(scene: Scene, yellow: np.ndarray, s: np.ndarray, lat: np.ndarray, t: np.ndarray,
                 road_v: np.ndarray) -> np.ndarray:
    """Planar [3, n] linear albedo of paint (worn towards the asphalt by the road's fade)."""
    fade = scene.road.paint_fade * (0.6 + 0.4 * (sample(texture("stains"), s * 1.5, lat * 3.0) > 0))
    keep = (1.0 - 0.08 * sample(texture("grain"), s * 9.0, lat * 9.0) / (1 + t / 18)) * (1.0 - fade)
    if scene.weather.wet > 0:
        keep *= 1.0 - 0.3 * scene.weather.wet
    white, yel, asphalt = lin(PAINT_WHITE), lin(PAINT_YELLOW), lin(scene.road.asphalt)
    out = np.empty((3, yellow.size), np.float32)
    for c in range(3):
        out[c] = np.where(yellow, yel[c], white[c]) * keep + road_v * fade * asphalt[c]
    return out


_VERGE_GRAIN = {"grass": 0.35, "dry": 0.3, "dirt": 0.3, "gravel": 0.4, "snow": 0.08, "pavement": 0.15}


def verge_albedo(scene: Scene, lat: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Planar [3, n] linear albedo of the ground off the carriageway (verges, gravel, median)."""
    road, sides = scene.road, scene.surroundings.sides
    right = lat > 0.5 * (road.paved[0] + road.paved[1])
    out = np.empty((3, lat.size), np.float32)
    near = 1.0 / (1.0 + t / np.float32(25.0))
    grain = sample(texture("grain"), s * 5.0, lat * 5.0) * near
    big = sample(texture("patches"), s * 0.35, lat * 0.35 + 71.0)
    for side, mask in ((0, ~right), (1, right)):
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            continue
        sd = sides[side]
        dist = np.abs(lat[idx] - road.paved[side])
        amp = _VERGE_GRAIN[sd.verge]
        v = 1.0 + amp * grain[idx] + 0.25 * big[idx]
        col = np.broadcast_to(lin(sd.verge_color)[:, None], (3, idx.size))
        if sd.verge == "pavement":
            joint = (np.abs(np.mod(s[idx], 1.2) - 0.6) > 0.58) | (np.abs(np.mod(dist, 1.2) - 0.6) > 0.58)
            v[joint] *= 0.7
        if sd.gravel > 0:
            g = dist < sd.gravel
            col = np.where(g[None, :], lin((120, 128, 132))[:, None], col)
            v = np.where(g, 1.0 + 0.4 * grain[idx], v)
        out[:, idx] = col * v[None, :]
    if road.median is not None:
        m = np.flatnonzero((lat > road.median[0]) & (lat < road.median[1]))
        if m.size:
            if road.median_kind == "grass":
                col = lin(sides[0].verge_color if sides[0].verge != "pavement" else (60, 120, 80))
            else:
                col = lin((150, 152, 150))
            out[:, m] = col[:, None] * (1.0 + 0.3 * grain[m] + 0.2 * big[m])[None, :]
    if scene.weather.wet > 0:
        out *= 1.0 - 0.25 * scene.weather.wet
    return np.maximum(out, 0.0, out=out)


def puddles(scene: Scene, lat: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Standing water on the road: 0..1 mirror weight."""
    if scene.weather.puddles <= 0:
        return np.zeros(lat.shape, np.float32)
    n = sample(texture("patches"), s * 1.3 + 300.0, lat * 1.3 + 100.0)
    thr = np.float32(1.3 - 2.2 * scene.weather.puddles)
    return np.clip((n - thr) * 4.0, 0.0, 1.0)


# ------------------------------------------------------------------------ objects and props

def _unit_coords(part: Part, local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hit point in the part's box as fx, fz in [-1, 1] (across, along) and fy in [0, 1] (top->bottom)."""
    hx, hy, hz = part.half
    return ((local[:, 0]) / hx, (local[:, 1] + hy) / (2 * hy), (local[:, 2]) / hz)


def _rng_colors(style: int) -> np.random.Generator:
    return np.random.default_rng(style)


def vehicle_albedo(veh: Vehicle, part: Part, local: np.ndarray, normal: np.ndarray, scene: Scene
                   ) -> tuple[np.ndarray, np.ndarray | None, float, np.ndarray]:
    """(albedo, emission or None, gloss, reflectivity per pixel) of one part of a vehicle or person."""
    n = local.shape[0]
    rng = _rng_colors(veh.style)
    paint = lin(veh.color)
    glass = lin((34, 30, 28))
    dark = lin((28, 28, 30))
    role = part.role
    emis = None
    refl = np.zeros(n, np.float32)
    light = scene.light
    lit = light.headlights or scene.weather.rain > 0 or scene.weather.fog_distance < 300
    if veh.shape == "person":
        return _person_albedo(veh, part, local, normal, rng), None, 0.0, refl
    fx, fy, fz = _unit_coords(part, local)
    nx, ny, nz = normal[:, 0], normal[:, 1], normal[:, 2]
    end = np.abs(nz) > 0.5
    side = np.abs(nx) > 0.5
    top = ny < -0.5
    col = np.broadcast_to(paint, (n, 3)).copy()
    gloss = 0.6
    if role == "wheel":
        col[:] = lin((22, 22, 24))
        if part.prim == "cylinder":
            rad = np.sqrt(local[:, 1] ** 2 + local[:, 2] ** 2) / part.half[1]
            rim = side & (rad < 0.62)
            col[rim] = lin((150, 150, 155)) * (0.6 + 0.4 * (rad[rim] < 0.5))[:, None]
        return col, None, 0.1, refl
    if role in ("chassis", "bed"):
        col[:] = dark if role == "chassis" else lin((40, 40, 42))
        col[side if role == "bed" else np.zeros(n, bool)] = paint
        return col, None, 0.1, refl
    if role == "cargo":
        white = rng.random() < 0.55
        cargo = lin((230, 230, 228)) if white else lin(np.clip(np.array(veh.color) * 1.1, 0, 255))
        col[:] = cargo
        rear = end & (nz < 0)
        seam = rear & (np.abs(fx) < 0.015)
        col[seam] = dark
        lights = rear & (fy > 0.86) & (np.abs(fx) > 0.72)
        col[lights] = lin((40, 40, 170))
        if lit or veh.brake:
            emis = np.zeros((n, 3), np.float32)
            emis[lights] = lin((40, 40, 255)) * (3.0 if veh.brake else 1.5)
        return col, emis, 0.3, refl
    # Glass.
    win = np.zeros(n, bool)
    if role == "cabin":
        win = (end & (np.abs(fx) < 0.88) & (fy > 0.1) & (fy < 0.97)) | \
              (side & (np.abs(fz) < 0.88) & (fy > 0.12) & (fy < 0.96) & (np.abs(fz) > 0.04))
        if rng.random() < 0.15:
            col[top] = lin((30, 30, 32))
    elif role in ("van", "cab", "bus"):
        front = end & (nz > 0)
        rear = end & (nz < 0)
        if role == "bus":
            band = side & (fy > 0.12) & (fy < 0.5) & (np.mod(local[:, 2], 1.3) > 0.12)
            win = band | (front & (fy > 0.05) & (fy < 0.55) & (np.abs(fx) < 0.92)) | \
                (rear & (fy > 0.1) & (fy < 0.3) & (np.abs(fx) < 0.85))
        else:
            win = (front & (fy > 0.06) & (fy < 0.45) & (np.abs(fx) < 0.9)) | \
                  (side & (fz > 1.0 - 2 * (0.9 / part.half[2])) & (fy > 0.08) & (fy < 0.42))
            if role == "van":
                win |= rear & (fy > 0.08) & (fy < 0.42) & (np.abs(fx) < 0.85) & (np.abs(fx) > 0.03)
    col[win] = glass
    refl[win] = 0.12
    # Lamps, plate, grille and bumpers on the end faces of the lower body (or a one-box body).
    emis_lights = None
    if role in ("body", "van", "bus", "cab"):
        rear = end & (nz < 0)
        front = end & (nz > 0)
        if role == "body":
            tail = rear & (fy > 0.04) & (fy < 0.34) & (np.abs(fx) > 0.62) & (np.abs(fx) < 0.97)
            head = front & (fy > 0.08) & (fy < 0.36) & (np.abs(fx) > 0.55) & (np.abs(fx) < 0.93)
            grille = front & (fy > 0.3) & (fy < 0.7) & (np.abs(fx) < 0.45)
            plate = (rear & (fy > 0.36) & (fy < 0.62)) | (front & (fy > 0.7) & (fy < 0.9))
            plate &= np.abs(fx) < 0.2
            bumper = end & (fy > 0.8) & ~plate
        else:
            tail = rear & (fy > 0.72) & (fy < 0.86) & (np.abs(fx) > 0.72)
            head = front & (fy > 0.7) & (fy < 0.84) & (np.abs(fx) > 0.6)
            grille = front & (fy > 0.62) & (fy < 0.9) & (np.abs(fx) < 0.5)
            plate = end & (fy > 0.88) & (fy < 0.97) & (np.abs(fx) < 0.2)
            bumper = end & (fy > 0.97)
        if rng.random() < 0.6:
            col[bumper] = lin((35, 35, 38))
        col[grille] = lin((30, 30, 32))
        col[plate] = lin((225, 225, 225) if rng.random() < 0.7 else (40, 200, 235))
        col[tail] = lin((30, 30, 175))
        col[head] = lin((205, 205, 200))
        refl[head] = 0.3
        on_tail = lit or veh.brake
        on_head = (light.headlights or (light.time == "day" and rng.random() < 0.5)) and not veh.parked
        if (on_tail or on_head) and not veh.parked:
            emis_lights = np.zeros((n, 3), np.float32)
            if on_tail:
                emis_lights[tail] = lin((40, 40, 255)) * (3.5 if veh.brake else 1.2)
            if on_head:
                strength = 12.0 if light.headlights else 1.2
                emis_lights[head] = lin((235, 248, 255)) * strength
    refl[~win] = np.maximum(refl[~win], 0.05)  # paint reflects a little sky
    return col, emis_lights, gloss, refl


def _person_albedo(veh: Vehicle, part: Part, local: np.ndarray, normal: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    n = local.shape[0]
    top = lin(veh.color)
    trousers = [(110, 60, 40), (30, 30, 30), (90, 120, 140), (70, 70, 75), (40, 50, 90)]
    bottom = lin(trousers[int(rng.integers(5))])
    skin = lin([(150, 180, 225), (110, 145, 190), (70, 95, 135), (45, 60, 90)][int(rng.integers(4))])
    hair = lin([(20, 20, 25), (30, 50, 80), (60, 110, 160), (140, 140, 140)][int(rng.integers(4))])
    shoes = lin((30, 30, 32))
    role = part.role
    fy = (local[:, 1] + part.half[1]) / (2 * part.half[1])
    if role == "head":
        col = np.broadcast_to(skin, (n, 3)).copy()
        back = local[:, 2] < -0.02
        col[(local[:, 1] < -0.03) | back] = hair
        return col
    if role in ("torso",):
        return np.broadcast_to(top, (n, 3)).copy()
    if role == "arm":
        col = np.broadcast_to(top, (n, 3)).copy()
        col[fy > 0.85] = skin
        return col
    col = np.broadcast_to(bottom, (n, 3)).copy()  # leg(s)
    col[fy > 0.92] = shoes
    return col


def prop_albedo(prop: Prop, part: Part, local: np.ndarray, normal: np.ndarray, scene: Scene
                ) -> tuple[np.ndarray, np.ndarray | None, float, np.ndarray]:
    n = local.shape[0]
    rng = _rng_colors(prop.style)
    refl = np.zeros(n, np.float32)
    emis = None
    role = part.role
    night = scene.light.time == "night"
    if role == "facade":
        wall, glass = lin(prop.color), lin((45, 40, 38)) * float(rng.uniform(0.7, 1.4))
        floor_h = np.float32(rng.uniform(2.9, 3.6))
        spacing = np.float32(rng.uniform(2.2, 4.0))
        win_half = np.float32(rng.uniform(0.35, 0.7) / 2)
        height = np.float32(part.half[1]) - local[:, 1]  # metres above the ground
        across = np.where(np.abs(normal[:, 0]) > 0.5, local[:, 2], local[:, 0])
        fy = height / floor_h
        floor = np.floor(fy)
        fy -= floor
        fu = np.abs(across / spacing - np.floor(across / spacing) - 0.5)
        win = np.where(floor == 0, (fy > 0.12) & (fy < 0.85) & (fu < 0.45),
                       (fy > 0.3) & (fy < 0.82) & (fu < win_half))
        win &= (normal[:, 1] > -0.5) & (height < 2 * part.half[1] - 0.8)
        col = np.where(win[:, None], glass[None, :], wall[None, :])
        col[normal[:, 1] < -0.5] = lin(prop.color2)
        refl = win * np.float32(0.15)
        if night and win.any():
            idx = np.flatnonzero(win)
            column = np.floor(across[idx] / spacing) + prop.style % 97
            on = cell01(floor[idx], column) < float(rng.uniform(0.1, 0.5))
            emis = np.zeros((n, 3), np.float32)
            emis[idx[on]] = lin((120, 200, 245)) * float(rng.uniform(0.15, 0.5))
        return col, emis, 0.0, refl
    if role == "roof":
        return np.broadcast_to(lin(prop.color2), (n, 3)).copy(), None, 0.0, refl
    if role == "trunk":
        return np.broadcast_to(lin(prop.color2), (n, 3)).copy() * 0.8, None, 0.0, refl
    if role == "crown":
        # Surface coordinates (around, up) so that the foliage is the same grain all over.
        r = float(np.mean(part.half))
        around = np.arctan2(local[:, 2] / part.half[2], local[:, 0] / part.half[0]) * np.float32(r)
        up = local[:, 1]
        leaves = sample(texture("leaves"), around * 22.0 + 40, up * 22.0 + 80)
        clumps = sample(texture("grain"), around * 4.0 + 13, up * 4.0 + 7)
        v = np.clip(0.8 + 0.22 * leaves + 0.25 * clumps, 0.25, 1.5)
        return lin(prop.color)[None, :] * v[:, None], None, 0.0, refl
    if role in ("metal", "wood"):
        return np.broadcast_to(lin(prop.color), (n, 3)).copy(), None, 0.2 if role == "metal" else 0.0, refl
    if role == "lamp":
        col = np.broadcast_to(lin((200, 200, 200)), (n, 3)).copy()
        if scene.light.lamps:
            emis = np.zeros((n, 3), np.float32)
            emis[normal[:, 1] > 0.5] = lin(prop.color2) * 25.0
        return col, emis, 0.2, refl
    if role == "board":
        col = np.broadcast_to(lin((150, 150, 150)), (n, 3)).copy()
        face = normal[:, 2] < -0.5  # the front faces the approaching traffic
        fx = local[:, 0] / part.half[0]
        fy = local[:, 1] / part.half[1]
        border = (np.abs(fx) > 1 - 0.08 / part.half[0]) | (np.abs(fy) > 1 - 0.08 / part.half[1])
        col[face] = lin(prop.color)
        col[face & border] = lin((235, 235, 235))
        return col, None, 0.3, refl
    raise ValueError(f"unknown prop role {role!r}")
