"""Sampler parameters of the structured domain randomization, one dataclass per concern.

Every range is ``(low, high)``, drawn uniformly unless its comment says otherwise; a ``_p``
is a probability per scene. ``sample_scene`` draws each concern from its own RNG (spawned from
the scene seed), so changing one concern's parameters leaves the others' draws unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

Range = Tuple[float, float]  # typing's: Python 3.8


@dataclass(frozen=True)
class CameraParams:
    hfov_deg: Range = (45.0, 90.0)  # horizontal field of view; fx = fy = (W / 2) / tan(hfov / 2)
    principal_jitter: float = 0.015  # cx, cy move by up to this fraction of width / height
    mount_height: Range = (1.2, 1.8)  # metres above the road
    high_mount_p: float = 0.08  # truck / bus cab
    high_mount_height: Range = (2.0, 2.6)
    pitch_deg: Range = (-1.5, 4.5)  # + looks down
    roll_deg: float = 2.0  # normal, sigma roll_deg / 2, clipped to +-roll_deg
    hood_p: float = 0.35  # an ego hood (or, a third of those, a dashboard) at the bottom
    dashboard_share: float = 0.33
    hood_rows: Range = (0.05, 0.2)  # fraction of the image height the hood covers mid-frame


@dataclass(frozen=True)
class RoadParams:
    lanes: tuple[int, int] = (1, 5)  # lanes in the ego direction, inclusive
    two_way_p: float = 0.45  # oncoming lanes beside them (1-2)
    median_p: float = 0.35  # of two-way roads: a divided road (grass / concrete median)
    left_hand_traffic_p: float = 0.2  # oncoming traffic on the right
    lane_width: Range = (2.9, 3.9)
    marking_width: Range = (0.1, 0.25)
    yellow_centre_p: float = 0.45  # centre / median-side lines yellow (else white)
    double_centre_p: float = 0.6  # centre line doubled (solid-solid or solid-dashed)
    solid_edge_p: float = 0.8  # outer edge lines painted
    dash_length: Range = (2.0, 6.0)
    dash_gap_ratio: Range = (1.0, 3.0)  # gap / dash
    paint_fade: Range = (0.0, 0.55)  # paint contrast lost to wear (still paint, still labelled)
    paint_gaps: Range = (0.0, 0.25)  # fraction of 0.25 m paint cells worn off (not paint)
    concrete_p: float = 0.1  # a concrete road (light, transverse joints) instead of asphalt
    asphalt_grey: Range = (45.0, 135.0)  # display value
    shoulder: Range = (0.2, 2.2)  # paved beyond the edge line, metres
    cracks_p: float = 0.5
    patches_p: float = 0.5  # repair patches of another tone
    seams_p: float = 0.5  # tar seams / crack sealant
    tyre_tracks: Range = (0.0, 0.25)  # darkening of the wheel paths
    curvature_sigma: float = 0.0015  # 1/m, normal
    heading_sigma: float = 0.02  # rad, normal
    ego_offset: float = 0.45  # camera's lateral offset inside its lane, +-


@dataclass(frozen=True)
class SurroundParams:
    # Setting of the scene: urban, suburban, rural, highway (their probabilities).
    setting_p: tuple[float, float, float, float] = (0.3, 0.25, 0.25, 0.2)
    background_depth: Range = (70.0, 112.0)  # the far wall (hills, treeline, skyline)
    trees_per_100m: Range = (1.5, 10.0)  # per side, where the setting has trees
    avenue_p: float = 0.4  # urban / suburban side lined with a row of large street trees
    avenue_gap: Range = (7.0, 15.0)  # metres between them
    avenue_crown: Range = (2.5, 4.5)  # crown radius (their crowns reach over the road)
    canopy_light: Range = (0.08, 0.35)  # share of a crown's shadow that sun flecks light
    buildings_p: float = 0.8  # urban; suburban halves it
    kerb_height: Range = (0.08, 0.2)
    sidewalk_width: Range = (1.5, 4.0)
    guard_rail_p: float = 0.5  # rural / highway
    barrier_p: float = 0.4  # concrete barrier (highway, median)
    wall_p: float = 0.2  # noise barrier / wall
    urban_wall_p: float = 0.35  # urban / suburban: a wall or fence at the back of the sidewalk
    urban_wall_height: Range = (1.2, 3.5)
    bright_wall_p: float = 0.5  # of those: whitewashed / pale render (burns out in low sun, like the sky)
    poles_per_100m: Range = (0.0, 5.0)
    signs_per_100m: Range = (0.0, 3.0)
    snow_p: float = 0.06  # snow on the verges


@dataclass(frozen=True)
class TrafficParams:
    # Silhouettes: sedan, hatchback, suv, van, pickup, bus, truck.
    shape_p: tuple[float, ...] = (0.3, 0.2, 0.2, 0.08, 0.07, 0.05, 0.1)
    gap_mean: Range = (12.0, 45.0)  # mean headway per scene, metres
    max_vehicles: int = 16
    alongside_p: float = 0.35  # a car in an adjacent lane level with the camera
    parked_p: float = 0.6  # urban / suburban scenes with cars parked at the kerb
    parked_gap: Range = (1.0, 12.0)
    pedestrians: tuple[int, int] = (0, 8)  # urban; fewer elsewhere
    crossing_p: float = 0.15  # a pedestrian on the carriageway
    brake_p: float = 0.2


@dataclass(frozen=True)
class LightParams:
    # Time of day: day, dusk, night (their probabilities).
    time_p: tuple[float, float, float] = (0.6, 0.2, 0.2)
    overcast_p: float = 0.35
    day_elevation_deg: Range = (12.0, 70.0)
    dusk_elevation_deg: Range = (0.5, 8.0)
    street_lamps_p: float = 0.6  # of night scenes in built-up settings


@dataclass(frozen=True)
class WeatherParams:
    rain_p: float = 0.15
    fog_p: float = 0.12
    fog_distance: Range = (50.0, 220.0)  # 1/e distance in fog; haze otherwise
    haze_distance: Range = (350.0, 2500.0)
    wet_p: float = 0.15  # wet road without rain (after rain)
    puddles: Range = (0.0, 0.35)


@dataclass(frozen=True)
class SensorParams:
    exposure_ev: float = 0.35  # normal sigma around auto exposure
    # A machine-vision response (KITTI's Flea2, many dashcams): linear with a hard clip instead of
    # the filmic shoulder, often exposed for the shaded road so that sky and pale walls burn out.
    linear_p: float = 0.3
    linear_bias_ev: Range = (0.0, 0.9)  # extra exposure of those frames
    white_balance: Range = (0.88, 1.12)  # blue / red gains relative to green
    saturation: Range = (0.7, 1.25)
    optics_blur: Range = (0.3, 1.1)  # Gaussian sigma, pixels
    motion_blur_p: float = 0.3
    motion_blur_px: Range = (2.0, 12.0)
    vignetting: Range = (0.0, 0.45)
    read_noise: Range = (0.002, 0.02)  # of full scale, times the gain
    shot_noise: Range = (0.0, 0.004)
    jpeg_p: float = 0.5
    jpeg_quality: Range = (35.0, 90.0)
    downscale_p: float = 0.3  # a softer, lower-resolution sensor
    downscale: Range = (0.45, 0.85)
    bloom: Range = (0.05, 0.3)


@dataclass(frozen=True)
class Randomization:
    camera: CameraParams = field(default_factory=CameraParams)
    road: RoadParams = field(default_factory=RoadParams)
    surround: SurroundParams = field(default_factory=SurroundParams)
    traffic: TrafficParams = field(default_factory=TrafficParams)
    light: LightParams = field(default_factory=LightParams)
    weather: WeatherParams = field(default_factory=WeatherParams)
    sensor: SensorParams = field(default_factory=SensorParams)


DEFAULT = Randomization()
