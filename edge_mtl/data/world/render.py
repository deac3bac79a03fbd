"""Compositing: every surface ray-cast into one z-buffer, then light, weather, sensor and labels.

Order: the road plane and the far wall, road-following surfaces (kerbs, raised sidewalks,
guard rails, barriers, walls), props and labelled objects nearest first (each part cast over
its own image rectangle; whatever is already nearer wins), the ego hood; then the ground's
materials on the ground pixels left visible, shadows, lights, fog and the sensor.

Labels come from the same buffers: an object's box is the bounding rectangle of every pixel
whose ray hits one of its parts (its amodal silhouette, clipped to the image), kept when at
least ``MIN_VISIBLE`` of those pixels show the object and the box is ``MIN_BOX_HEIGHT`` tall;
the lane mask is the paint left visible; depth is the z-buffer (0 for sky).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from edge_mtl.compat import zip_strict
from edge_mtl.data.world import effects, geometry, materials, shapes
from edge_mtl.data.world.scene import PEDESTRIAN, Prop, Scene, Vehicle, sample_scene
from edge_mtl.types import Camera, Sample

MIN_BOX_HEIGHT = 16.0  # pixels at 1280x720; smaller objects are not labelled
MIN_VISIBLE = 0.3  # fraction of an object's projected pixels that must be unoccluded

# Material codes of `Frame.material`.
# PROP: vegetation (crowns, bushes); FIXTURE: the solid props (buildings, trunks, lamps, poles, signs).
SKY, ROAD, PAINT, VERGE, SIDEWALK, WALL, PROP, OBJECT, HOOD, STRUCTURE, FIXTURE = range(11)
GROUND_PLANE = (ROAD, PAINT, VERGE)  # pixels on the plane Y = h
_GROUND = 250  # provisional code: on the ground plane, material decided last

_X_TO_Y = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # cylinder axis x -> y


@dataclass
class Frame:
    """A rendered frame plus per-pixel bookkeeping used by labels and tests."""

    sample: Sample
    scene: Scene
    object_ids: np.ndarray  # int16 [H, W], -1 = no labelled object, else index into scene.vehicles
    kept: list[int] = field(default_factory=list)  # objects that got a box, in box order
    material: np.ndarray | None = None  # uint8 [H, W]: SKY, ROAD, PAINT, ... (module constants)
    projected: np.ndarray | None = None  # int64 [len(vehicles)]: silhouette pixels per object
    silhouette_boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)


class _Canvas:
    """The per-pixel buffers of one render, kept per thread and reset (fresh pages are slow)."""

    _local: ClassVar[threading.local] = threading.local()

    def __init__(self, n: int):
        self.z = np.empty(n, np.float32)
        self.mat = np.empty(n, np.uint8)
        self.ids = np.empty(n, np.int16)
        self.alb = np.empty((3, n), np.float32)  # planar linear albedo
        self.sun = np.empty(n, np.float32)  # n . L towards the sun (cast shadows applied later)
        self.amb = np.empty(n, np.float32)
        self.emis = np.empty((3, n), np.float32)  # planar emitted / reflected radiance
        self.head = np.empty(n, np.float32)
        self.lamp = np.empty(n, np.float32)

    @classmethod
    def get(cls, n: int, ground_sun: float = 0.0) -> _Canvas:
        cv = getattr(cls._local, "canvas", None)
        if cv is None or cv.z.size != n:
            cv = cls._local.canvas = cls(n)
        cv.z.fill(np.inf)
        cv.mat.fill(SKY)
        cv.ids.fill(-1)
        cv.alb.fill(0.0)
        cv.sun.fill(ground_sun)  # what the road plane gets; everything else writes its own
        cv.amb.fill(1.0)
        cv.emis.fill(0.0)
        return cv

    def put(self, f: np.ndarray, t, code: int, oid: int, alb, sun, amb, emis) -> None:
        """Write surface samples: albedo [n, 3], emission planar [3, n] or None."""
        self.z[f] = t
        self.mat[f] = code
        self.ids[f] = oid
        self.sun[f] = sun
        self.amb[f] = amb
        for c in range(3):
            self.alb[c][f] = alb[:, c]
            self.emis[c][f] = 0.0 if emis is None else emis[c]


def object_pose(scene: Scene, veh: Vehicle) -> tuple[np.ndarray, np.ndarray]:
    """Road-frame ground point under an object's centre and its orientation (object -> road)."""
    curve = scene.curve()
    zc = veh.z + 0.5 * veh.size[2]
    yaw = curve.yaw(zc) + veh.yaw + (np.pi if veh.oncoming else 0.0)
    base = np.array([float(curve.x(zc)) + veh.x, scene.camera.mount_height, zc])
    return base, geometry.yaw_matrix(yaw)


def prop_pose(scene: Scene, prop: Prop, z: float) -> tuple[np.ndarray, np.ndarray]:
    curve = scene.curve()
    yaw = curve.yaw(z) + (np.pi if prop.x < 0 else 0.0)  # a prop's -x faces the road
    base = np.array([float(curve.x(z)) + prop.x, scene.camera.mount_height, z])
    return base, geometry.yaw_matrix(yaw)


def part_frame(part: shapes.Part, base: np.ndarray, orient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A part's centre and orientation (part -> road) in the road frame."""
    centre = base + orient @ np.asarray(part.centre)
    return centre, (orient @ _X_TO_Y if part.prim == "pole" else orient)


def part_corners(part: shapes.Part, base: np.ndarray, orient: np.ndarray) -> np.ndarray:
    centre, o = part_frame(part, base, orient)
    return geometry.box_corners(centre, o, np.asarray(part.half))


def _cast_part(rays: geometry.Rays, part: shapes.Part, base: np.ndarray, orient: np.ndarray,
               zbuf2d: np.ndarray | None) -> tuple[geometry.Hits, np.ndarray] | None:
    """Ray-cast one part over its image rectangle; with ``zbuf2d``, skip it when everything
    there is nearer (props; a labelled object's hidden parts still shape its amodal box)."""
    cam = rays.cam
    centre, o = part_frame(part, base, orient)
    half = np.asarray(part.half, np.float64)
    corners = geometry.box_corners(centre, o, half)
    if part.prim == "ellipsoid":
        region = geometry.ellipsoid_region(cam, rays.rot, centre, o, half)
    else:
        region = geometry.region_of_points(cam, rays.rot, corners, geometry._CUBE_EDGES)
    if region is None:
        return None
    r0, r1, c0, c1 = region
    if zbuf2d is not None:
        zmin = float(geometry.rows_times(corners, rays.rot)[:, 2].min())
        if zmin > float(zbuf2d[r0:r1, c0:c1].max()):
            return None  # entirely behind what is drawn there already
    if part.prim == "box":
        hits = geometry.cast_box(rays, region, centre, o, half)
    elif part.prim == "ellipsoid":
        hits = geometry.cast_ellipsoid(rays, region, centre, o, half)
    else:
        hits = geometry.cast_cylinder(rays, region, centre, o, float(half[0]), float(half[1]))
    return None if hits is None else (hits, o, centre)


def _lod(scene: Scene, z: float, height: float) -> int:
    px = scene.camera.fy * height / max(z, 1.0)  # about its height in the image
    return 2 if px < 10.0 else int(px < 40.0)


def render(scene: Scene, name: str = "") -> Frame:
    """Ray-cast ``scene`` into an image, boxes, lane mask and metric depth."""
    cam = scene.camera
    h_img, w_img = cam.height, cam.width
    n_px = h_img * w_img
    rays = geometry.rays(cam, scene.pitch, scene.roll)
    dx, dy, dz = rays.flat()
    h = cam.mount_height
    bg = scene.background_depth
    sun_dir = effects.sun_direction(scene)
    sunlit = scene.light.sun_elevation > 0 and max(scene.light.sun) > 0
    sky_ref = lin_sky(scene)
    cv = _Canvas.get(n_px, max(0.0, -float(sun_dir[1])) if sunlit else 0.0)
    zbuf2d = cv.z.reshape(h_img, w_img)

    # The road plane (Y = h) up to the far wall, the wall, the sky.
    t_ground = rays.inv_dy.reshape(-1) * np.float32(h)
    on_ground = dy * np.float32(bg) > dz * np.float32(h)  # Z = dz h / dy < bg, below the horizon
    np.copyto(cv.z, t_ground, where=on_ground)
    cv.mat[on_ground] = _GROUND
    _draw_wall(scene, rays, cv)

    # Road-following structures: kerbs and raised sidewalks, rails, barriers, walls.
    _draw_roadside(scene, rays, cv, sun_dir, sunlit, sky_ref)

    # Props and labelled objects, nearest first.
    items: list[tuple[float, str, int]] = []
    for i, prop in enumerate(scene.props):
        z = scene.prop_z(prop)
        if z + prop.size[2] / 2 > -12.0 and z + max(prop.size[0], prop.size[2]) / 2 < bg - 1.0:
            items.append((max(z - prop.size[2] / 2, 0.0), "prop", i))
    for k, veh in enumerate(scene.vehicles):
        items.append((max(veh.z, 0.0), "obj", k))
    items.sort()
    hits_of: dict[int, list[np.ndarray]] = {}
    for _, kind, i in items:
        if kind == "prop":
            prop = scene.props[i]
            z = scene.prop_z(prop)
            base, orient = prop_pose(scene, prop, z)
            for part in shapes.prop_parts(prop, _lod(scene, z, prop.size[1])):
                cast = _cast_part(rays, part, base, orient, zbuf2d)
                if cast is not None:
                    code = PROP if part.role == "crown" else FIXTURE
                    _write_part(scene, rays, cv, cast, part, code, -1, sun_dir, sunlit, sky_ref,
                                lambda pt, loc, nrm, pr=prop: materials.prop_albedo(pr, pt, loc, nrm, scene))
        else:
            veh = scene.vehicles[i]
            base, orient = object_pose(scene, veh)
            flats = hits_of.setdefault(i, [])
            for part in shapes.vehicle_parts(veh, _lod(scene, veh.z, veh.size[1])):
                cast = _cast_part(rays, part, base, orient, None)
                if cast is None:
                    continue
                flats.append(cast[0].flat)
                _write_part(scene, rays, cv, cast, part, OBJECT, i, sun_dir, sunlit, sky_ref,
                            lambda pt, loc, nrm, vh=veh: materials.vehicle_albedo(vh, pt, loc, nrm, scene))

    if scene.hood is not None:
        _draw_hood(scene, rays, cv, sun_dir, sunlit, sky_ref)

    # The ground's materials where it is still seen.
    _shade_ground(scene, rays, cv, sun_dir, sky_ref)
    depth = np.where(np.isfinite(cv.z), cv.z, 0.0).astype(np.float32)

    # Light: cast and contact shadows, night lights, sky.
    _shadows(scene, rays, cv, sun_dir, sunlit)
    head, lamp = cv.head, cv.lamp
    if scene.light.headlights:
        head.fill(0.0)
        solid = np.flatnonzero((cv.mat != SKY) & (cv.mat != HOOD))
        head[solid] = effects.headlights(scene, cv.z[solid], dx[solid], dy[solid], dz[solid],
                                         _RECEIVES[cv.mat[solid]])
    if scene.light.lamps:
        lamp.fill(0.0)
        for pos in effects.lamp_positions(scene):
            _lamp_pool(scene, rays, cv, pos, lamp)
    sky = np.flatnonzero(cv.mat == SKY)
    sky_rad = effects.sky_radiance(scene, dx[sky], dy[sky], dz[sky])
    for c in range(3):
        cv.emis[c][sky] = sky_rad[c]
    planes = _compose(scene, cv, depth, head, lamp)
    bloom, gain = effects.expose(scene, planes)

    # Labels.
    ids2d = cv.ids.reshape(h_img, w_img).copy()
    nveh = len(scene.vehicles)
    visible = np.bincount(cv.ids[cv.ids >= 0].astype(np.int64), minlength=nveh)
    projected = np.zeros(nveh, np.int64)
    scratch = np.zeros(n_px, bool)
    boxes, classes, kept, sil = [], [], [], {}
    for k, veh in enumerate(scene.vehicles):
        flats = hits_of.get(k)
        if not flats:
            continue
        allf = np.concatenate(flats)
        scratch[allf] = True
        projected[k] = int(np.count_nonzero(scratch))
        scratch[allf] = False
        rows, cols = allf // w_img, allf % w_img
        box = (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
        sil[k] = box
        if visible[k] / projected[k] < MIN_VISIBLE or (box[3] - box[1]) < MIN_BOX_HEIGHT:
            continue
        boxes.append(box)
        classes.append(veh.cls)
        kept.append(k)
    mat2d = cv.mat.reshape(h_img, w_img).copy()
    lane = (mat2d == PAINT).astype(np.uint8)

    # The sensor.
    noise_rng = np.random.default_rng([scene.texture_seed, int(scene.travelled * 1000) % (2**31)])
    image = effects.sensor(scene, planes, bloom, gain, noise_rng, effects.sun_in_view(scene))
    sample = Sample(image=image, boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                    classes=np.asarray(classes, np.int64), lane=lane, depth=depth.reshape(h_img, w_img),
                    camera=cam, name=name)
    return Frame(sample, scene, ids2d, kept, mat2d, projected, sil)


def lin_sky(scene: Scene) -> np.ndarray:
    """The radiance a mirror-like surface reflects on average: the sky near the horizon."""
    lt = scene.light
    return materials.lin(lt.sky_horizon) * effects.irradiance(scene) * np.float32(lt.sky_gain)


def _compose(scene: Scene, cv: _Canvas, depth: np.ndarray, head: np.ndarray, lamp: np.ndarray
             ) -> np.ndarray:
    """Radiance = albedo x light + emission, seen through fog; planar [3, H, W] (reuses cv.alb)."""
    import cv2

    lt, wt = scene.light, scene.weather
    n = depth.size
    keep = np.where(depth > 0, depth, np.float32(effects.SKY_DISTANCE))
    keep *= np.float32(-1.0 / wt.fog_distance)
    keep = cv2.exp(keep.reshape(scene.camera.height, -1)).reshape(-1)
    fog_col = materials.lin(wt.fog_color) * effects.irradiance(scene) * np.float32(
        0.9 if lt.time == "day" else 0.7)
    ambient, sun_col = np.asarray(lt.ambient, np.float32), np.asarray(lt.sun, np.float32)
    head_col, lamp_col = np.float32([0.9, 0.97, 1.0]), materials.lin((150, 205, 255)) * np.float32(3.0)
    light = np.empty(n, np.float32)
    tmp = np.empty(n, np.float32)
    fogged = 1.0 - keep
    for c in range(3):
        np.multiply(cv.amb, ambient[c], out=light)
        if sun_col[c] > 0:
            np.multiply(cv.sun, sun_col[c], out=tmp)
            light += tmp
        if lt.headlights:
            np.multiply(head, head_col[c], out=tmp)
            light += tmp
        if lt.lamps:
            np.multiply(lamp, lamp_col[c], out=tmp)
            light += tmp
        a = cv.alb[c]
        a *= light
        a += cv.emis[c]
        a *= keep
        np.multiply(fogged, fog_col[c], out=tmp)
        a += tmp
    return cv.alb.reshape(3, scene.camera.height, scene.camera.width)


def _surface_light(scene: Scene, rays: geometry.Rays, flat: np.ndarray, normal: np.ndarray,
                   sun_dir: np.ndarray, sunlit: bool, gloss: float, refl: np.ndarray | float,
                   sky_ref: np.ndarray, frame: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(sun factor, ambient factor, added radiance planar [3, n] or None) of surface points
    facing the camera: Lambert sun, sky light by how much sky a normal sees, a Blinn sun
    highlight and a sky reflection. Normals [n, 3] are in the road frame, or in a part's own
    frame when ``frame`` (part -> road) is given: then the light turns instead of the normals."""
    to_local = (lambda v: frame.T @ v) if frame is not None else (lambda v: v)
    L = to_local(np.asarray(sun_dir, np.float64)).astype(np.float32)
    up = to_local(np.array([0.0, 1.0, 0.0])).astype(np.float32)
    nx, ny, nz = normal[:, 0], normal[:, 1], normal[:, 2]
    amb = np.float32(0.62) - np.float32(0.33) * (nx * up[0] + ny * up[1] + nz * up[2])
    sunf = np.clip(nx * L[0] + ny * L[1] + nz * L[2], 0.0, 1.0) if sunlit else np.zeros(len(flat), np.float32)
    refl = np.asarray(refl, np.float32)
    has_refl = bool(refl.ndim or refl > 0)
    gloss = gloss if gloss >= 0.15 else 0.0
    if not (has_refl or (sunlit and gloss > 0)):
        return sunf, amb, None
    extra = np.zeros((3, len(flat)), np.float32)
    if has_refl:
        for c in range(3):
            extra[c] += refl * np.float32(sky_ref[c])
    if sunlit and gloss > 0:
        dxf, dyf, dzf = rays.flat()
        view = -np.stack([dxf[flat], dyf[flat], dzf[flat]], -1)
        if frame is not None:
            view = geometry.rows_times(view, frame)
        vx, vy, vz = view[:, 0], view[:, 1], view[:, 2]
        inv = 1.0 / np.sqrt(vx * vx + vy * vy + vz * vz)
        hx, hy, hz = vx * inv + L[0], vy * inv + L[1], vz * inv + L[2]
        hn = 1.0 / (np.sqrt(hx * hx + hy * hy + hz * hz) + 1e-6)
        nh = np.clip((nx * hx + ny * hy + nz * hz) * hn, 0.0, 1.0)
        for _ in range(6):  # nh ** 64
            nh = nh * nh
        spec = nh * np.float32(0.5 * gloss) * (sunf > 0)
        for c in range(3):
            extra[c] += spec * np.float32(scene.light.sun[c])
    return sunf, amb, extra


def eye_centre(cast) -> np.ndarray:
    return cast[2]


def _leafy_edge(hits: geometry.Hits, eye: np.ndarray) -> np.ndarray:
    """Foliage is ragged: towards a crown's outline, gaps between the leaves let rays through.
    (``eye``: the camera in the crown's frame; normals and hit points are in that frame too.)"""
    loc, n = hits.local, hits.normal
    vx, vy, vz = loc[:, 0] - eye[0], loc[:, 1] - eye[1], loc[:, 2] - eye[2]
    cosv = np.abs(n[:, 0] * vx + n[:, 1] * vy + n[:, 2] * vz) / np.sqrt(vx * vx + vy * vy + vz * vz)
    noise = materials.sample(materials.texture("grain"), (loc[:, 0] + loc[:, 2]) * 7.0 + 3,
                             loc[:, 1] * 7.0 + 9)
    return noise > (0.5 - cosv) * 7.0 - 1.5


def _write_part(scene, rays, cv: _Canvas, cast, part, code: int, oid: int, sun_dir, sunlit, sky_ref,
                shade) -> None:
    hits, o = cast[0], cast[1]
    keep = hits.t < cv.z[hits.flat]
    if part.role == "crown":
        keep &= _leafy_edge(hits, -(o.T @ eye_centre(cast)))
    if not keep.any():
        return
    if keep.all():
        f, t, local, normal_local = hits.flat, hits.t, hits.local, hits.normal
    else:
        f, t, local, normal_local = hits.flat[keep], hits.t[keep], hits.local[keep], hits.normal[keep]
    alb, emis, gloss, refl = shade(part, local, normal_local)
    sunf, amb, extra = _surface_light(scene, rays, f, normal_local, sun_dir, sunlit, gloss, refl, sky_ref, o)
    if emis is not None:
        extra = emis.T if extra is None else extra + emis.T
    cv.put(f, t, code, oid, alb, sunf, amb, extra)


def _draw_wall(scene: Scene, rays: geometry.Rays, cv: _Canvas) -> None:
    """The far wall at Z = background_depth: hills, a treeline or a skyline, hazy."""
    h, bg = scene.camera.mount_height, scene.background_depth
    sur = scene.surroundings
    k = sur.skyline_height
    top_max = k * {"hills": 18.5, "treeline": 10.7, "city": 28.5, "flat": 3.6}[sur.skyline]
    # Rays reaching Z = bg between the road (dy / dz = h / bg) and the highest top. Along a row
    # dy / dz is monotonic, so its two end pixels bound the rows to look at.
    q_lo, q_hi = (h - top_max) / bg, h / bg
    q0 = rays.dy[:, 0] / rays.dz[:, 0]
    q1 = rays.dy[:, -1] / rays.dz[:, -1]
    rows = np.flatnonzero((np.maximum(q0, q1) > q_lo) & (np.minimum(q0, q1) < q_hi))
    if rows.size == 0:
        return
    w_img = rays.shape[1]
    sl = slice(rows[0] * w_img, (rows[-1] + 1) * w_img)
    dx, dy, dz = (a[sl] for a in rays.flat())
    sel = (dy * np.float32(bg) > np.float32(h - top_max) * dz) & (cv.mat[sl] != _GROUND)
    cand = np.flatnonzero(sel)
    band = cand + rows[0] * w_img
    cdy, cdz = dy[cand], dz[cand]
    dx = dx[cand]
    if band.size == 0:
        return
    t = np.float32(bg) / cdz
    x = dx * t
    y = h - cdy * t  # height above the road
    p = sur.skyline_phase
    if sur.skyline == "hills":
        top = k * (9.0 + 5.0 * np.sin(x / 31.0 + p[0]) + 3.0 * np.sin(x / 11.0 + p[1])
                   + 1.0 * np.sin(x / 3.7 + p[2]))
    elif sur.skyline == "treeline":
        top = k * (6.0 + 2.0 * np.sin(x / 17.0 + p[0]) + 1.8 * np.abs(np.sin(x / 2.3 + p[1]))
                   + 0.8 * np.sin(x / 0.9 + p[2]))
    elif sur.skyline == "city":
        cell = np.floor(x / 9.0 + p[0])
        top = k * (6.0 + 22.0 * materials.cell01(cell, 17) ** 2)
    else:
        top = k * (2.5 + 1.0 * np.sin(x / 13.0 + p[0]))
    on = y <= top
    idx = band[on]
    x, y = x[on], y[on]
    cv.z[idx] = t[on]
    cv.mat[idx] = WALL
    col = materials.lin(sur.skyline_color)
    v = 1.0 + 0.15 * materials.sample(materials.texture("grain"), x * 3.0, y * 3.0)
    if sur.skyline == "city":
        v *= np.where((np.mod(y, 3.2) > 1.4) & (np.mod(x, 2.5) > 1.2), np.float32(0.7), np.float32(1.0))
    for c in range(3):
        cv.alb[c][idx] = v * col[c]
    cv.sun[idx] = 0.5 * max(0.0, float(np.sin(scene.light.sun_elevation))) + 0.2
    cv.amb[idx] = 0.9


def _draw_roadside(scene: Scene, rays: geometry.Rays, cv: _Canvas, sun_dir, sunlit, sky_ref) -> None:
    cam, rot = rays.cam, rays.rot
    h, bg = cam.mount_height, scene.background_depth
    curve = scene.curve()
    road = scene.road
    dxf, _, dzf = rays.flat()
    curtains: list[tuple[float, float, float, str, tuple, int]] = []  # lateral, y0, y1, kind, colour, inward
    for side in (0, 1):
        sd = scene.surroundings.sides[side]
        sign = -1.0 if side == 0 else 1.0
        edge = road.paved[side]
        if sd.kerb > 0:
            # The raised ground beyond the kerb (sidewalk, then more of the same level).
            lat_far = edge + sign * 60.0
            pts = geometry.road_points(curve, edge, (sd.kerb,), h, 0.5, bg)
            pts = np.concatenate([pts, geometry.road_points(curve, lat_far, (sd.kerb,), h, 0.5, bg)])
            region = geometry.region_of_points(cam, rot, pts, margin=2)
            if region is not None:
                # Only rays that see the road plane or the far wall can reach the raised level.
                r0, r1, c0, c1 = region
                sub = cv.mat.reshape(cam.height, cam.width)[r0:r1, c0:c1]
                idx = np.flatnonzero((sub == _GROUND) | (sub == WALL))
                flat = (idx // (c1 - c0) + r0) * cam.width + (idx % (c1 - c0) + c0)
                t = rays.inv_dy.reshape(-1)[flat] * np.float32(h - sd.kerb)
                if flat.size:
                    x, z = dxf[flat] * t, dzf[flat] * t
                    lat = x - np.asarray(curve.x(z), np.float32)
                    inside = ((lat - edge) * sign >= 0) & (z < bg) & (t > geometry.NEAR) & (t < cv.z[flat])
                    f, t, lat, z = flat[inside], t[inside], lat[inside], z[inside]
                    s = z + scene.travelled
                    dist = (lat - edge) * sign
                    walk = dist < sd.sidewalk
                    grain = materials.sample(materials.texture("grain"), s * 6, lat * 6)
                    near = 1.0 / (1.0 + t / 20.0)
                    slab = (np.abs(np.mod(s, 1.5) - 0.75) > 0.73) | (np.abs(np.mod(dist, 1.5) - 0.75) > 0.73)
                    v = (1.0 + 0.15 * grain * near) * np.where(slab & walk, 0.75, 1.0)
                    if scene.weather.wet > 0:
                        v *= 1.0 - 0.3 * scene.weather.wet
                    walk_col, verge_col = materials.lin(sd.sidewalk_color), materials.lin(sd.verge_color)
                    cv.z[f] = t
                    cv.mat[f] = SIDEWALK
                    cv.ids[f] = -1
                    for c in range(3):
                        cv.alb[c][f] = np.where(walk, walk_col[c], verge_col[c]) * v
                        cv.emis[c][f] = 0.0
                    cv.sun[f] = max(0.0, -float(sun_dir[1])) if sunlit else 0.0
                    cv.amb[f] = 0.95
            curtains.append((edge, 0.0, sd.kerb, "kerb", (175, 178, 178), -sign))
        if sd.rail != "none":
            back = edge + sign * sd.sidewalk
            lateral = back + sign * sd.rail_offset
            curtains.append((lateral, 0.0, sd.rail_height, sd.rail, sd.rail_color, -sign))
    if road.median is not None and road.median_barrier != "none":
        mid = 0.5 * (road.median[0] + road.median[1])
        height = 0.9 if road.median_barrier == "concrete" else 0.8
        color = (165, 170, 172) if road.median_barrier == "concrete" else (175, 175, 170)
        curtains.append((mid, 0.0, height, road.median_barrier, color, 1 if mid < 0 else -1))
    # Curtains are cast in stretches of growing length, each over its own (thin) rectangle.
    stretches = [z for z in (1.0, 2.5, 5.0, 9.0, 15.0, 24.0, 38.0, 60.0) if z < bg] + [bg]
    for lateral, y0, y1, kind, color, inward in curtains:
        parts = []
        for za, zb in zip(stretches, stretches[1:]):
            pts = geometry.road_points(curve, lateral, (y0, y1), h, za, zb, n=6)
            region = geometry.region_of_points(cam, rot, pts, margin=3)
            if region is not None:
                got = geometry.cast_curtain(rays, region, curve, lateral, zb, za)
                if got is not None:
                    parts.append(got)
        if not parts:
            continue
        flat, t, ycoord, z = (np.concatenate(p) for p in zip_strict(*parts))
        height = h - ycoord
        s = z + scene.travelled
        if kind == "guardrail":
            spacing = 2.0
            post = np.abs(np.mod(s, spacing) - spacing / 2) > spacing / 2 - 0.08
            keep = ((height >= y1 - 0.34) & (height <= y1)) | (post & (height >= 0) & (height <= y1 - 0.05))
        else:
            keep = (height >= y0) & (height <= y1)
        keep &= t < cv.z[flat]
        if not keep.any():
            continue
        f, t, height, s, z = flat[keep], t[keep], height[keep], s[keep], z[keep]
        base = materials.lin(color)
        grain = materials.sample(materials.texture("grain"), s * 5, height * 5)
        v = 1.0 + 0.1 * grain
        gloss = 0.0
        if kind == "guardrail":
            band = (height - (y1 - 0.34)) / 0.34
            v = np.where(height >= y1 - 0.34, 0.8 + 0.35 * np.abs(np.sin(band * 3 * np.pi)), 0.55)
            gloss = 0.4
        elif kind == "concrete":
            v = v * np.where(np.abs(np.mod(s, 6.0) - 3.0) > 2.97, 0.7, 1.0) * (0.85 + 0.2 * height / y1)
        elif kind == "wall":
            v = v * np.where(np.abs(np.mod(s, 4.0) - 2.0) > 1.95, 0.6, 1.0)
            v = v * np.where(height > y1 - 0.15, 0.6, 1.0)
        slope = curve.a1 + 2 * curve.a2 * z
        nrm = np.stack([np.full_like(z, inward), np.zeros_like(z), -inward * slope], -1).astype(np.float32)
        nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
        sunf, amb, extra = _surface_light(scene, rays, f, nrm, sun_dir, sunlit, gloss, 0.0, sky_ref)
        cv.put(f, t, STRUCTURE, -1, base[None, :] * v[:, None], sunf, amb, extra)


def hood_depth(scene: Scene, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, hit) of rays against the ego hood surface (road-frame directions)."""
    hd = scene.hood
    y0 = hd.y_edge - hd.slope * hd.edge  # the surface: Y = y0 + slope * Z (relative to the camera)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.float32(y0) / (dy - np.float32(hd.slope) * dz)
    x, z = dx * t, dz * t
    rel = x - np.float32(hd.x)
    hit = (t > geometry.NEAR) & (z > 0.05) & (z <= hd.edge - hd.bulge * rel * rel)
    hit &= np.abs(rel) <= hd.half_width
    return t, hit


def _draw_hood(scene: Scene, rays: geometry.Rays, cv: _Canvas, sun_dir, sunlit, sky_ref) -> None:
    hd, cam = scene.hood, scene.camera
    xs = np.linspace(hd.x - hd.half_width, hd.x + hd.half_width, 41)
    z = np.maximum(hd.edge - hd.bulge * (xs - hd.x) ** 2, 0.06)
    pts = np.stack([xs, hd.y_edge - hd.slope * (hd.edge - z), z], -1)
    _, v, zc = geometry.project(cam, rays.rot, pts)
    r0 = int(np.floor(np.nanmin(np.where(zc > 0, v, np.inf)))) - 2 if (zc > 0).any() else 0
    r0 = int(np.clip(r0, 0, cam.height))
    if r0 >= cam.height:
        return
    dxf, dyf, dzf = rays.flat()
    sl = slice(r0 * cam.width, cam.height * cam.width)
    t, hit = hood_depth(scene, dxf[sl], dyf[sl], dzf[sl])
    f = np.flatnonzero(hit) + r0 * cam.width
    if f.size == 0:
        return
    t = t[hit]
    nrm = np.array([0.0, -1.0, -hd.slope], np.float32)
    nrm /= np.linalg.norm(nrm)
    normal = np.broadcast_to(nrm, (f.size, 3))
    dash = hd.kind == "dashboard"
    refl = 0.03 if dash else 0.22
    sunf, amb, extra = _surface_light(scene, rays, f, normal, sun_dir, sunlit, 0.0 if dash else 0.8,
                                      refl, sky_ref)
    z = dzf[f] * t
    tex = materials.sample(materials.texture("grain"), dxf[f] * t * 40, z * 40)
    alb = materials.lin(hd.color)[None, :] * (1.0 + (0.12 if dash else 0.02) * tex)[:, None]
    # The reflection grows towards the windscreen, darker at the hood's edge.
    grad = np.clip((hd.edge - z) / max(hd.edge, 0.1), 0.0, 1.0)
    cv.put(f, t, HOOD, -1, alb, sunf, amb * 0.8, extra * (0.4 + 0.8 * grad)[None, :])


def _shade_ground(scene: Scene, rays: geometry.Rays, cv: _Canvas, sun_dir, sky_ref) -> None:
    g = np.flatnonzero(cv.mat == _GROUND)
    if g.size == 0:
        return
    dxf, dyf, dzf = rays.flat()
    road = scene.road
    t = cv.z[g]
    z = dzf[g] * t
    lat = dxf[g] * t
    lat -= np.asarray(scene.curve().x(z), np.float32)
    s = z + np.float32(scene.travelled % 10000.0)
    paved = (lat >= road.paved[0]) & (lat <= road.paved[1])
    if road.median is not None:
        paved &= ~((lat > road.median[0]) & (lat < road.median[1]))
    pv = np.flatnonzero(paved)
    lat_p, s_p, t_p = lat[pv], s[pv], t[pv]
    j, dist = materials.nearest_boundary(scene, lat_p)
    paint, yellow = materials.paint_mask(scene, j, dist, s_p)
    road_v = materials.road_shade(scene, lat_p, s_p, t_p, dist)
    asphalt = materials.lin(road.asphalt)
    mat = np.full(g.size, VERGE, np.uint8)
    mat[pv] = np.where(paint, PAINT, ROAD)
    cv.mat[g] = mat
    gp = g[pv]
    for c in range(3):
        cv.alb[c][gp] = road_v * asphalt[c]
    pnt = np.flatnonzero(paint)
    if pnt.size:
        col = materials.paint_albedo(scene, yellow[pnt], s_p[pnt], lat_p[pnt], t_p[pnt], road_v[pnt])
        for c in range(3):
            cv.alb[c][gp[pnt]] = col[c]
    vg = np.flatnonzero(~paved)
    if vg.size:
        col = materials.verge_albedo(scene, lat[vg], s[vg], t[vg])
        for c in range(3):
            cv.alb[c][g[vg]] = col[c]
    wet = scene.weather.wet
    if wet > 0 and pv.size:
        # Wet asphalt mirrors the sky more and more towards grazing angles (Fresnel).
        ddx, ddy, ddz = dxf[gp], dyf[gp], dzf[gp]
        cos = ddy / np.sqrt(ddx * ddx + ddy * ddy + ddz * ddz)
        fres = 1.0 - cos
        fres = fres * fres
        fres = np.float32(0.03) + np.float32(0.97) * fres * fres * (1.0 - cos)
        mirror = np.float32(0.35 * wet) + materials.puddles(scene, lat_p, s_p) * np.float32(0.6)
        refl = fres * mirror
        dim = 1.0 - 0.6 * np.minimum(mirror, 1.0)
        for c in range(3):
            cv.emis[c][gp] = refl * sky_ref[c]
            cv.alb[c][gp] *= dim


def _shadows(scene: Scene, rays: geometry.Rays, cv: _Canvas, sun_dir, sunlit: bool) -> None:
    cam, rot = rays.cam, rays.rot
    h = cam.mount_height
    ground = _RECEIVES[cv.mat]
    contact: list[np.ndarray] = []
    cast_obj: list[np.ndarray] = []
    cast_env: list[np.ndarray] = []
    cast_crown: list[np.ndarray] = []  # tree crowns and bushes: their shadows hold sun flecks
    for veh in scene.vehicles:
        if veh.z > scene.background_depth or veh.z + veh.size[2] < -30:
            continue
        far = veh.z > 70.0  # far shadows are a few pixels: only the contact shadow
        base, orient = object_pose(scene, veh)
        w, _, ln = veh.size
        pad = 0.15 if veh.cls != PEDESTRIAN else 0.12
        foot = np.array([[-w / 2 - pad, -ln / 2 - pad], [w / 2 + pad, -ln / 2 - pad],
                         [w / 2 + pad, ln / 2 + pad], [-w / 2 - pad, ln / 2 + pad]])
        fw = base[[0, 2]] + foot @ orient[np.ix_([0, 2], [0, 2])].T
        contact.append(fw)
        if sunlit and not far:
            for part in shapes.vehicle_parts(veh, 1):
                if part.role in ("wheel", "head"):
                    continue
                poly = effects.shadow_polygon(part_corners(part, base, orient), sun_dir, h)
                if poly is not None:
                    cast_obj.append(poly)
    if sunlit:
        for prop in scene.props:
            z = scene.prop_z(prop)
            if z > min(scene.background_depth, 80.0) or z < -40:
                continue
            base, orient = prop_pose(scene, prop, z)
            for part in shapes.prop_parts(prop, 1):
                if part.prim == "ellipsoid":
                    centre, o = part_frame(part, base, orient)
                    dirs = _SPHERE * np.asarray(part.half)
                    pts = centre + dirs @ o.T
                else:
                    pts = part_corners(part, base, orient)
                poly = effects.shadow_polygon(pts, sun_dir, h)
                if poly is not None:
                    (cast_crown if part.role == "crown" else cast_env).append(poly)
        # The ego car, and walls along the road, in segments.
        ego = np.array([[x, h - y, z] for x in (-0.95, 0.95) for y in (0.0, 1.45 if h < 2 else 2.9)
                        for z in (-3.8, 0.9)])
        poly = effects.shadow_polygon(ego, sun_dir, h)
        if poly is not None:
            cast_env.append(poly)
        curve = scene.curve()
        for side in (0, 1):
            sd = scene.surroundings.sides[side]
            if sd.rail != "wall":
                continue
            sign = -1.0 if side == 0 else 1.0
            lateral = scene.road.paved[side] + sign * (sd.sidewalk + sd.rail_offset)
            for z0 in np.arange(-30.0, scene.background_depth, 10.0):
                zz = np.array([z0, z0 + 10.0])
                xs = np.asarray(curve.x(zz)) + lateral
                pts = np.array([[xs[i], h - y, zz[i]] for i in (0, 1) for y in (0.0, sd.rail_height)])
                poly = effects.shadow_polygon(pts, sun_dir, h)
                if poly is not None:
                    cast_env.append(poly)
    strength = np.float32(0.85 / 255.0)
    if cast_obj or cast_env or cast_crown:
        crown = None
        if cast_crown:
            flecked = effects.dapple(scene, rays, effects.fill_polygons(cam, rot, cast_crown, h))
            crown = effects.soften(flecked, 3)
        env = None
        if cast_env:
            env = effects.soften(effects.fill_polygons(cam, rot, cast_env, h), 3)
            if crown is not None:
                np.maximum(env, crown, out=env)
        elif crown is not None:
            env = crown
        both = effects.fill_polygons(cam, rot, cast_obj, h, base=env)
        gi = np.flatnonzero(ground)
        both = effects.soften(both, 3).reshape(-1) if cast_obj else both.reshape(-1)
        cv.sun[gi] *= 1.0 - strength * both[gi]
        # What stands in the shadows of the environment looks up the ground point that each
        # of its pixels' sun ray reaches: objects and roadside structures all of them, the
        # solid props (facades, trunks) only the crowns' (a wall's own shadow polygon would
        # darken its sunlit face).
        for receivers, shade in (((OBJECT, STRUCTURE), env), ((FIXTURE,), crown)):
            if shade is not None:
                idx = np.flatnonzero(np.isin(cv.mat, receivers))
                _receive_shadow(idx, shade, rays, cv, sun_dir, strength)
    if contact:
        ao = effects.soften(effects.fill_polygons(cam, rot, contact, h), 9).reshape(-1)
        gi = np.flatnonzero(ground & (ao > 0))
        a = ao[gi].astype(np.float32) * np.float32(1 / 255.0)
        cv.amb[gi] *= 1.0 - 0.75 * a
        cv.sun[gi] *= 1.0 - 0.5 * a


def _receive_shadow(idx: np.ndarray, shade: np.ndarray, rays: geometry.Rays, cv: _Canvas,
                    sun_dir: np.ndarray, strength: np.float32) -> None:
    """Darken the sunlight of pixels ``idx`` by the ground shadow map ``shade`` (uint8, image
    space) where their sun ray, followed away from the sun, meets the road plane."""
    if idx.size == 0:
        return
    cam, rot = rays.cam, rays.rot
    h = cam.mount_height
    dxf, dyf, dzf = rays.flat()
    t = cv.z[idx]
    p = np.stack([dxf[idx] * t, dyf[idx] * t, dzf[idx] * t], -1)
    s = -sun_dir
    k = (h - p[:, 1]) / s[1]
    gp = p + k[:, None] * s[None, :]
    u, v, zc = geometry.project(cam, rot, gp)
    ok = (zc > 0.1) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    sel = idx[ok]
    cv.sun[sel] *= 1.0 - strength * shade[v[ok].astype(np.int64), u[ok].astype(np.int64)]


_RECEIVES = np.zeros(256, bool)
_RECEIVES[[ROAD, PAINT, VERGE, SIDEWALK]] = True

_SPHERE = np.array([[np.cos(a) * np.cos(b), np.sin(b), np.sin(a) * np.cos(b)]
                    for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)
                    for b in np.linspace(-np.pi / 2, np.pi / 2, 7)])


def _lamp_pool(scene: Scene, rays: geometry.Rays, cv: _Canvas, pos: np.ndarray, out: np.ndarray) -> None:
    """Add a street lamp's light (inverse square, cosine towards the lamp's downward axis)."""
    cam, rot = rays.cam, rays.rot
    h = cam.mount_height
    reach = 14.0
    pts = np.array([[pos[0] + a, y, pos[2] + b] for a in (-reach, reach) for b in (-reach, reach)
                    for y in (h, pos[1])])
    region = geometry.region_of_points(cam, rot, pts)
    if region is None:
        return
    r0, r1, c0, c1 = region
    shape = (cam.height, cam.width)
    t = cv.z.reshape(shape)[r0:r1, c0:c1]
    px = rays.dx[r0:r1, c0:c1] * t - np.float32(pos[0])
    py = rays.dy[r0:r1, c0:c1] * t - np.float32(pos[1])
    pz = rays.dz[r0:r1, c0:c1] * t - np.float32(pos[2])
    with np.errstate(invalid="ignore"):
        d2 = px * px + py * py + pz * pz + np.float32(0.5)
        light = np.maximum(py, 0.0) / (d2 * np.sqrt(d2)) * np.float32(10.0)
    light[~np.isfinite(t)] = 0.0
    mat = cv.mat.reshape(shape)[r0:r1, c0:c1]
    light[mat == HOOD] = 0.0
    out.reshape(shape)[r0:r1, c0:c1] += light


def render_random(seed: int, camera: Camera | None = None, name: str = "") -> Frame:
    """Render the scene that ``seed`` draws (deterministic)."""
    return render(sample_scene(np.random.default_rng(seed), camera), name=name)
