"""Synthetic driving world: a pinhole camera over a ground plane, ray-cast exactly.

Camera frame: X right, Y down, Z forward (metres). The ground is the plane
``Y = h - g * Z`` (h = mount height, g = pitch + road grade). Every pixel's ray is
``(x_n, y_n, 1) * Z``, so a ray's parameter *is* its z-depth, which is what the depth
map stores (the KITTI convention). Vehicles are oriented boxes resting on the ground,
intersected per pixel and composited by depth, so boxes, lane masks and depth agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from edge_mtl.types import CLASSES, Camera, Sample

CAR, TRUCK, PEDESTRIAN = range(3)
# (width, height, length) ranges in metres per class.
_SIZES = {
    CAR: ((1.65, 1.95), (1.35, 1.65), (3.9, 4.9)),
    TRUCK: ((2.3, 2.6), (2.8, 3.8), (6.5, 11.0)),
    PEDESTRIAN: ((0.45, 0.65), (1.55, 1.9), (0.3, 0.5)),
}
MIN_BOX_HEIGHT = 16.0  # pixels at 1280x720; smaller objects are not labelled
MIN_VISIBLE = 0.3  # fraction of an object's projected pixels that must be unoccluded
MAX_DEPTH = 120.0  # metres; the background wall stands no farther than this


@dataclass(frozen=True)
class Vehicle:
    cls: int
    x: float  # lateral offset of the box centre from the road's centre curve (metres)
    z: float  # z of the rear (or, oncoming, front) face nearest the camera
    size: tuple[float, float, float]  # width, height, length
    color: tuple[float, float, float]  # BGR 0..255
    oncoming: bool = False
    speed: float = 0.0  # m/s along the road, for sequences


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one frame; ``sample_scene`` draws one at random."""

    camera: Camera
    grade: float  # pitch + road grade, radians (small)
    curvature: float  # 1/metres
    heading: float  # road heading relative to the camera, radians
    lane_width: float
    num_lanes: int
    ego_lane: int
    ego_offset: float  # camera's lateral offset inside its lane
    marking_width: float
    dashed: tuple[bool, ...]  # per lane boundary, num_lanes + 1
    yellow: tuple[bool, ...]
    dash_length: float
    dash_period: float
    travelled: float  # ego distance along the road; shifts dashes and textures
    background_depth: float
    hill_phase: tuple[float, float, float]
    vehicles: tuple[Vehicle, ...]
    sky_top: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    asphalt: float
    verge: tuple[float, float, float]
    gain: float
    tint: tuple[float, float, float]
    fog_distance: float
    noise_sigma: float
    blur: bool
    texture_seed: int = 0

    def road_centre(self, z: np.ndarray) -> np.ndarray:
        """Lateral position (camera X) of the road's centre curve at depth z."""
        left = -(self.ego_lane + 0.5) * self.lane_width - self.ego_offset
        centre = left + 0.5 * self.num_lanes * self.lane_width
        return centre + np.tan(self.heading) * z + 0.5 * self.curvature * z * z

    def ground_y(self, z: np.ndarray | float) -> np.ndarray | float:
        return self.camera.mount_height - self.grade * z

    def boundaries(self) -> np.ndarray:
        """Lane-boundary offsets from the road centre, left to right."""
        half = 0.5 * self.num_lanes * self.lane_width
        return -half + self.lane_width * np.arange(self.num_lanes + 1)


def _rng_color(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(lo, hi, 3))


_PALETTE = np.array([
    [40, 40, 180], [180, 60, 40], [230, 230, 230], [30, 30, 30], [140, 140, 140],
    [40, 140, 40], [20, 170, 230], [120, 60, 120], [200, 180, 150], [60, 90, 130],
], dtype=np.float64)


def sample_scene(rng: np.random.Generator, camera: Camera | None = None) -> Scene:
    """Draw a random scene: road layout, traffic, lighting, weather and sensor noise."""
    cam = camera or Camera()
    cam = replace(cam, mount_height=float(rng.uniform(1.4, 1.6)))
    num_lanes = int(rng.integers(2, 5))
    ego_lane = int(rng.integers(0, num_lanes))
    two_way = num_lanes >= 2 and rng.random() < 0.4
    centre_boundary = num_lanes // 2 if two_way else -1
    dashed = tuple(0 < i < num_lanes and i != centre_boundary and rng.random() < 0.85
                   for i in range(num_lanes + 1))
    yellow = tuple((i == 0 and rng.random() < 0.3) or i == centre_boundary
                   for i in range(num_lanes + 1))
    lane_width = float(rng.uniform(3.2, 3.8))
    scene = Scene(
        camera=cam,
        grade=float(rng.normal(0.0, 0.012)),
        curvature=float(rng.normal(0.0, 0.0012)),
        heading=float(rng.normal(0.0, 0.015)),
        lane_width=lane_width,
        num_lanes=num_lanes,
        ego_lane=ego_lane,
        ego_offset=float(rng.uniform(-0.4, 0.4)),
        marking_width=float(rng.uniform(0.12, 0.22)),
        dashed=dashed,
        yellow=yellow,
        dash_length=float(rng.uniform(3.0, 4.5)),
        dash_period=float(rng.uniform(9.0, 13.0)),
        travelled=float(rng.uniform(0, 1000)),
        background_depth=float(rng.uniform(70, MAX_DEPTH)),
        hill_phase=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 3)),
        vehicles=(),
        sky_top=_rng_color(rng, 150, 235) if rng.random() < 0.3 else
        (float(rng.uniform(170, 230)), float(rng.uniform(110, 160)), float(rng.uniform(60, 100))),
        sky_horizon=_rng_color(rng, 190, 245),
        asphalt=float(rng.uniform(60, 120)),
        verge=(float(rng.uniform(30, 80)), float(rng.uniform(80, 140)), float(rng.uniform(60, 120))),
        gain=float(rng.uniform(0.6, 1.25)),
        tint=tuple(float(v) for v in rng.uniform(0.9, 1.1, 3)),
        fog_distance=float(rng.uniform(80, 300)) if rng.random() < 0.25 else 5000.0,
        noise_sigma=float(rng.uniform(1.0, 6.0)),
        blur=bool(rng.random() < 0.3),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )
    return replace(scene, vehicles=tuple(_sample_traffic(rng, scene, two_way, centre_boundary)))


def _sample_traffic(rng: np.random.Generator, scene: Scene, two_way: bool,
                    centre_boundary: int) -> list[Vehicle]:
    vehicles: list[Vehicle] = []
    bounds = scene.boundaries()
    far = scene.background_depth - 12.0
    for lane in range(scene.num_lanes):
        lane_x = 0.5 * (bounds[lane] + bounds[lane + 1])
        oncoming = two_way and lane < centre_boundary
        z = float(rng.uniform(4.0, 12.0))
        while True:
            z += float(rng.exponential(22.0))
            cls = TRUCK if rng.random() < 0.18 else CAR
            size = tuple(float(rng.uniform(*r)) for r in _SIZES[cls])
            if z + size[2] > far or len(vehicles) >= 12:
                break
            if lane == scene.ego_lane and z < 7.0:
                z += 7.0
            color = tuple(float(v) for v in _PALETTE[rng.integers(len(_PALETTE))]
                          * rng.uniform(0.8, 1.15))
            vehicles.append(Vehicle(cls, lane_x + float(rng.normal(0, 0.25)), z, size, color,
                                    oncoming, float(rng.uniform(15, 30))))
            z += size[2] + 3.0
    for _ in range(int(rng.integers(0, 5))):
        side = -1.0 if rng.random() < 0.5 else 1.0
        x = side * (0.5 * scene.num_lanes * scene.lane_width + rng.uniform(1.0, 5.0))
        size = tuple(float(rng.uniform(*r)) for r in _SIZES[PEDESTRIAN])
        color = _rng_color(rng, 20, 230)
        vehicles.append(Vehicle(PEDESTRIAN, float(x), float(rng.uniform(5.0, 50.0)), size, color,
                                bool(rng.random() < 0.5), float(rng.uniform(-1.5, 1.5))))
    return vehicles


# ---------------------------------------------------------------------------- rendering

@dataclass
class _Rays:
    xn: np.ndarray  # [H, W] normalised x of each pixel's ray
    yn: np.ndarray  # [H, 1]


_RAY_CACHE: dict[Camera, _Rays] = {}


def _rays(cam: Camera) -> _Rays:
    key = replace(cam, mount_height=0.0)
    if key not in _RAY_CACHE:
        u = (np.arange(cam.width, dtype=np.float32) + 0.5 - cam.cx) / cam.fx
        v = (np.arange(cam.height, dtype=np.float32) + 0.5 - cam.cy) / cam.fy
        _RAY_CACHE[key] = _Rays(np.broadcast_to(u[None, :], (cam.height, cam.width)), v[:, None])
    return _RAY_CACHE[key]


def _texture(seed: int, size: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = rng.normal(0, 1, (size, size)).astype(np.float32)
    k = np.array([1, 4, 6, 4, 1], np.float32) / 16
    for axis in (0, 1):  # light smoothing so the texture reads as grain, not salt
        t = sum(w * np.roll(t, s, axis) for w, s in zip(k, range(-2, 3), strict=True))
    return t / t.std()


@dataclass
class Frame:
    """A rendered frame plus per-pixel bookkeeping used by labels and tests."""

    sample: Sample
    scene: Scene
    object_ids: np.ndarray  # int16 [H, W], -1 = no vehicle, else index into scene.vehicles
    kept: list[int] = field(default_factory=list)  # vehicles that got a box, in box order


def render(scene: Scene, name: str = "") -> Frame:
    """Ray-cast ``scene`` into an image, boxes, lane mask and metric depth."""
    cam = scene.camera
    rays = _rays(cam)
    h, w = cam.height, cam.width
    xn, yn = rays.xn, rays.yn
    tex = _texture(scene.texture_seed)

    # Ground plane and the background wall.
    denom = yn + scene.grade
    with np.errstate(divide="ignore"):
        z_ground = np.where(denom > 1e-6, cam.mount_height / np.maximum(denom, 1e-6), np.inf)
    z_ground = np.broadcast_to(z_ground, (h, w))
    x_ground = xn * z_ground
    bg = scene.background_depth
    hill = _hill_height(scene, xn * bg)
    wall_top_y = scene.ground_y(bg) - hill  # camera Y of the wall top per column
    wall = (z_ground > bg) & (yn * bg >= wall_top_y)
    ground = z_ground <= bg
    depth = np.where(ground, z_ground, np.where(wall, bg, 0.0)).astype(np.float32)

    # Ground shading: asphalt, verge, markings (world-anchored texture).
    zg = np.where(ground, z_ground, 0.0)
    lateral = np.where(ground, x_ground - scene.road_centre(zg), 1e3)
    along = zg + scene.travelled
    grain = tex[(along * 6).astype(np.int64) % 256, (lateral * 6).astype(np.int64) % 256]
    half_road = 0.5 * scene.num_lanes * scene.lane_width
    on_road = ground & (np.abs(lateral) < half_road + 0.6)
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        img[..., c] = np.where(on_road, scene.asphalt + 6.0 * grain,
                               scene.verge[c] + 12.0 * grain)
    marking = np.zeros((h, w), bool)
    yellow_mark = np.zeros((h, w), bool)
    dash_on = np.mod(along, scene.dash_period) < scene.dash_length
    for i, b in enumerate(scene.boundaries()):
        m = ground & (np.abs(lateral - b) < 0.5 * scene.marking_width)
        if scene.dashed[i]:
            m &= dash_on
        marking |= m
        if scene.yellow[i]:
            yellow_mark |= m
    paint = np.where(yellow_mark[..., None], np.float32([40, 200, 230]),
                     np.float32([225, 225, 225]))
    img = np.where(marking[..., None], paint + 4.0 * grain[..., None], img)

    # Wall (distant hills/treeline) and sky.
    hill_col = np.float32([70, 95, 75]) + 10 * grain[..., None]
    img = np.where(wall[..., None], hill_col, img)
    sky = depth == 0
    t = np.clip((yn + scene.grade + 0.5) / 0.5, 0, 1)[..., None]  # 1 at horizon, 0 high up
    sky_col = (1 - t) * np.float32(scene.sky_top) + t * np.float32(scene.sky_horizon)
    img = np.where(sky[..., None], np.broadcast_to(sky_col, (h, 1, 3)), img)

    # Vehicles and pedestrians, composited by depth.
    zbuf = np.where(depth > 0, depth, np.inf).astype(np.float32)
    ids = np.full((h, w), -1, np.int16)
    projected = np.zeros(len(scene.vehicles), np.int64)
    regions: list[tuple[int, int, int, int] | None] = []
    for k, veh in enumerate(scene.vehicles):
        regions.append(None)
        hit = _draw_vehicle(scene, veh, xn, yn, img, zbuf, ids, k, x_ground, zg, ground)
        if hit is not None:
            regions[k], projected[k] = hit
    depth = np.where(np.isfinite(zbuf), zbuf, 0.0).astype(np.float32)
    lane = (marking & (ids < 0)).astype(np.uint8)

    # Labels: amodal boxes of sufficiently visible, sufficiently large objects.
    visible = np.bincount(ids[ids >= 0].ravel(), minlength=len(scene.vehicles))
    boxes, classes, kept = [], [], []
    for k, veh in enumerate(scene.vehicles):
        if regions[k] is None or projected[k] == 0:
            continue
        x1, y1, x2, y2 = regions[k]
        if visible[k] / projected[k] < MIN_VISIBLE or (y2 - y1) < MIN_BOX_HEIGHT:
            continue
        boxes.append((x1, y1, x2, y2))
        classes.append(veh.cls)
        kept.append(k)

    img = _camera_effects(scene, img, depth)
    sample = Sample(
        image=img,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        classes=np.asarray(classes, np.int64),
        lane=lane,
        depth=depth,
        camera=cam,
        name=name,
    )
    return Frame(sample, scene, ids, kept)


def _hill_height(scene: Scene, x: np.ndarray) -> np.ndarray:
    p = scene.hill_phase
    return (8.0 + 4.0 * np.sin(x / 23.0 + p[0]) + 2.5 * np.sin(x / 9.0 + p[1])
            + 1.2 * np.sin(x / 3.1 + p[2]))


def _draw_vehicle(scene: Scene, veh: Vehicle, xn: np.ndarray, yn: np.ndarray, img: np.ndarray,
                  zbuf: np.ndarray, ids: np.ndarray, k: int, x_ground: np.ndarray,
                  z_ground: np.ndarray, ground: np.ndarray,
                  ) -> tuple[tuple[float, float, float, float], int] | None:
    """Ray-cast one oriented box; returns its amodal box (clipped) and projected pixel count."""
    cam = scene.camera
    wdt, hgt, lng = veh.size
    zc = veh.z + 0.5 * lng
    yaw = float(np.arctan(np.tan(scene.heading) + scene.curvature * zc))
    xc = float(scene.road_centre(np.float64(zc)) + veh.x)
    y_bottom = float(scene.ground_y(veh.z))
    centre = np.array([xc, y_bottom - 0.5 * hgt, zc])
    half = np.array([0.5 * wdt, 0.5 * hgt, 0.5 * lng])
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # box frame -> camera frame

    corners = centre + (np.array([[i, j, m] for i in (-1, 1) for j in (-1, 1) for m in (-1, 1)])
                        * half) @ rot.T
    if corners[:, 2].min() < 1.0:
        return None
    u = cam.fx * corners[:, 0] / corners[:, 2] + cam.cx
    v = cam.fy * corners[:, 1] / corners[:, 2] + cam.cy
    x1, x2 = max(u.min(), 0.0), min(u.max(), cam.width)
    y1, y2 = max(v.min(), 0.0), min(v.max(), cam.height)
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    c0, c1 = int(np.floor(x1)), int(np.ceil(x2))
    r0, r1 = int(np.floor(y1)), int(np.ceil(y2))

    # Shadow: darken ground under the footprint (slightly enlarged).
    _shade_footprint(scene, xc, zc, yaw, wdt + 0.4, lng + 0.4, img, x_ground, z_ground, ground,
                     r0, min(cam.height, r1 + int(0.3 * (r1 - r0)) + 2), c0, c1)

    # Slab test in the box frame; the ray parameter equals camera z-depth.
    dx = xn[r0:r1, c0:c1]
    dy = np.broadcast_to(yn[r0:r1], dx.shape)
    dirs = np.stack([dx, dy, np.ones_like(dx)], -1) @ rot  # camera -> box frame
    origin = -centre @ rot
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(dirs) < 1e-9, 1e-9, dirs)
        t1 = (-half - origin) * inv
        t2 = (half - origin) * inv
    tmin = np.minimum(t1, t2)
    tnear = tmin.max(-1)
    tfar = np.maximum(t1, t2).min(-1)
    hit = (tnear <= tfar) & (tnear > 0)
    count = int(hit.sum())
    if count == 0:
        return None
    face = tmin.argmax(-1)  # 0: side (x), 1: top/bottom (y), 2: front/rear (z)
    local = origin + dirs * tnear[..., None]  # hit point in box frame
    color = _vehicle_color(veh, face, local, half)
    nearer = hit & (tnear < zbuf[r0:r1, c0:c1])
    img[r0:r1, c0:c1] = np.where(nearer[..., None], color, img[r0:r1, c0:c1])
    zbuf[r0:r1, c0:c1] = np.where(nearer, tnear, zbuf[r0:r1, c0:c1])
    ids[r0:r1, c0:c1] = np.where(nearer, k, ids[r0:r1, c0:c1])
    return (float(x1), float(y1), float(x2), float(y2)), count


def _shade_footprint(scene: Scene, xc: float, zc: float, yaw: float, wdt: float, lng: float,
                     img: np.ndarray, x_ground: np.ndarray, z_ground: np.ndarray,
                     ground: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> None:
    dx = x_ground[r0:r1, c0:c1] - xc
    dz = z_ground[r0:r1, c0:c1] - zc
    c, s = np.cos(yaw), np.sin(yaw)
    along, across = s * dx + c * dz, c * dx - s * dz
    inside = ground[r0:r1, c0:c1] & (np.abs(across) < 0.5 * wdt) & (np.abs(along) < 0.5 * lng)
    img[r0:r1, c0:c1] *= np.where(inside, 0.45, 1.0)[..., None].astype(np.float32)


def _vehicle_color(veh: Vehicle, face: np.ndarray, local: np.ndarray,
                   half: np.ndarray) -> np.ndarray:
    """Per-pixel colour of a hit box: shaded body, glass, lights, tyres, clothing."""
    body = np.float32(veh.color)
    shade = np.choose(face, [0.72, 1.1, 0.92]).astype(np.float32)[..., None]
    col = body * shade
    fy = (local[..., 1] + half[1]) / (2 * half[1])  # 0 at top, 1 at bottom
    fx = local[..., 0] / half[0]  # -1..1 across
    end = face == 2
    front = local[..., 2] > 0
    if veh.cls == PEDESTRIAN:
        skin = np.float32([120, 160, 210])
        legs = np.float32(veh.color[::-1]) * 0.5
        col = np.where((fy < 0.13)[..., None], skin, np.where((fy > 0.55)[..., None], legs, col))
        return col
    dark = np.float32([25, 25, 28])
    if veh.cls == CAR:
        glass = end & (fy > 0.12) & (fy < 0.45) & (np.abs(fx) < 0.8)
        side_glass = (face == 0) & (fy > 0.12) & (fy < 0.42) & (np.abs(local[..., 2]) < 0.35 * half[2] * 2)
        col = np.where((glass | side_glass)[..., None], np.float32([60, 50, 45]), col)
    lights = end & (fy > 0.55) & (fy < 0.7) & (np.abs(fx) > 0.65)
    light_col = np.where(front[..., None] == veh.oncoming, np.float32([40, 40, 220]),
                         np.float32([235, 245, 250]))
    col = np.where(lights[..., None], light_col, col)
    col = np.where((fy > 0.85)[..., None], dark, col)  # bumper / tyres
    return col


def _camera_effects(scene: Scene, img: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Fog by depth, lighting gain and tint, blur and sensor noise; returns uint8 BGR."""
    import cv2

    if scene.fog_distance < 1000:
        dist = np.where(depth > 0, depth, 1e4)
        keep = np.exp(-dist / scene.fog_distance)[..., None]
        img = img * keep + np.float32([200, 200, 200]) * (1 - keep)
    img = img * (scene.gain * np.float32(scene.tint))
    if scene.blur:
        img = cv2.GaussianBlur(img, (3, 3), 0.8)
    rng = np.random.default_rng(scene.texture_seed + 1)
    img = img + rng.normal(0.0, scene.noise_sigma, img.shape[:2])[..., None].astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_random(seed: int, camera: Camera | None = None, name: str = "") -> Frame:
    """Render the scene that ``seed`` draws (deterministic)."""
    return render(sample_scene(np.random.default_rng(seed), camera), name=name)


CLASS_NAMES = CLASSES
