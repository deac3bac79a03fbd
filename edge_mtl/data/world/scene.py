"""Scene sampling: camera, road, surroundings, traffic, light, weather and sensor.

``sample_scene`` is structured domain randomization (Prakash et al. 2019): a setting (urban,
suburban, rural, highway) is drawn first and shapes what follows (lanes, kerbs, buildings,
parked cars, pedestrians); each concern then draws from its own RNG, spawned from the scene
seed, with its own parameters (`params.py`). Colours are display BGR 0..255; lengths metres.

Positions: ``x`` is a lateral offset from the road's centre curve, ``z`` a distance ahead of
the camera along the road frame's Z (see `geometry`). Props (trees, buildings, poles, signs)
are anchored to the road (``s``, metres along it) so that a drive scrolls past them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edge_mtl.compat import zip_strict
from edge_mtl.data.world.geometry import RoadCurve, rotation
from edge_mtl.data.world.params import DEFAULT, Randomization, SurroundParams
from edge_mtl.types import Camera

CAR, TRUCK, PEDESTRIAN = range(3)
MAX_DEPTH = 120.0  # metres; nothing stands farther than the background wall, which stays below this
SETTINGS = ("urban", "suburban", "rural", "highway")
TIMES = ("day", "dusk", "night")
SHAPES = ("sedan", "hatchback", "suv", "van", "pickup", "bus", "truck")
SHAPE_CLASS = {"sedan": CAR, "hatchback": CAR, "suv": CAR, "van": CAR, "pickup": CAR,
               "bus": TRUCK, "truck": TRUCK, "person": PEDESTRIAN}
# (width, height, length) ranges per silhouette.
SHAPE_SIZES = {
    "sedan": ((1.7, 1.9), (1.38, 1.52), (4.3, 4.95)),
    "hatchback": ((1.62, 1.82), (1.42, 1.58), (3.6, 4.25)),
    "suv": ((1.8, 2.0), (1.62, 1.9), (4.35, 4.95)),
    "van": ((1.9, 2.1), (1.9, 2.6), (4.8, 6.2)),
    "pickup": ((1.85, 2.05), (1.75, 1.95), (5.0, 5.9)),
    "bus": ((2.45, 2.55), (2.95, 3.4), (10.0, 13.0)),
    "truck": ((2.4, 2.55), (3.2, 4.0), (7.0, 12.0)),
    "person": ((0.5, 0.62), (1.5, 1.92), (0.28, 0.4)),
}
# Car paint (display BGR) and how common it is.
PAINTS = np.array([
    [235, 235, 235], [25, 25, 28], [120, 120, 120], [180, 180, 185], [140, 70, 30], [30, 30, 160],
    [60, 100, 40], [40, 60, 110], [150, 170, 190], [20, 150, 220], [90, 40, 30], [60, 60, 70],
], dtype=np.float64)
PAINT_P = np.array([24, 19, 14, 12, 8, 8, 3, 3, 3, 2, 2, 2], dtype=np.float64)
PAINT_P /= PAINT_P.sum()


@dataclass(frozen=True)
class Vehicle:
    """A labelled object: a vehicle (car / truck) or a pedestrian."""

    cls: int
    x: float  # lateral offset of its centre from the road's centre curve
    z: float  # distance ahead of the face nearest the camera (rear; front when oncoming)
    size: tuple[float, float, float]  # width, height, length
    color: tuple[float, float, float]  # body paint / clothing, display BGR
    oncoming: bool = False  # faces the camera
    speed: float = 0.0  # m/s along the road, for sequences (0: parked)
    shape: str = "sedan"  # a SHAPES silhouette, or "person"
    parked: bool = False
    brake: bool = False  # brake lights lit
    yaw: float = 0.0  # extra turn relative to the road (crossing pedestrians, parked cars)
    style: int = 0  # seed of the details (trim, clothes, gait)


@dataclass(frozen=True)
class Prop:
    """An unlabelled object by the road: tree, building, lamp, pole, sign or bush."""

    kind: str
    s: float  # position of its centre along the road (world-anchored: s = z + travelled)
    x: float  # lateral offset of its centre
    size: tuple[float, float, float]  # across, height, along
    color: tuple[float, float, float]
    color2: tuple[float, float, float] = (0.0, 0.0, 0.0)
    style: int = 0


@dataclass(frozen=True)
class Marking:
    """One painted lane boundary."""

    offset: float  # lateral, from the road's centre curve
    kind: str  # none, solid, dashed, double, solid_dashed, dashed_solid (left line first)
    yellow: bool
    width: float
    gap: float = 0.12  # between the two lines of a double marking
    phase: float = 0.0  # of the dashes, metres


@dataclass(frozen=True)
class Road:
    lane_width: float
    lanes: tuple[float, ...]  # lane centres, left to right, from the road's centre curve
    oncoming: tuple[bool, ...]  # per lane
    ego_lane: int
    ego_offset: float  # camera's lateral offset from its lane centre
    markings: tuple[Marking, ...]  # left to right
    paved: tuple[float, float]  # lateral extent of the carriageway incl. shoulders
    median: tuple[float, float] | None  # unpaved strip between the directions
    median_kind: str  # grass / concrete
    median_barrier: str  # none / concrete / guardrail
    parking: tuple[bool, bool]  # parking lane on the left / right shoulder
    dash_length: float
    dash_period: float
    paint_fade: float
    paint_gaps: float
    surface: str  # asphalt / concrete
    asphalt: tuple[float, float, float]
    cracks: float
    patches: float
    seams: float
    tyre_tracks: float
    left_hand: bool


@dataclass(frozen=True)
class Side:
    """What lines one side of the road, from the paved edge outwards."""

    verge: str  # grass, dry, dirt, gravel, snow, pavement
    verge_color: tuple[float, float, float]
    gravel: float  # width of a gravel band beyond the paved edge
    kerb: float  # kerb height (0: none); the sidewalk behind it is raised by this much
    sidewalk: float  # sidewalk width
    sidewalk_color: tuple[float, float, float]
    rail: str  # none, guardrail, concrete, wall
    rail_offset: float  # lateral distance of the rail from the paved edge (or sidewalk's back)
    rail_height: float
    rail_color: tuple[float, float, float]


@dataclass(frozen=True)
class Surroundings:
    setting: str
    sides: tuple[Side, Side]  # left, right
    skyline: str  # hills, treeline, city, flat
    skyline_color: tuple[float, float, float]
    skyline_phase: tuple[float, float, float]
    skyline_height: float
    canopy_light: float = 0.2  # share of a tree crown's shadow lit by sun flecks


@dataclass(frozen=True)
class Light:
    time: str  # day, dusk, night
    sun_azimuth: float  # radians from the road frame's Z towards X
    sun_elevation: float  # radians; below 0 at night
    sun: tuple[float, float, float]  # linear BGR irradiance of direct sun
    ambient: tuple[float, float, float]  # linear BGR sky light
    sky_zenith: tuple[float, float, float]  # display BGR
    sky_horizon: tuple[float, float, float]
    sky_gain: float  # sky radiance relative to a white surface under the ambient
    clouds: float  # cloud cover 0..1
    overcast: bool
    headlights: bool  # ego low beams
    lamps: bool  # street lamps lit


@dataclass(frozen=True)
class Weather:
    rain: float  # streak density 0..1 (0: dry)
    fog_distance: float  # metres of 1/e attenuation (large: haze only)
    fog_color: tuple[float, float, float]
    wet: float  # road wetness 0..1 (specular sheen)
    puddles: float  # fraction of the road under standing water


@dataclass(frozen=True)
class Sensor:
    exposure_ev: float
    linear: bool  # hard-clipped linear response instead of the filmic tone curve
    white_balance: tuple[float, float, float]  # BGR gains
    saturation: float
    blur_sigma: float
    motion_px: float  # motion blur length (0: none)
    motion_angle: float
    vignetting: float
    read_noise: float
    shot_noise: float
    jpeg_quality: int  # 0: no extra compression
    downscale: float  # 1: full resolution
    bloom: float


@dataclass(frozen=True)
class Hood:
    """The ego car's bonnet (or dashboard) at the bottom of the frame, in the road frame."""

    kind: str  # hood / dashboard
    y_edge: float  # metres below the camera at the front edge
    edge: float  # Z of the front edge on the centre line
    bulge: float  # the edge recedes by bulge * x^2
    slope: float  # the surface rises by this much per metre towards the camera
    half_width: float
    x: float  # lateral centre relative to the camera
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one frame; ``sample_scene`` draws one at random."""

    camera: Camera
    pitch: float  # radians, down positive
    roll: float  # radians
    curvature: float  # 1/metres
    heading: float  # road heading relative to the camera, radians
    travelled: float  # ego distance along the road; scrolls dashes, textures and props
    background_depth: float  # the far wall (Z)
    road: Road
    surroundings: Surroundings
    vehicles: tuple[Vehicle, ...]
    props: tuple[Prop, ...]
    light: Light
    weather: Weather
    sensor: Sensor
    hood: Hood | None
    texture_seed: int = 0

    def curve(self) -> RoadCurve:
        road = self.road
        return RoadCurve(-(road.lanes[road.ego_lane] + road.ego_offset), float(np.tan(self.heading)),
                         0.5 * self.curvature)

    def road_centre(self, z: np.ndarray | float) -> np.ndarray | float:
        """Lateral position (road-frame X) of the road's centre curve at distance z."""
        return self.curve().x(z)

    def boundaries(self) -> np.ndarray:
        """Lane-boundary offsets from the road centre, left to right."""
        return np.array([m.offset for m in self.road.markings])

    def rotation(self) -> np.ndarray:
        """Camera -> road frame."""
        return rotation(self.pitch, self.roll)

    def prop_z(self, prop: Prop) -> float:
        """Where a road-anchored prop stands now; props wrap around, passing behind the far wall."""
        period = self.background_depth + 45.0
        return float((prop.s - self.travelled + 25.0) % period - 25.0)


# ---------------------------------------------------------------------------- sampling

def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(*r))


def _color(rng: np.random.Generator, lo: tuple[float, ...], hi: tuple[float, ...]
           ) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.uniform(lo, hi))


def _grey(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float, float]:
    """A grey between lo and hi with a slight random tint."""
    g = float(rng.uniform(lo, hi))
    tint = rng.uniform(0.96, 1.04, 3)
    return tuple(float(g * t) for t in tint)


def sample_scene(rng: np.random.Generator, camera: Camera | None = None,
                 params: Randomization = DEFAULT) -> Scene:
    """Draw a random scene. ``camera`` fixes the intrinsics (mount, pitch and roll are drawn)."""
    seeds = rng.integers(0, 2**63 - 1, size=8)
    r_cam, r_road, r_sur, r_traffic, r_light, r_weather, r_sensor, r_tex = (
        np.random.default_rng(int(s)) for s in seeds)
    p_set = np.asarray(params.surround.setting_p, np.float64)
    setting = SETTINGS[int(r_sur.choice(len(SETTINGS), p=p_set / p_set.sum()))]
    cam, pitch, roll, hood = sample_camera(r_cam, camera, params)
    road = sample_road(r_road, setting, params)
    travelled = float(r_road.uniform(0, 1000))
    curvature = float(r_road.normal(0.0, params.road.curvature_sigma))
    if setting == "highway":
        curvature *= 0.5
    heading = float(r_road.normal(0.0, params.road.heading_sigma))
    bg = _u(r_sur, params.surround.background_depth)
    weather = sample_weather(r_weather, params)
    light = sample_light(r_light, setting, weather, params)
    surroundings = sample_surroundings(r_sur, setting, params)
    scene = Scene(camera=cam, pitch=pitch, roll=roll, curvature=curvature, heading=heading,
                  travelled=travelled, background_depth=bg, road=road, surroundings=surroundings,
                  vehicles=(), props=(), light=light, weather=weather,
                  sensor=sample_sensor(r_sensor, light, params), hood=hood,
                  texture_seed=int(r_tex.integers(0, 2**31 - 1)))
    props = sample_props(r_sur, scene, params)
    vehicles = sample_traffic(r_traffic, scene, params)
    return replace(scene, props=tuple(props), vehicles=tuple(vehicles))


def sample_camera(rng: np.random.Generator, camera: Camera | None, params: Randomization
                  ) -> tuple[Camera, float, float, Hood | None]:
    p = params.camera
    if camera is None:
        w, h = 1280, 720
        hfov = np.deg2rad(_u(rng, p.hfov_deg))
        f = (w / 2) / np.tan(hfov / 2)
        cx = w / 2 + float(rng.uniform(-1, 1)) * p.principal_jitter * w
        cy = h / 2 + float(rng.uniform(-1, 1)) * p.principal_jitter * h
        camera = Camera(width=w, height=h, fx=float(f), fy=float(f), cx=float(cx), cy=float(cy))
    else:
        for _ in range(3):  # keep the draws aligned with the free-camera case
            rng.uniform()
    high = rng.random() < p.high_mount_p
    mount = _u(rng, p.high_mount_height if high else p.mount_height)
    camera = replace(camera, mount_height=float(mount))
    pitch = float(np.deg2rad(_u(rng, p.pitch_deg)))
    roll = float(np.deg2rad(np.clip(rng.normal(0.0, p.roll_deg / 2), -p.roll_deg, p.roll_deg)))
    hood = None
    if rng.random() < p.hood_p:
        dash = rng.random() < p.dashboard_share
        frac = _u(rng, p.hood_rows)
        edge = float(rng.uniform(0.35, 0.9) if dash else rng.uniform(1.2, 2.8))
        y_lo, y_hi = (0.06, 0.4) if dash else (0.25, min(0.85, mount - 0.45))
        # The image row of the edge (mid-frame) gives the edge's drop below the camera.
        rot = rotation(pitch, roll)
        d = rot @ np.array([0.0, (camera.height * (1.0 - frac) + 0.5 - camera.cy) / camera.fy, 1.0])
        y_edge = float(np.clip(edge * d[1] / d[2], y_lo, y_hi))
        slope = float(rng.uniform(0.0, 0.12) if dash else rng.uniform(0.05, 0.3))
        slope = min(slope, 0.7 * y_edge / edge)  # the surface stays below the camera
        paint = PAINTS[rng.choice(len(PAINTS), p=PAINT_P)]
        color = (40.0, 40.0, 44.0) if dash else tuple(float(v) for v in paint)
        hood = Hood(kind="dashboard" if dash else "hood", y_edge=y_edge, edge=edge,
                    bulge=float(rng.uniform(0.02, 0.25)) * (0.3 if dash else 1.0) / edge,
                    slope=slope, half_width=float(rng.uniform(0.75, 0.95)) if not dash else 2.0,
                    x=float(rng.uniform(-0.08, 0.08)), color=color)
    return camera, pitch, roll, hood


def _marking(rng: np.random.Generator, role: str, offset: float, yellow: bool, p, width: float,
             period: float) -> Marking:
    rp = p.road
    kind = "solid"
    if role == "edge":
        kind = "solid" if rng.random() < rp.solid_edge_p else "none"
    elif role == "inner":
        kind = "dashed" if rng.random() < 0.9 else "solid"
    elif role == "centre":
        if rng.random() < rp.double_centre_p:
            kind = "double" if rng.random() < 0.6 else str(rng.choice(["solid_dashed", "dashed_solid"]))
        else:
            kind = "dashed" if rng.random() < 0.6 else "solid"
    return Marking(offset=float(offset), kind=kind, yellow=yellow, width=width,
                   gap=float(rng.uniform(0.08, 0.2)), phase=float(rng.uniform(0, period)))


def sample_road(rng: np.random.Generator, setting: str, params: Randomization) -> Road:
    rp = params.road
    lo, hi = rp.lanes
    n_ego = {"highway": int(rng.integers(2, 5)), "urban": int(rng.integers(1, 4)),
             "suburban": int(rng.integers(1, 3)), "rural": 1 + int(rng.random() < 0.2)}[setting]
    n_ego = int(np.clip(n_ego, lo, hi))
    two_way = rng.random() < min(0.95, rp.two_way_p * {"highway": 1.3, "urban": 1.5, "suburban": 1.7,
                                                        "rural": 2.0}[setting])
    n_onc = 0
    if two_way:
        n_onc = n_ego if (setting == "highway" or rng.random() < 0.6) else int(rng.integers(1, n_ego + 1))
        n_onc = min(n_onc, 6 - n_ego) or 1
    median_p = rp.median_p * (2.0 if setting == "highway" else 0.4)
    median = float(rng.uniform(1.0, 6.0)) if two_way and rng.random() < median_p else 0.0
    left_hand = bool(rng.random() < rp.left_hand_traffic_p)
    lw = _u(rng, rp.lane_width)
    if setting == "highway":
        lw = max(lw, 3.4)
    elif setting == "urban":
        lw = min(lw, 3.6)
    mw = _u(rng, rp.marking_width)
    yellow = bool(rng.random() < rp.yellow_centre_p)
    dash = _u(rng, rp.dash_length)
    period = dash * (1.0 + _u(rng, rp.dash_gap_ratio))

    groups = [("ego", n_ego), ("onc", n_onc)] if left_hand else [("onc", n_onc), ("ego", n_ego)]
    groups = [g for g in groups if g[1] > 0]
    x, centres, onc, marks, median_range = 0.0, [], [], [], None
    for gi, (name, n) in enumerate(groups):
        if gi == 0:
            marks.append((x, "edge", False))
        elif median > 0:  # the median's edge lines sit just inside the carriageways
            marks.append((x - 0.25, "median", yellow and not left_hand))
            median_range = (x, x + median)
            x += median
            marks.append((x + 0.25, "median", yellow and left_hand))
        else:
            marks.append((x, "centre", yellow))
        for i in range(n):
            if i > 0:
                marks.append((x, "inner", False))
            centres.append(x + lw / 2)
            onc.append(name == "onc")
            x += lw
    marks.append((x, "edge", False))
    shift = x / 2
    markings = tuple(_marking(rng, role, off - shift, yel, params, mw * (1.15 if role == "edge" else 1.0),
                              period) for off, role, yel in marks)
    centres = tuple(c - shift for c in centres)
    if median_range is not None:
        median_range = (median_range[0] - shift, median_range[1] - shift)

    built = setting in ("urban", "suburban")
    parking = (bool(built and rng.random() < 0.3), bool(built and rng.random() < 0.5))
    if left_hand:
        parking = parking[::-1]
    shoulders = []
    for side in (0, 1):
        if parking[side]:
            shoulders.append(float(rng.uniform(2.0, 2.6)))
        elif setting == "highway":
            shoulders.append(float(rng.uniform(1.5, 3.0)) if (side == 1) != left_hand
                             else float(rng.uniform(0.4, 1.2)))
        elif built:
            shoulders.append(float(rng.uniform(0.2, 0.6)))
        else:
            shoulders.append(max(0.25, _u(rng, rp.shoulder) * 0.5))
    paved = (markings[0].offset - shoulders[0], markings[-1].offset + shoulders[1])

    ego_candidates = [i for i, o in enumerate(onc) if not o]
    if setting != "highway" and rng.random() < 0.5:
        ego = ego_candidates[0] if left_hand else ego_candidates[-1]  # the kerb-side lane
    else:
        ego = int(rng.choice(ego_candidates))
    grey = _u(rng, rp.asphalt_grey)
    surface = "concrete" if rng.random() < rp.concrete_p else "asphalt"
    if surface == "concrete":
        grey = float(rng.uniform(140, 185))
    tint = rng.uniform(0.95, 1.05, 2)
    med_kind = "grass" if rng.random() < 0.6 else "concrete"
    med_barrier = "none"
    if median_range is not None:
        r = rng.random()
        med_barrier = "concrete" if r < 0.45 else ("guardrail" if r < 0.75 else "none")
    return Road(
        lane_width=lw, lanes=centres, oncoming=tuple(onc), ego_lane=ego,
        ego_offset=float(rng.uniform(-1, 1)) * min(rp.ego_offset, lw / 2 - 0.95),
        markings=markings, paved=paved, median=median_range, median_kind=med_kind,
        median_barrier=med_barrier, parking=parking, dash_length=dash, dash_period=period,
        paint_fade=_u(rng, rp.paint_fade), paint_gaps=_u(rng, rp.paint_gaps) if rng.random() < 0.5 else 0.0,
        surface=surface, asphalt=(grey * float(tint[0]), grey, grey * float(tint[1])),
        cracks=float(rng.uniform(0.3, 1.0)) if rng.random() < rp.cracks_p else 0.0,
        patches=float(rng.uniform(0.3, 1.0)) if rng.random() < rp.patches_p else 0.0,
        seams=float(rng.uniform(0.3, 1.0)) if rng.random() < rp.seams_p else 0.0,
        tyre_tracks=_u(rng, rp.tyre_tracks), left_hand=left_hand)


_VERGE_COLORS = {  # display BGR low / high
    "grass": ((35, 95, 55), (80, 150, 115)),
    "dry": ((60, 125, 140), (100, 170, 190)),
    "dirt": ((55, 85, 110), (95, 125, 150)),
    "gravel": ((105, 115, 120), (150, 155, 160)),
    "snow": ((215, 215, 210), (245, 245, 240)),
    "pavement": ((120, 125, 125), (185, 185, 185)),
}


def sample_surroundings(rng: np.random.Generator, setting: str, params: Randomization) -> Surroundings:
    sp = params.surround
    snow = rng.random() < sp.snow_p
    sides = []
    for _side in (0, 1):
        if setting == "urban":
            verge = "pavement"
        elif snow:
            verge = "snow"
        else:
            verge = str(rng.choice(["grass", "dry", "dirt", "gravel"], p=[0.6, 0.2, 0.12, 0.08]))
        kerb = sidewalk = 0.0
        if setting == "urban" or (setting == "suburban" and rng.random() < 0.7):
            kerb = _u(rng, sp.kerb_height)
            sidewalk = _u(rng, sp.sidewalk_width) * (1.0 if setting == "urban" else 0.6)
        rail, rail_h, rail_off = "none", 0.0, 0.0
        if setting in ("rural", "highway"):
            r = rng.random()
            if setting == "highway" and r < sp.barrier_p * 0.5:
                rail, rail_h = "concrete", float(rng.uniform(0.7, 1.1))
            elif r < sp.guard_rail_p:
                rail, rail_h = "guardrail", float(rng.uniform(0.7, 0.85))
            elif setting == "highway" and r < sp.guard_rail_p + sp.wall_p:
                rail, rail_h = "wall", float(rng.uniform(2.5, 5.0))
            rail_off = float(rng.uniform(0.4, 1.5)) if rail != "wall" else float(rng.uniform(2.0, 7.0))
        elif setting in ("urban", "suburban") and rng.random() < sp.urban_wall_p:
            rail, rail_h = "wall", _u(rng, sp.urban_wall_height)
            rail_off = float(rng.uniform(0.0, 1.0) if setting == "urban" else rng.uniform(0.3, 3.0))
        lo, hi = _VERGE_COLORS[verge]
        rail_color = {"none": (0, 0, 0), "guardrail": (175, 175, 170), "concrete": (165, 170, 172),
                      "wall": (120, 135, 130)}[rail]
        if rail == "wall" and setting in ("urban", "suburban") and rng.random() < sp.bright_wall_p:
            rail_color = _color(rng, (215, 220, 220), (250, 250, 250))  # whitewash, pale render
        elif rail == "wall" and rng.random() < 0.4:  # brick / painted walls
            rail_color = ((60, 80, 140), (150, 170, 190), (90, 130, 110))[int(rng.integers(3))]
        sides.append(Side(
            verge=verge, verge_color=_color(rng, lo, hi),
            gravel=float(rng.uniform(0.2, 1.2)) if setting in ("rural", "highway") and rng.random() < 0.6
            else 0.0,
            kerb=kerb, sidewalk=sidewalk, sidewalk_color=_grey(rng, 130, 195),
            rail=rail, rail_offset=rail_off, rail_height=rail_h,
            rail_color=tuple(float(c) * g for c, g in zip_strict(rail_color, _grey(rng, 0.8, 1.1)))))
    skyline = str(rng.choice(["hills", "treeline", "city", "flat"],
                             p=[0.25, 0.35, 0.3, 0.1] if setting in ("urban", "suburban")
                             else [0.45, 0.4, 0.05, 0.1]))
    lo, hi = {"hills": ((70, 100, 80), (130, 150, 130)), "treeline": ((35, 65, 45), (80, 110, 90)),
              "city": ((110, 110, 110), (170, 165, 160)), "flat": ((80, 110, 100), (140, 160, 150))}[skyline]
    return Surroundings(setting=setting, sides=(sides[0], sides[1]), skyline=skyline,
                        skyline_color=_color(rng, lo, hi),
                        skyline_phase=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, 3)),
                        skyline_height=float(rng.uniform(0.6, 1.6)),
                        canopy_light=_u(rng, sp.canopy_light))


def side_edges(scene: Scene, side: int) -> tuple[float, float]:
    """(inner, outer) lateral offsets of one side's kerb-to-sidewalk-back band (signed outwards)."""
    road, s = scene.road, scene.surroundings.sides[side]
    edge = road.paved[side]
    sign = -1.0 if side == 0 else 1.0
    return edge, edge + sign * s.sidewalk


_BUILDING_COLORS = [((150, 170, 190), (200, 215, 230)), ((60, 80, 130), (90, 110, 170)),
                    ((140, 140, 140), (200, 200, 200)), ((120, 150, 170), (170, 190, 205)),
                    ((90, 100, 110), (130, 140, 150)), ((170, 160, 150), (230, 225, 220))]


def sample_props(rng: np.random.Generator, scene: Scene, params: Randomization) -> list[Prop]:
    sp, setting, road = params.surround, scene.surroundings.setting, scene.road
    z_lo, z_hi = -25.0, scene.background_depth + 5.0
    length = z_hi - z_lo
    props: list[Prop] = []

    def add(kind: str, z: float, x: float, size, color, color2=(0.0, 0.0, 0.0)) -> None:
        props.append(Prop(kind, float(z + scene.travelled), float(x), tuple(float(v) for v in size),
                          tuple(float(c) for c in color), tuple(float(c) for c in color2),
                          int(rng.integers(0, 2**31 - 1))))

    for side in (0, 1):
        sign = -1.0 if side == 0 else 1.0
        s = scene.surroundings.sides[side]
        _, back = side_edges(scene, side)
        back += sign * (s.gravel + (s.rail_offset + 0.3 if s.rail == "wall" else 0.0))
        # Buildings.
        p_build = sp.buildings_p * {"urban": 1.0, "suburban": 0.6, "rural": 0.08, "highway": 0.05}[setting]
        if rng.random() < p_build:
            z = z_lo + float(rng.uniform(0, 10))
            urban = setting == "urban"
            colors = _BUILDING_COLORS[int(rng.integers(len(_BUILDING_COLORS)))]
            while z < z_hi and len(props) < 60:
                along = float(rng.uniform(8, 30) if urban else rng.uniform(8, 15))
                height = float(rng.uniform(6, 28) if urban else rng.uniform(4, 8))
                depth = float(rng.uniform(8, 20))
                setback = float(rng.uniform(0, 2.5) if urban else rng.uniform(4, 14))
                if rng.random() < 0.5:
                    colors = _BUILDING_COLORS[int(rng.integers(len(_BUILDING_COLORS)))]
                x = back + sign * (setback + depth / 2)
                add("building", z + along / 2, x, (depth, height, along), _color(rng, *colors),
                    _color(rng, (60, 60, 60), (110, 110, 115)))
                z += along + (float(rng.uniform(0, 4)) if urban and rng.random() < 0.6 else
                              float(rng.uniform(2, 20)))
        # Trees: an avenue of large street trees at the kerb, and scattered ones.
        if setting in ("urban", "suburban") and rng.random() < sp.avenue_p:
            _avenue(rng, road.paved[side] + sign * (s.sidewalk / 2 if s.sidewalk > 1.2 else 1.2),
                    sign, z_lo, z_hi, sp, add)
        density = _u(rng, sp.trees_per_100m) * {"urban": 0.4, "suburban": 1.0, "rural": 1.2,
                                               "highway": 0.5}[setting]
        for _ in range(min(int(rng.poisson(density * length / 100)), 24)):
            z = float(rng.uniform(z_lo, z_hi))
            if setting == "urban":
                x = road.paved[side] + sign * float(rng.uniform(0.6, max(0.7, s.sidewalk - 0.4)))
            else:
                x = back + sign * float(rng.uniform(1.0, 14.0 if setting != "suburban" else 6.0))
            conifer = rng.random() < (0.35 if setting in ("rural", "highway") else 0.1)
            crown = float(rng.uniform(1.2, 3.5))
            trunk_h = float(rng.uniform(1.2, 3.2))
            height = trunk_h + (crown * float(rng.uniform(2.5, 4.0)) if conifer else crown * 1.8)
            add("conifer" if conifer else "tree", z, x, (crown * 2, height, crown * 2), *_tree_colors(rng))
        # Bushes.
        if setting != "urban":
            for _ in range(int(rng.poisson(1.5 * length / 100))):
                size = float(rng.uniform(0.6, 2.0))
                add("bush", float(rng.uniform(z_lo, z_hi)), back + sign * float(rng.uniform(0.3, 6.0)),
                    (size * float(rng.uniform(1, 2)), size * 0.8, size * float(rng.uniform(1, 2.5))),
                    _color(rng, (25, 70, 35), (70, 130, 90)))
        # Lamps / poles.
        lamp_side = setting in ("urban", "suburban", "highway") and rng.random() < 0.7
        if lamp_side:
            gap = float(rng.uniform(22, 45))
            z = z_lo + float(rng.uniform(0, gap))
            x = road.paved[side] + sign * (0.5 if s.sidewalk > 0 else float(rng.uniform(0.8, 2.0)))
            while z < z_hi:
                add("lamp", z, x, (0.16, float(rng.uniform(6.5, 10)), float(rng.uniform(1.2, 2.5))),
                    (120, 120, 118), (200, 230, 255))
                z += gap
        elif setting == "rural" and rng.random() < 0.5:
            gap = float(rng.uniform(35, 60))
            z = z_lo + float(rng.uniform(0, gap))
            x = back + sign * float(rng.uniform(1.0, 5.0))
            while z < z_hi:
                add("pole", z, x, (0.26, float(rng.uniform(7.5, 10.5)), 0.26), (60, 80, 95))
                z += gap
        # Signs.
        for _ in range(min(int(rng.poisson(_u(rng, sp.signs_per_100m) * length / 100)), 4)):
            width = float(rng.uniform(0.6, 2.2))
            board = [(150, 60, 20), (60, 120, 20), (235, 235, 235), (40, 40, 200), (20, 200, 230)][
                int(rng.integers(5))]
            add("sign", float(rng.uniform(0, z_hi)), road.paved[side] + sign * float(rng.uniform(0.6, 2.5)),
                (width, float(rng.uniform(2.0, 3.2)), float(rng.uniform(0.5, 1.4))), board, (150, 150, 150))
    return props


def _tree_colors(rng: np.random.Generator) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """A deciduous crown's colour (green, 15 % autumn) and its bark's."""
    lo, hi = ((20, 90, 110), (60, 160, 200)) if rng.random() < 0.15 else ((25, 70, 35), (70, 130, 90))
    return _color(rng, lo, hi), _color(rng, (40, 55, 70), (80, 95, 110))


def _avenue(rng: np.random.Generator, x: float, sign: float, z_lo: float, z_hi: float,
            sp: SurroundParams, add) -> None:
    """A row of large street trees at lateral ``x`` (one species: similar size, regular gaps, a
    few missing); their crowns reach over the sidewalk and the road, shading both."""
    gap, crown = _u(rng, sp.avenue_gap), _u(rng, sp.avenue_crown)
    trunk = float(rng.uniform(2.2, 4.0))
    z = z_lo + float(rng.uniform(0, gap))
    while z < z_hi:
        if rng.random() < 0.9:
            rc = crown * float(rng.uniform(0.85, 1.15))
            leaf, bark = _tree_colors(rng)
            add("tree", z + float(rng.normal(0, 0.4)), x + sign * float(rng.normal(0, 0.15)),
                (rc * 2, trunk * float(rng.uniform(0.9, 1.1)) + rc * 1.8, rc * 2), leaf, bark)
        z += gap * float(rng.uniform(0.9, 1.1))


def _paint(rng: np.random.Generator) -> tuple[float, float, float]:
    base = PAINTS[rng.choice(len(PAINTS), p=PAINT_P)] * rng.uniform(0.85, 1.1)
    return tuple(float(v) for v in np.clip(base + rng.normal(0, 6, 3), 5, 250))


def _vehicle(rng: np.random.Generator, shape: str, x: float, z: float, oncoming: bool, speed: float,
             params: Randomization, parked: bool = False) -> Vehicle:
    size = tuple(float(rng.uniform(*r)) for r in SHAPE_SIZES[shape])
    color = _paint(rng)
    if shape == "bus" and rng.random() < 0.6:
        color = tuple(float(v) for v in rng.choice([[30, 180, 230], [40, 40, 190], [200, 200, 200],
                                                    [150, 90, 30]]))
    return Vehicle(cls=SHAPE_CLASS[shape], x=float(x), z=float(z), size=size, color=color,
                   oncoming=oncoming, speed=float(speed), shape=shape, parked=parked,
                   brake=bool(not parked and rng.random() < params.traffic.brake_p),
                   yaw=float(rng.normal(0, 0.03 if parked else 0.01)), style=int(rng.integers(0, 2**31 - 1)))


def sample_traffic(rng: np.random.Generator, scene: Scene, params: Randomization) -> list[Vehicle]:
    tp, road, setting = params.traffic, scene.road, scene.surroundings.setting
    far = scene.background_depth - 8.0
    p = np.asarray(tp.shape_p, np.float64)
    if setting == "highway":
        p = p * np.array([1, 1, 1, 1, 1, 0.5, 2.5])
    elif setting == "urban":
        p = p * np.array([1, 1, 1, 1.3, 0.7, 2.0, 0.6])
    p /= p.sum()
    gap_mean = _u(rng, tp.gap_mean) * (0.7 if setting == "urban" else 1.0)
    vehicles: list[Vehicle] = []
    for lane, (lane_x, onc) in enumerate(zip_strict(road.lanes, road.oncoming)):
        same_dir_adjacent = abs(lane - road.ego_lane) == 1 and not onc
        if lane == road.ego_lane:
            z = float(rng.uniform(6.0, 14.0)) + float(rng.exponential(gap_mean))
        elif same_dir_adjacent and rng.random() < tp.alongside_p:
            z = float(rng.uniform(-3.0, 4.0))
        else:
            z = float(rng.uniform(-2.0, 8.0)) + float(rng.exponential(gap_mean * 0.6))
        while len(vehicles) < tp.max_vehicles:
            shape = SHAPES[int(rng.choice(len(SHAPES), p=p))]
            veh = _vehicle(rng, shape, lane_x + float(rng.normal(0, 0.2)), z, onc,
                           float(rng.uniform(12, 30)), params)
            if z + veh.size[2] > far:
                break
            vehicles.append(veh)
            z += veh.size[2] + float(rng.uniform(2.0, 6.0)) + float(rng.exponential(gap_mean))
    # Parked cars at the kerb (labelled: they are cars).
    car_p = np.array([0.35, 0.3, 0.2, 0.1, 0.05])
    for side in (0, 1):
        if not road.parking[side] or rng.random() > tp.parked_p * 2:
            continue
        sign = -1.0 if side == 0 else 1.0
        onc_side = road.oncoming[0 if side == 0 else -1]
        z = float(rng.uniform(-8.0, 6.0))
        while z < far and len(vehicles) < tp.max_vehicles + 10:
            shape = SHAPES[int(rng.choice(5, p=car_p))]
            veh = _vehicle(rng, shape, 0.0, z, onc_side, 0.0, params, parked=True)
            x = road.paved[side] - sign * (veh.size[0] / 2 + float(rng.uniform(0.15, 0.45)))
            veh = replace(veh, x=float(x))
            if z + veh.size[2] > far:
                break
            if rng.random() < 0.85:
                vehicles.append(veh)
            z += veh.size[2] + _u(rng, tp.parked_gap)
    # Pedestrians.
    scale = {"urban": 1.0, "suburban": 0.5, "rural": 0.25, "highway": 0.0}[setting]
    count = round(int(rng.integers(tp.pedestrians[0], tp.pedestrians[1] + 1)) * scale)
    for _ in range(count):
        size = tuple(float(rng.uniform(*r)) for r in SHAPE_SIZES["person"])
        crossing = rng.random() < tp.crossing_p
        if crossing:
            x = float(rng.uniform(road.paved[0] + 0.5, road.paved[1] - 0.5))
            z = float(rng.uniform(8.0, 45.0))
            yaw = float(rng.choice([-np.pi / 2, np.pi / 2]) + rng.normal(0, 0.2))
        else:
            side = int(rng.integers(2))
            sign = -1.0 if side == 0 else 1.0
            inner, outer = side_edges(scene, side)
            width = abs(outer - inner)
            off = float(rng.uniform(0.4, width - 0.3)) if width > 1.0 else float(rng.uniform(0.5, 3.5))
            x = inner + sign * off
            z = float(rng.uniform(3.0, 60.0))
            yaw = float(rng.normal(0, 0.25))
        clothes = _color(rng, (20, 20, 20), (220, 220, 220))
        person = Vehicle(cls=PEDESTRIAN, x=x, z=z, size=size, color=clothes,
                         oncoming=bool(rng.random() < 0.5), speed=float(rng.uniform(-1.6, 1.6)),
                         shape="person", yaw=yaw, style=int(rng.integers(0, 2**31 - 1)))
        if not any(_overlap(person, v) for v in vehicles):
            vehicles.append(person)
    return vehicles


def _overlap(a: Vehicle, b: Vehicle, margin: float = 0.3) -> bool:
    """Whether two objects' footprints (axis-aligned along the road) come closer than ``margin``."""
    ra = max(a.size[0], a.size[2]) / 2
    rb = max(b.size[0], b.size[2]) / 2 if b.cls == PEDESTRIAN else b.size[0] / 2
    along = a.z - margin < b.z + b.size[2] and b.z - margin < a.z + a.size[2]
    return abs(a.x - b.x) < ra + rb + margin and along


def sample_weather(rng: np.random.Generator, params: Randomization) -> Weather:
    wp = params.weather
    rain = float(rng.uniform(0.2, 1.0)) if rng.random() < wp.rain_p else 0.0
    fog = rng.random() < wp.fog_p
    wet = float(rng.uniform(0.6, 1.0)) if rain else (float(rng.uniform(0.3, 0.8)) if rng.random() < wp.wet_p
                                                      else 0.0)
    fog_distance = _u(rng, wp.fog_distance) if fog else _u(rng, wp.haze_distance)
    if rain and not fog:
        fog_distance = min(fog_distance, float(rng.uniform(150, 500)))
    grey = float(rng.uniform(170, 225))
    return Weather(rain=rain, fog_distance=fog_distance, fog_color=(grey * 1.02, grey, grey * 0.98),
                   wet=wet, puddles=_u(rng, wp.puddles) if wet > 0.5 else 0.0)


def sample_light(rng: np.random.Generator, setting: str, weather: Weather, params: Randomization) -> Light:
    lp = params.light
    p = np.asarray(lp.time_p, np.float64)
    time = TIMES[int(rng.choice(3, p=p / p.sum()))]
    overcast = bool(weather.rain > 0 or weather.fog_distance < 300 or rng.random() < lp.overcast_p)
    azimuth = float(rng.uniform(-np.pi, np.pi))
    clouds = 1.0 if overcast else float(rng.uniform(0.0, 0.7))
    if time == "day":
        elev = np.deg2rad(_u(rng, lp.day_elevation_deg))
        sun = np.array([0.92, 0.97, 1.0]) * rng.uniform(2.6, 3.4)
        ambient = np.array([1.0, 0.9, 0.8]) * rng.uniform(0.35, 0.55)
        zenith = _color(rng, (170, 110, 50), (235, 175, 110))
        horizon = _color(rng, (205, 195, 180), (245, 240, 235))
        gain = float(rng.uniform(1.1, 1.6))
        if overcast:
            sun *= 0.08
            ambient = np.array([1.0, 1.0, 1.0]) * rng.uniform(0.8, 1.2)
            g = float(rng.uniform(160, 215))
            zenith, horizon = (g, g, g * 0.98), (g + 20, g + 20, g + 18)
            gain = float(rng.uniform(0.9, 1.3))
    elif time == "dusk":
        elev = np.deg2rad(_u(rng, lp.dusk_elevation_deg))
        sun = np.array([0.35, 0.62, 1.0]) * rng.uniform(1.2, 2.0)
        ambient = np.array([0.85, 0.6, 0.5]) * rng.uniform(0.15, 0.3)
        zenith = _color(rng, (110, 60, 40), (170, 110, 80))
        horizon = _color(rng, (60, 120, 190), (140, 190, 250))
        gain = float(rng.uniform(0.9, 1.4))
        if overcast:
            sun *= 0.1
            ambient = np.array([0.9, 0.85, 0.85]) * rng.uniform(0.15, 0.3)
            g = float(rng.uniform(100, 150))
            zenith, horizon = (g, g * 0.95, g * 0.95), (g + 20, g + 25, g + 35)
    else:
        elev = -np.deg2rad(float(rng.uniform(10, 40)))
        sun = np.zeros(3)
        ambient = np.array([1.0, 0.85, 0.75]) * rng.uniform(0.008, 0.04)
        zenith = _color(rng, (25, 12, 5), (60, 35, 20))
        horizon = _color(rng, (40, 35, 30), (80, 95, 120)) if setting in ("urban", "suburban") \
            else _color(rng, (30, 20, 12), (60, 45, 35))
        gain = float(rng.uniform(0.6, 1.2))
    lamps = bool(time == "night" and setting != "rural" and rng.random() < lp.street_lamps_p)
    return Light(time=time, sun_azimuth=azimuth, sun_elevation=float(elev),
                 sun=tuple(float(v) for v in sun), ambient=tuple(float(v) for v in ambient),
                 sky_zenith=zenith, sky_horizon=horizon, sky_gain=gain, clouds=clouds, overcast=overcast,
                 headlights=time == "night" or (time == "dusk" and rng.random() < 0.6), lamps=lamps)


def sample_sensor(rng: np.random.Generator, light: Light, params: Randomization) -> Sensor:
    sp = params.sensor
    wb = rng.uniform(*sp.white_balance, 2)
    motion = _u(rng, sp.motion_blur_px) if rng.random() < sp.motion_blur_p else 0.0
    linear = bool(rng.random() < sp.linear_p)
    return Sensor(
        exposure_ev=float(rng.normal(0.0, sp.exposure_ev)) + (_u(rng, sp.linear_bias_ev) if linear else 0.0),
        linear=linear,
        white_balance=(float(wb[0]), 1.0, float(wb[1])),
        saturation=_u(rng, sp.saturation),
        blur_sigma=_u(rng, sp.optics_blur),
        motion_px=motion,
        motion_angle=float(rng.normal(0.0, 0.3) if rng.random() < 0.7 else rng.uniform(0, np.pi)),
        vignetting=_u(rng, sp.vignetting),
        read_noise=_u(rng, sp.read_noise),
        shot_noise=_u(rng, sp.shot_noise),
        jpeg_quality=int(rng.uniform(*sp.jpeg_quality)) if rng.random() < sp.jpeg_p else 0,
        downscale=_u(rng, sp.downscale) if rng.random() < sp.downscale_p else 1.0,
        bloom=_u(rng, sp.bloom) * (2.0 if light.time == "night" else 1.0),
    )
