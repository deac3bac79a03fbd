"""Light, weather and sensor effects.

Light: the sun (direction, colour), sky light, cast shadows of objects on the ground (shadow
polygons filled in image space: exact for ground pixels), contact shadows, ego low beams and
street-lamp pools at night, and the sky (gradient, clouds, sun glow). Weather: fog and haze by
depth (applied where `render` composes the radiance), rain streaks. Sensor: auto exposure with
an EV offset, white balance, vignetting, bloom and lens flare, a filmic tone curve, saturation,
read and shot noise, optics and motion blur, a lower-resolution sensor, JPEG. None of it
touches the labels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from edge_mtl.data.world import geometry
from edge_mtl.data.world.materials import lin, sample, texture
from edge_mtl.data.world.scene import Scene

SKY_DISTANCE = 300.0  # metres of fog the sky is seen through


def sun_direction(scene: Scene) -> np.ndarray:
    """Unit vector towards the sun in the road frame (Y down)."""
    lt = scene.light
    el, az = lt.sun_elevation, lt.sun_azimuth
    return np.array([np.cos(el) * np.sin(az), -np.sin(el), np.cos(el) * np.cos(az)], np.float64)


def irradiance(scene: Scene) -> np.ndarray:
    """Light on a level white surface (ambient + sun): the scale of the scene's brightness."""
    lt = scene.light
    return np.asarray(lt.ambient, np.float32) + np.asarray(lt.sun, np.float32) * max(
        0.0, float(np.sin(lt.sun_elevation)))


def sky_radiance(scene: Scene, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Planar linear radiance [3, n] of the sky along the given ray directions."""
    lt = scene.light
    inv = 1.0 / np.sqrt(dx * dx + dy * dy + dz * dz)
    elev = np.clip(-dy * inv, 0.0, 1.0)  # sine of the elevation
    level = irradiance(scene) * np.float32(lt.sky_gain)
    w = np.sqrt(np.minimum(elev * np.float32(1 / 0.45), 1.0))
    hor, zen = lin(lt.sky_horizon) * level, lin(lt.sky_zenith) * level
    out = np.empty((3, dx.size), np.float32)
    for c in range(3):
        out[c] = hor[c] + (zen[c] - hor[c]) * w
    if lt.clouds > 0:
        height = np.maximum(-dy, 0.02 / inv)
        cu = dx / height * 40.0 + np.float32(scene.texture_seed % 997)
        cv = dz / height * 40.0 + np.float32(scene.travelled * 0.05)
        c = sample(texture("clouds"), cu, cv)
        if lt.overcast:
            cover = 0.6 + 0.4 * np.clip(c * 0.3 + 0.5, 0, 1) * (1 - 0.5 * w)
        else:
            cover = np.clip((c - (1.4 - 2.6 * lt.clouds)) * 0.8, 0.0, 1.0) * np.minimum(elev * 8.0, 1.0)
        cloud = level * lin((225, 225, 225) if lt.time == "day" else lt.sky_horizon) * (
            1.0 if lt.time == "day" else 0.8)
        shade = cover * (0.85 + 0.15 * c)
        for ch in range(3):
            out[ch] += (cloud[ch] * shade) - out[ch] * cover
    if lt.sun_elevation > -0.05 and not lt.overcast:
        sd = sun_direction(scene).astype(np.float32)
        cosang = (dx * sd[0] + dy * sd[1] + dz * sd[2]) * inv
        near = np.flatnonzero(cosang > 0.85)
        if near.size:
            e = cosang[near] - 1.0
            glow = 0.25 * np.exp(e * 40.0) + 40.0 * np.exp(e * 8000.0)
            sun = np.asarray(lt.sun, np.float32)
            for ch in range(3):
                out[ch][near] += glow * sun[ch]
    return out


# ------------------------------------------------------------------------------ shadows

def _ground_polygon_to_image(cam, rot, pts_xz: np.ndarray, h: float) -> np.ndarray | None:
    """A convex polygon on the road (X, Z vertices) -> image vertices, clipped to the near plane."""
    pts = np.stack([pts_xz[:, 0], np.full(len(pts_xz), h), pts_xz[:, 1]], -1)
    pc = geometry.rows_times(pts, rot)
    near = 0.1
    out = []
    n = len(pc)
    for i in range(n):  # Sutherland-Hodgman against z >= near
        a, b = pc[i], pc[(i + 1) % n]
        ina, inb = a[2] >= near, b[2] >= near
        if ina:
            out.append(a)
        if ina != inb:
            f = (near - a[2]) / (b[2] - a[2])
            out.append(a + f * (b - a))
    if len(out) < 3:
        return None
    p = np.array(out)
    u = cam.fx * p[:, 0] / p[:, 2] + cam.cx - 0.5
    v = cam.fy * p[:, 1] / p[:, 2] + cam.cy - 0.5
    big = 4.0 * max(cam.width, cam.height)
    return np.stack([np.clip(u, -big, big), np.clip(v, -big, big)], -1)


def shadow_polygon(points: np.ndarray, sun_dir: np.ndarray, h: float) -> np.ndarray | None:
    """The shadow on the road (Y = h) of a convex point set lit from ``sun_dir``: hull (X, Z)."""
    import cv2

    if sun_dir[1] >= -0.02:  # sun at or below the horizon
        return None
    s = -sun_dir  # the direction light travels
    k = (h - points[:, 1]) / s[1]
    proj = points[:, [0, 2]] + k[:, None] * s[[0, 2]][None, :]
    hull = cv2.convexHull(proj.astype(np.float32))
    return hull[:, 0, :].astype(np.float64)


def fill_polygons(cam, rot, polygons: list[np.ndarray], h: float, base: np.ndarray | None = None
                  ) -> np.ndarray:
    """Rasterise ground polygons (X, Z) into a uint8 image mask (255 inside, anti-aliased edges),
    on top of a copy of ``base`` when given."""
    import cv2

    mask = np.zeros((cam.height, cam.width), np.uint8) if base is None else base.copy()
    for poly in polygons:
        img_pts = _ground_polygon_to_image(cam, rot, poly, h)
        if img_pts is None:
            continue
        cv2.fillConvexPoly(mask, np.round(img_pts * 16).astype(np.int32), 255, cv2.LINE_AA, shift=4)
    return mask


FLECK_TEXELS_PER_M = 12.0  # the "leaves" noise's blobs are ~6 texels: sun flecks of ~0.5 m


def dapple(scene: Scene, rays: geometry.Rays, mask: np.ndarray) -> np.ndarray:
    """Sun flecks in a tree crown's shadow (``mask``: uint8, ground polygons in image space):
    where a ground-anchored noise (two octaves, turned by the scene's texture seed) is above the
    level that leaves ``scene.surroundings.canopy_light`` of the shadow lit, the shadow opens."""
    from statistics import NormalDist

    flat = mask.reshape(-1)
    idx = np.flatnonzero(flat)
    if idx.size == 0:
        return mask
    dx, _, dz = rays.flat()
    t = rays.inv_dy.reshape(-1)[idx] * np.float32(rays.cam.mount_height)  # the road plane's point
    x, z = dx[idx] * t, dz[idx] * t + np.float32(scene.travelled)
    turn = (scene.texture_seed % 360) * np.pi / 180
    noise = np.zeros(idx.size, np.float32)
    for k, (angle, scale) in enumerate(((turn, 1.0), (turn + 1.1, 0.61))):
        density = FLECK_TEXELS_PER_M / scale
        c, s = np.float32(np.cos(angle) * density), np.float32(np.sin(angle) * density)
        noise += sample(texture("leaves"), x * c - z * s + 97 * k, x * s + z * c)
    noise *= np.float32(1 / np.sqrt(2))
    level = np.float32(NormalDist().inv_cdf(1.0 - scene.surroundings.canopy_light))
    lit = np.clip((noise - level) * np.float32(3.0), 0.0, 1.0)
    out = flat.copy()
    out[idx] = (flat[idx] * (1.0 - lit)).astype(np.uint8)
    return out.reshape(mask.shape)


def soften(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    if px <= 1:
        return mask
    return cv2.blur(mask, (px, px))


# -------------------------------------------------------------------------- night lights

def headlights(scene: Scene, t: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray,
               ground: np.ndarray) -> np.ndarray:
    """Irradiance of the ego low beams at the hit points (compressed arrays): a beam that peaks
    just below the horizon, cut off above it, spread +-25 degrees, falling off as 1 / d^2."""
    norm = np.sqrt(dx * dx + dy * dy + dz * dz)
    dist = np.maximum(t * norm, 2.0)
    elev = -dy / norm
    lateral = dx / np.maximum(dz, 1e-3)
    beam = np.exp(-(lateral * lateral) * np.float32(1 / 0.16)) * np.clip((-elev - 0.004) * 50.0, 0.0, 1.0)
    e = (elev + 0.03) * np.float32(1 / 0.06)
    beam *= 0.15 + 0.85 * np.exp(-e * e)
    lamp_h = 0.7  # headlamps sit lower than the camera
    cos = np.where(ground, np.minimum(lamp_h / dist * 2.0, 1.0), 0.6)
    return np.float32(60.0) * beam * cos / (dist * dist)


def lamp_positions(scene: Scene) -> list[np.ndarray]:
    """Road-frame positions of the lit street-lamp heads."""
    from edge_mtl.data.world.render import prop_pose

    out = []
    if not scene.light.lamps:
        return out
    for prop in scene.props:
        if prop.kind != "lamp":
            continue
        z = scene.prop_z(prop)
        if z < -10 or z > 90:
            continue
        base, orient = prop_pose(scene, prop, z)
        head = base + orient @ np.array([-prop.size[2] + 0.25, -prop.size[1] - 0.1, 0.0])
        out.append(head)
    return out


# -------------------------------------------------------------------------------- weather

def rain_streaks(scene: Scene, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Streaks of falling rain over a display-space float image [H, W, 3] (0..1)."""
    import cv2

    h, w = img.shape[:2]
    count = int(scene.weather.rain * 1400)
    overlay = np.zeros((h, w), np.float32)
    wind = float(rng.normal(0.0, 0.25))
    x = rng.uniform(-50, w + 50, count)
    y = rng.uniform(-50, h, count)
    length = rng.uniform(12, 70, count)
    ang = wind + rng.normal(0, 0.04, count)
    x2, y2 = x + np.sin(ang) * length, y + np.cos(ang) * length
    level = rng.uniform(0.25, 0.7, count)
    for i in range(count):
        cv2.line(overlay, (int(x[i]), int(y[i])), (int(x2[i]), int(y2[i])), float(level[i]), 1, cv2.LINE_AA)
    overlay = cv2.GaussianBlur(overlay, (3, 3), 0.7)
    bright = float(np.clip(img[::16, ::16].mean() * 1.6 + 0.12, 0.2, 0.9))
    a = overlay[..., None] * np.float32(0.45)
    return img * (1 - a) + np.float32(bright) * a


# --------------------------------------------------------------------------------- sensor

_REF_EXPOSURE = 0.8  # the exposure of a typical sunny frame; gain above it amplifies noise


@lru_cache(maxsize=2)
def _noise_pool(h: int, w: int) -> np.ndarray:
    """Sensor noise (fixed per process; each frame crops a random window): per-pixel luma noise
    shared by the channels plus half-resolution chroma noise."""
    import cv2

    rng = np.random.default_rng(2024)
    luma = rng.standard_normal((h + 64, w + 64), dtype=np.float32)
    chroma = rng.standard_normal(((h + 64) // 2, (w + 64) // 2, 3), dtype=np.float32)
    chroma = cv2.resize(chroma, (w + 64, h + 64), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(chroma * 0.6 + luma[..., None])


@lru_cache(maxsize=4)
def _vignette(cam, strength: float) -> np.ndarray:
    h, w = cam.height, cam.width
    hd2 = (w / 2) ** 2 + (h / 2) ** 2
    ax = ((np.arange(w, dtype=np.float32) + 0.5 - cam.cx) ** 2 / hd2)[None, :]
    ay = ((np.arange(h, dtype=np.float32) + 0.5 - cam.cy) ** 2 / hd2)[:, None]
    return (1.0 - np.float32(strength) * (ax + ay)).astype(np.float32)


def expose(scene: Scene, planes: np.ndarray) -> tuple[np.ndarray | None, float]:
    """Auto exposure (log-average key, EV offset), white balance, vignetting, and the filmic
    tone curve (or a hard-clipped linear response) with display gamma, in place on planar
    linear radiance [3, H, W].

    Returns the bloom source (what exceeded white, at quarter resolution, [h/4, w/4, 3]) or
    None, and the gain over a sunny frame's exposure (it amplifies the noise)."""
    import cv2

    sn, cam = scene.sensor, scene.camera
    _, h, w = planes.shape
    sub = planes[:, ::8, ::8]
    lum = sub[0] * 0.114 + sub[1] * 0.587 + sub[2] * 0.299
    log_avg = float(np.exp(np.log(lum + 1e-4).mean()))
    key = {"day": 0.2, "dusk": 0.16, "night": 0.1}[scene.light.time]  # night stays dark
    k = float(np.clip(key / log_avg, 0.25, 4.0)) * 2.0 ** sn.exposure_ev
    vig = _vignette(cam, sn.vignetting) if sn.vignetting > 0 else None
    tmp = np.empty((h, w), np.float32)
    hot = []
    for c in range(3):
        a = planes[c]
        a *= np.float32(k * sn.white_balance[c])
        if vig is not None:
            a *= vig
        small = cv2.resize(a, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        hot.append(cv2.max(small - 1.0, 0.0))
        np.maximum(a, 0.0, out=a)
        if sn.linear:  # hard clip: highlights burn out
            np.minimum(a, 1.0, out=a)
        else:  # filmic shoulder
            np.add(a, 1.0, out=tmp)
            np.divide(a, tmp, out=a)
            a *= np.float32(1.25)
        np.sqrt(a, out=a)
    bloom = cv2.merge(hot)
    return (bloom if bloom.max() > 0 else None), max(1.0, k / _REF_EXPOSURE)


def sensor(scene: Scene, planes: np.ndarray, bloom: np.ndarray | None, gain: float,
           rng: np.random.Generator, sun_px: tuple[float, float] | None) -> np.ndarray:
    """Tone-mapped planar image [3, H, W] -> the camera's uint8 BGR image [H, W, 3]: bloom and
    lens flare, optics and motion blur, saturation, rain, noise, resolution, JPEG."""
    import cv2

    sn = scene.sensor
    _, h, w = planes.shape
    img = cv2.merge([planes[0], planes[1], planes[2]])
    if sun_px is not None:
        img = _flare(img, sun_px, scene, rng)
    s = float(sn.saturation)
    if abs(s - 1.0) > 0.02:
        wl = np.float32([0.114, 0.587, 0.299])
        sat = np.eye(3, dtype=np.float32) * s + (1 - s) * np.ones((3, 1), np.float32) * wl[None, :]
        cv2.transform(img, sat, dst=img)
    if scene.weather.rain > 0:
        img = rain_streaks(scene, img, rng)
    # Sensor noise (read + shot, amplified by the gain; chroma correlated, coarser).
    pool = _noise_pool(h, w)
    oy, ox = int(rng.integers(0, 64)), int(rng.integers(0, 64))
    sigma = (sn.read_noise + 0.3 * sn.shot_noise) * np.sqrt(gain)
    cv2.scaleAdd(pool[oy:oy + h, ox:ox + w], float(sigma), img, dst=img)
    cv2.max(img, 0.0, dst=img)
    out = cv2.convertScaleAbs(img, alpha=255.0)
    if bloom is not None:  # glow around what was brighter than white, tone-mapped, added in 8 bits
        glow = cv2.addWeighted(cv2.GaussianBlur(bloom, (0, 0), 3.0), 0.6,
                               cv2.GaussianBlur(bloom, (0, 0), 14.0), 0.4, 0)
        glow = cv2.convertScaleAbs(cv2.divide(glow, glow + 1.0), alpha=255.0 * float(sn.bloom))
        cv2.add(out, cv2.resize(glow, (w, h), interpolation=cv2.INTER_LINEAR), dst=out)
    # Optics and motion blur (on the 8-bit image: it also softens the noise, as demosaicing does).
    if sn.blur_sigma > 0.35:
        cv2.GaussianBlur(out, (0, 0), sn.blur_sigma, dst=out)
    if sn.motion_px >= 2:
        n = round(sn.motion_px) | 1
        kern = np.zeros((n, n), np.float32)
        c = n // 2
        dx, dy = np.cos(sn.motion_angle) * c, np.sin(sn.motion_angle) * c
        cv2.line(kern, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
        cv2.filter2D(out, -1, kern / kern.sum(), dst=out, borderType=cv2.BORDER_REFLECT)
    if sn.downscale < 0.99:  # a softer, lower-resolution sensor
        sw, sh = max(16, int(w * sn.downscale)), max(16, int(h * sn.downscale))
        out = cv2.resize(cv2.resize(out, (sw, sh), interpolation=cv2.INTER_AREA), (w, h),
                         interpolation=cv2.INTER_LINEAR)
    if sn.jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(sn.jpeg_quality)])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def _flare(img: np.ndarray, sun_px: tuple[float, float], scene: Scene,
           rng: np.random.Generator) -> np.ndarray:
    """Lens flare ghosts and a veiling glare from a sun in (or near) the view."""
    import cv2

    h, w = img.shape[:2]
    su, sv = sun_px
    cx, cy = w / 2, h / 2
    overlay = np.zeros_like(img)
    sun = np.asarray(scene.light.sun, np.float32) / max(float(np.max(scene.light.sun)), 1e-3)
    for f in (0.4, 0.7, 1.3, 1.7):
        px, py = su + (cx - su) * f, sv + (cy - sv) * f  # ghosts along the line through the centre
        r = int(rng.uniform(10, 60))
        col = tuple(float(v) for v in sun * rng.uniform(0.02, 0.08))
        cv2.circle(overlay, (int(px), int(py)), r, col, -1, cv2.LINE_AA)
    overlay = cv2.GaussianBlur(overlay, (0, 0), 4.0)
    veil = np.float32(0.04) * sun
    return img + overlay + veil[None, None, :]


def sun_in_view(scene: Scene) -> tuple[float, float] | None:
    """Pixel position of the sun when it is in front of the camera, up, and not overcast."""
    lt = scene.light
    if lt.overcast or lt.sun_elevation <= 0:
        return None
    sd = sun_direction(scene) * 1e4
    u, v, z = geometry.project(scene.camera, scene.rotation(), sd[None, :])
    if z[0] <= 0:
        return None
    cam = scene.camera
    if -0.2 * cam.width < u[0] < 1.2 * cam.width and -0.2 * cam.height < v[0] < 1.2 * cam.height:
        return float(u[0]), float(v[0])
    return None
