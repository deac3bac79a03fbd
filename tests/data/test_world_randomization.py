"""Structured domain randomization: every concern varies across seeds over its sampler's range,
draws from its own RNG, and the camera that renders a frame is the one its sample reports."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_mtl.data.world import PEDESTRIAN, SHAPES, TRUCK, render, sample_scene
from edge_mtl.data.world.params import DEFAULT, CameraParams, LightParams, Randomization
from edge_mtl.data.world.scene import SETTINGS
from edge_mtl.types import Camera

N = 600


@pytest.fixture(scope="module")
def scenes():
    return [sample_scene(np.random.default_rng(seed)) for seed in range(N)]


def frac(scenes, pred) -> float:
    return float(np.mean([bool(pred(s)) for s in scenes]))


def test_camera_focal_spans_the_field_of_view_range(scenes):
    cams = [s.camera for s in scenes]
    hfov = np.degrees(2 * np.arctan([c.width / 2 / c.fx for c in cams]))
    lo, hi = DEFAULT.camera.hfov_deg
    assert hfov.min() >= lo - 1e-6 and hfov.max() <= hi + 1e-6
    assert hfov.min() < lo + 3 and hfov.max() > hi - 3
    assert np.std(hfov) > 8  # uniform over 45 degrees: ~13
    assert all(c.fx == c.fy for c in cams)
    jitter = DEFAULT.camera.principal_jitter
    assert all(abs(c.cx - c.width / 2) <= jitter * c.width + 1e-9 for c in cams)
    assert all(abs(c.cy - c.height / 2) <= jitter * c.height + 1e-9 for c in cams)
    assert len({c.cx for c in cams}) > N // 2


def test_mount_pitch_and_roll_span_their_ranges(scenes):
    p = DEFAULT.camera
    h = np.array([s.camera.mount_height for s in scenes])
    assert h.min() >= p.mount_height[0] and h.max() <= p.high_mount_height[1]
    car = h[h <= p.mount_height[1]]
    assert car.min() < p.mount_height[0] + 0.05 and car.max() > p.mount_height[1] - 0.05
    assert 0.02 < np.mean(h > p.mount_height[1]) < 0.16  # truck cabs
    pitch = np.degrees([s.pitch for s in scenes])
    assert pitch.min() >= p.pitch_deg[0] and pitch.max() <= p.pitch_deg[1]
    assert pitch.min() < p.pitch_deg[0] + 0.5 and pitch.max() > p.pitch_deg[1] - 0.5
    roll = np.degrees([s.roll for s in scenes])
    assert np.abs(roll).max() <= p.roll_deg + 1e-9 and np.std(roll) > 0.5


def test_hoods_and_dashboards(scenes):
    hood = frac(scenes, lambda s: s.hood is not None)
    assert abs(hood - DEFAULT.camera.hood_p) < 0.08
    kinds = {s.hood.kind for s in scenes if s.hood is not None}
    assert kinds == {"hood", "dashboard"}


def test_time_of_day_and_weather_fractions(scenes):
    _, dusk_p, night_p = DEFAULT.light.time_p
    assert abs(frac(scenes, lambda s: s.light.time == "night") - night_p) < 0.06
    assert abs(frac(scenes, lambda s: s.light.time == "dusk") - dusk_p) < 0.06
    assert all(s.light.headlights for s in scenes if s.light.time == "night")
    assert all(s.light.sun_elevation < 0 for s in scenes if s.light.time == "night")
    elev = np.degrees([s.light.sun_elevation for s in scenes if s.light.time == "day"])
    lo, hi = DEFAULT.light.day_elevation_deg
    assert elev.min() >= lo and elev.max() <= hi
    assert abs(frac(scenes, lambda s: s.weather.rain > 0) - DEFAULT.weather.rain_p) < 0.05
    assert abs(frac(scenes, lambda s: s.weather.fog_distance < 300) - DEFAULT.weather.fog_p - 0.05) < 0.1
    assert 0.2 < frac(scenes, lambda s: s.light.overcast) < 0.7
    assert frac(scenes, lambda s: s.weather.wet > 0) > DEFAULT.weather.rain_p
    assert len({round(s.light.sun_azimuth, 3) for s in scenes}) > N // 2


def test_sensor_effects_vary(scenes):
    sn = [s.sensor for s in scenes]
    assert abs(np.mean([x.jpeg_quality > 0 for x in sn]) - DEFAULT.sensor.jpeg_p) < 0.08
    assert abs(np.mean([x.motion_px > 0 for x in sn]) - DEFAULT.sensor.motion_blur_p) < 0.08
    assert abs(np.mean([x.downscale < 1 for x in sn]) - DEFAULT.sensor.downscale_p) < 0.08
    for field in ("exposure_ev", "saturation", "blur_sigma", "vignetting", "read_noise"):
        assert np.std([getattr(x, field) for x in sn]) > 0
    wb = np.array([x.white_balance for x in sn])
    assert wb[:, 0].std() > 0.03 and wb[:, 2].std() > 0.03 and np.all(wb[:, 1] == 1)
    linear = np.array([x.linear for x in sn])
    assert abs(linear.mean() - DEFAULT.sensor.linear_p) < 0.08
    ev = np.array([x.exposure_ev for x in sn])
    assert ev[linear].mean() > ev[~linear].mean() + 0.2  # exposed for the shade


def test_a_linear_response_burns_out_highlights():
    scene = next(s for s in (sample_scene(np.random.default_rng(seed)) for seed in range(200))
                 if s.light.time == "day" and not s.light.overcast)
    frames = {lin: render(replace(scene, sensor=replace(scene.sensor, linear=lin, exposure_ev=0.5)))
              for lin in (False, True)}
    clipped = {lin: float((f.sample.image.max(axis=-1) == 255).mean()) for lin, f in frames.items()}
    assert clipped[True] > clipped[False] + 0.02


def test_roads_vary(scenes):
    assert {s.surroundings.setting for s in scenes} == set(SETTINGS)
    lanes = [len(s.road.lanes) for s in scenes]
    assert min(lanes) == 1 and max(lanes) >= 6
    assert 0.3 < frac(scenes, lambda s: any(s.road.oncoming)) < 0.95
    assert 0.1 < frac(scenes, lambda s: s.road.left_hand) < 0.3
    assert frac(scenes, lambda s: s.road.median is not None) > 0.05
    kinds = {m.kind for s in scenes for m in s.road.markings}
    assert kinds == {"none", "solid", "dashed", "double", "solid_dashed", "dashed_solid"}
    assert {m.yellow for s in scenes for m in s.road.markings} == {True, False}
    assert {s.road.surface for s in scenes} == {"asphalt", "concrete"}
    for field in ("cracks", "patches", "seams", "paint_gaps"):
        assert 0.2 < frac(scenes, lambda s, f=field: getattr(s.road, f) > 0) < 0.8
    assert np.std([s.road.paint_fade for s in scenes]) > 0.1
    assert np.std([s.road.asphalt[1] for s in scenes]) > 15
    assert np.std([s.curvature for s in scenes]) > 0.0005
    for s in scenes:  # the camera drives in a lane of its own direction
        assert not s.road.oncoming[s.road.ego_lane]


def test_surroundings_vary(scenes):
    kinds = {p.kind for s in scenes for p in s.props}
    assert kinds == {"tree", "conifer", "building", "lamp", "pole", "sign", "bush"}
    rails = {sd.rail for s in scenes for sd in s.surroundings.sides}
    assert rails == {"none", "guardrail", "concrete", "wall"}
    assert frac(scenes, lambda s: any(sd.kerb > 0 for sd in s.surroundings.sides)) > 0.2
    built = [sd for s in scenes if s.surroundings.setting in ("urban", "suburban")
             for sd in s.surroundings.sides]
    walls = [sd for sd in built if sd.rail == "wall"]
    assert abs(len(walls) / len(built) - DEFAULT.surround.urban_wall_p) < 0.08
    pale = np.mean([min(sd.rail_color) > 200 for sd in walls])
    assert abs(pale - DEFAULT.surround.bright_wall_p) < 0.15
    assert {sd.verge for s in scenes for sd in s.surroundings.sides} == {
        "grass", "dry", "dirt", "gravel", "snow", "pavement"}
    assert {s.surroundings.skyline for s in scenes} == {"hills", "treeline", "city", "flat"}


def test_traffic_varies(scenes):
    vehicles = [v for s in scenes for v in s.vehicles]
    assert {v.shape for v in vehicles} == {*SHAPES, "person"}
    assert all((v.cls == TRUCK) == (v.shape in ("bus", "truck")) for v in vehicles)
    assert all((v.cls == PEDESTRIAN) == (v.shape == "person") for v in vehicles)
    parked = [v for v in vehicles if v.parked]
    assert parked and all(v.cls == 0 and v.speed == 0 for v in parked)  # parked cars are cars
    assert any(v.oncoming and not v.parked and v.cls != PEDESTRIAN for v in vehicles)
    assert len({v.color for v in vehicles}) > len(vehicles) // 2


def test_concerns_draw_from_their_own_rngs():
    """Changing one concern's sampler leaves every other concern's draw as it was."""
    night = Randomization(light=LightParams(time_p=(0.0, 0.0, 1.0)))
    narrow = Randomization(camera=CameraParams(hfov_deg=(40.0, 41.0)))
    for seed in range(20):
        a = sample_scene(np.random.default_rng(seed))
        b = sample_scene(np.random.default_rng(seed), params=night)
        c = sample_scene(np.random.default_rng(seed), params=narrow)
        assert b.light.time == "night"
        assert (a.camera, a.road, a.vehicles, a.props) == (b.camera, b.road, b.vehicles, b.props)
        assert replace(a.sensor, bloom=0) == replace(b.sensor, bloom=0)  # night glare is stronger
        assert (a.road, a.vehicles, a.light, a.weather) == (c.road, c.vehicles, c.light, c.weather)
        assert c.camera.fx > a.camera.fx * 0.99 or a.camera.fx > 1500


def test_a_given_camera_keeps_its_intrinsics():
    cam = Camera(width=1280, height=720, fx=1400.0, fy=1400.0, cx=650.0, cy=350.0)
    scene = sample_scene(np.random.default_rng(3), camera=cam)
    c = scene.camera
    assert (c.fx, c.fy, c.cx, c.cy) == (1400.0, 1400.0, 650.0, 350.0)
    f = render(replace(scene, props=(), vehicles=scene.vehicles[:2]))
    assert f.sample.camera == scene.camera


def test_built_up_sides_get_avenues_of_large_street_trees(scenes):
    """About ``avenue_p`` of urban / suburban scenes line a side with a row of large trees at
    near-regular gaps; nowhere else is a tree that large."""
    sp = DEFAULT.surround
    big = sp.avenue_crown[0] * 0.85 * 2  # the smallest avenue crown's diameter
    built = [s for s in scenes if s.surroundings.setting in ("urban", "suburban")]
    rows = []
    for s in built:
        for sign in (-1, 1):
            trees = sorted(p.s for p in s.props if p.kind == "tree" and p.size[0] >= big and p.x * sign > 0)
            if len(trees) >= 5:
                rows.append(np.diff(trees))
    share = len(rows) / (2 * len(built))
    assert share > sp.avenue_p * 0.6, share
    # gaps of one spacing, or two where a tree is missing (plus the scattered trees' rare big ones)
    gaps = np.concatenate(rows)
    assert np.mean(gaps < sp.avenue_gap[1] * 1.1 * 2 + 2) > 0.95
    assert np.median(gaps) > sp.avenue_gap[0] * 0.8
    elsewhere = [p for s in scenes if s.surroundings.setting in ("rural", "highway") for p in s.props
                 if p.kind == "tree"]
    assert max(p.size[0] for p in elsewhere) <= 7.0 + 1e-6


def test_tree_shadows_hold_sun_flecks():
    """A crown's shadow on the road is lit in about ``canopy_light`` of its area, in flecks fixed
    to the ground; no pixel outside the shadow changes."""
    from edge_mtl.data.world import geometry
    from edge_mtl.data.world.effects import dapple

    base = sample_scene(np.random.default_rng(3))
    cam = base.camera
    rays = geometry.rays(cam, 0.0, 0.0)
    mask = np.zeros((cam.height, cam.width), np.uint8)
    mask[int(cam.height * 0.7):, :] = 255  # road just ahead of the car
    for light in (0.1, 0.3):
        scene = replace(base, surroundings=replace(base.surroundings, canopy_light=light))
        out = dapple(scene, rays, mask)
        assert np.all(out[mask == 0] == 0)
        lit = 1.0 - out[mask > 0].astype(np.float64) / 255.0
        assert abs(lit.mean() - light) < 0.08, (light, lit.mean())
        assert 0.02 < np.mean(lit > 0.99) < light + 0.05  # whole flecks, not a uniform dimming
    # the ego car drives 1 m on: the flecks stay on the ground, so the image changes
    moved = dapple(replace(base, travelled=base.travelled + 1.0), rays, mask)
    assert not np.array_equal(moved, dapple(base, rays, mask))
