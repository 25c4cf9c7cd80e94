"""A procedural CT-like thorax/upper-abdomen phantom with lesions, so demos and tests need no data.

Built from analytic shapes on the voxel grid (LPS mm, identity direction, grid centre at LPS (0, 0, 0)):
body ellipse (subcutaneous fat ≈ -100 HU over soft tissue ≈ 40 HU), two lungs (≈ -850 HU) above a random
diaphragm level with bright vessel-like tubes, heart (≈ 40 HU) and contrast-filled aorta (≈ 150 HU), liver
(≈ 60 HU) below the right lung, a vertebral column (cancellous ≈ 250 HU, cortex ≈ 900 HU, discs) and ribs
(≈ 600 HU), mild smooth texture and white noise. Lesions: solid nodules (20–60 HU) in the lungs and slightly
hypodense lesions (0–25 HU) in the liver, radii 3–15 mm, returned as ``Lesion("L1", centre, radius)``.

Patient axes in LPS: +x patient left, +y posterior, +z superior; arrays are (z, y, x).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from .geometry import Volume
from .lesions import Lesion

logger = logging.getLogger(__name__)


def _ellipsoid(x, y, z, center, semi_axes):
    """Normalised ellipsoid radius (< 1 inside), broadcast over the grid."""
    return np.sqrt(
        ((x - center[0]) / semi_axes[0]) ** 2
        + ((y - center[1]) / semi_axes[1]) ** 2
        + ((z - center[2]) / semi_axes[2]) ** 2
    )


def _soft(inside_distance_mm, width_mm: float = 0.6):
    """Partial-volume edge: 1 well inside, 0 well outside (logistic in the signed distance)."""
    return 1.0 / (1.0 + np.exp(-np.clip(inside_distance_mm / width_mm, -30, 30)))


def _add_tube(arr, mask, x, y, z, p0, p1, radius_mm, hu):
    """Paint a tube (capsule) from ``p0`` to ``p1`` into ``arr`` where ``mask`` (both (K, J, I)), in place."""
    lo, hi = np.minimum(p0, p1) - radius_mm - 2, np.maximum(p0, p1) + radius_mm + 2
    sel = [
        np.nonzero((c >= a) & (c <= b))[0]
        for c, a, b in zip((z.ravel(), y.ravel(), x.ravel()), lo[::-1], hi[::-1])
    ]
    if any(s.size == 0 for s in sel):
        return
    sl = tuple(slice(s[0], s[-1] + 1) for s in sel)
    zz, yy, xx = z[sl[0], :, :], y[:, sl[1], :], x[:, :, sl[2]]
    d = p1 - p0
    t = np.clip(((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1] + (zz - p0[2]) * d[2]) / max(d @ d, 1e-9), 0, 1)
    dist = np.sqrt((xx - p0[0] - t * d[0]) ** 2 + (yy - p0[1] - t * d[1]) ** 2 + (zz - p0[2] - t * d[2]) ** 2)
    w = _soft(radius_mm - dist) * mask[sl]
    arr[sl] += w * (hu - arr[sl])


def make_phantom(
    rng: np.random.Generator | int,
    shape_kji: tuple[int, int, int] = (80, 160, 160),
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 2.5),
    n_lesions: int = 5,
) -> tuple[Volume, list[Lesion]]:
    """Make a phantom CT and its lesions.

    Args:
        rng: Generator (consumed) or int seed; the same seed gives the same phantom.
        shape_kji: array shape (z, y, x).
        spacing_mm: voxel size along x, y, z (ITK order), mm.
        n_lesions: lesions to place (about 60 % in the lungs, the rest in the liver).

    Returns:
        (int16 HU :class:`Volume`, lesions with LPS centres and radii in mm).
    """
    rng = np.random.default_rng(rng)
    n_k, n_j, n_i = shape_kji
    sp = np.asarray(spacing_mm, dtype=float)
    origin = -sp * (np.array([n_i, n_j, n_k]) - 1) / 2.0
    x = (origin[0] + sp[0] * np.arange(n_i))[None, None, :]
    y = (origin[1] + sp[1] * np.arange(n_j))[None, :, None]
    z = (origin[2] + sp[2] * np.arange(n_k))[:, None, None]
    half = -origin  # half extent (x, y, z) in mm
    ax, ay = rng.uniform(0.80, 0.90) * half[0], rng.uniform(0.58, 0.68) * half[1]
    z_dia = rng.uniform(-0.4, -0.15) * half[2]

    arr = np.full(shape_kji, -1000.0, dtype=np.float32)
    body_r = np.sqrt((x / ax) ** 2 + (y / ay) ** 2) + 0 * z
    arr += _soft((1 - body_r) * ay) * (-100.0 + 1000.0)  # body filled with fat
    arr += _soft((0.9 - body_r) * ay) * (40.0 + 100.0)  # muscle / soft tissue inside the fat layer

    lungs = []
    for side in (-1, 1):
        c = np.array([side * 0.45 * ax, -0.05 * ay, z_dia + 0.55 * half[2] * 2])
        axes = np.array([0.34 * ax, 0.70 * ay, (c[2] - z_dia) * 1.05])
        lungs.append((c, axes))
    heart_c = np.array([0.12 * ax, -0.3 * ay, z_dia + 0.3 * half[2]])
    heart_ax = np.array([0.32 * ax, 0.45 * ay, 0.35 * half[2]])
    lung_w = np.zeros(shape_kji, np.float32)
    for c, axes in lungs:
        lung_w = np.maximum(lung_w, _soft((1 - _ellipsoid(x, y, z, c, axes)) * axes[0]))
    lung_w *= 1 - _soft((1 - _ellipsoid(x, y, z, heart_c, heart_ax)) * heart_ax[0])
    arr += lung_w * (-850.0 - arr)
    lung_mask = lung_w > 0.5

    vessels = rng.integers(12, 18)
    for n in range(vessels * 2):
        c, axes = lungs[n % 2]
        hilum = c + np.array([-np.sign(c[0]) * 0.5 * axes[0], 0.0, -0.1 * axes[2]])
        direction = rng.normal(size=3) * np.array([1.0, 1.0, 1.3])
        direction[0] = abs(direction[0]) * np.sign(c[0])
        p1 = hilum + direction / np.linalg.norm(direction) * rng.uniform(40, 90)
        mid = hilum + (p1 - hilum) * 0.5
        _add_tube(arr, lung_mask, x, y, z, hilum, mid, rng.uniform(2.0, 3.5), 40.0)
        _add_tube(arr, lung_mask, x, y, z, mid, p1, rng.uniform(1.0, 2.0), 40.0)

    arr += _soft((1 - _ellipsoid(x, y, z, heart_c, heart_ax)) * heart_ax[0]) * (40.0 - arr)
    liver_c = np.array([-0.35 * ax, 0.0, z_dia - 0.45 * half[2]])
    liver_ax = np.array([0.5 * ax, 0.7 * ay, 0.55 * half[2]])
    liver_w = (
        _soft((1 - _ellipsoid(x, y, z, liver_c, liver_ax)) * liver_ax[0]) * (z < z_dia + 5) * (1 - lung_w)
    )
    arr += liver_w * (60.0 - arr)
    aorta = (0.15 * ax, 0.35 * ay)
    arr += _soft(12.0 - np.sqrt((x - aorta[0]) ** 2 + (y - aorta[1]) ** 2) + 0 * z) * (150.0 - arr)

    spine = np.array([0.0, 0.62 * ay])
    r_sp = np.sqrt((x - spine[0]) ** 2 + (y - spine[1]) ** 2) + 0 * z
    disc = np.abs(((z - rng.uniform(0, 30)) % 30.0) - 15.0) > 12.5
    vert = _soft(18.0 - r_sp)
    arr += vert * (np.where(disc, 80.0, np.where(r_sp > 15.5, 900.0, 250.0)) - arr)
    arr += _soft(8.0 - np.sqrt((x - spine[0]) ** 2 + (y - spine[1] - 27.0) ** 2) + 0 * z) * (20.0 - arr)
    rib_z = (np.abs(((z - rng.uniform(0, 25)) % 25.0) - 12.5) < 4.0) & (z > z_dia - 40)
    rib = _soft(np.minimum(body_r - 0.88, 0.92 - body_r) * ay) * rib_z * (y > -0.2 * ay)
    arr += rib * (600.0 - arr)

    lesions: list[Lesion] = []
    n_lung = round(0.6 * n_lesions) if n_lesions > 1 else n_lesions
    for n in range(n_lesions):
        organ = "lung" if n < n_lung else "liver"
        for _ in range(500):
            r = rng.uniform(3.0, 15.0) if organ == "liver" else rng.uniform(3.0, 12.0)
            c, axes = lungs[rng.integers(2)] if organ == "lung" else (liver_c, liver_ax)
            p = c + rng.uniform(-1, 1, 3) * axes
            rho = _ellipsoid(p[0], p[1], p[2], c, axes)
            ok = rho < 1 - (r + 4) / axes.min() and p[2] > origin[2] + r + 10 and p[2] < -origin[2] - r - 10
            ok &= _ellipsoid(p[0], p[1], p[2], heart_c, heart_ax) > 1 + (r + 4) / heart_ax.min()
            ok &= organ == "lung" or p[2] < z_dia - r - 3
            if ok and all(np.linalg.norm(p - q.center_lps_mm) > r + q.radius_mm + 10 for q in lesions):
                break
        else:
            continue
        hu = rng.uniform(20, 60) if organ == "lung" else rng.uniform(0, 25)
        stretch = rng.uniform(0.85, 1.15, 3)
        stretch /= np.prod(stretch) ** (1 / 3)  # same volume as the sphere of radius r
        d = np.sqrt(
            ((x - p[0]) / stretch[0]) ** 2 + ((y - p[1]) / stretch[1]) ** 2 + ((z - p[2]) / stretch[2]) ** 2
        )
        arr += _soft(r - d, 0.5) * (hu - arr)
        lesions.append(Lesion(f"L{len(lesions) + 1}", p, float(r)))

    tex = ndimage.gaussian_filter(rng.standard_normal(shape_kji, dtype=np.float32), (0.8, 1.5, 1.5))
    tex *= 1.0 / max(float(tex.std()), 1e-6)
    inside = arr > -950
    arr += tex * np.where(lung_w > 0.5, 25.0, 10.0) * inside
    arr += rng.standard_normal(shape_kji, dtype=np.float32) * 8.0
    volume = Volume(np.clip(np.rint(arr), -1024, 3071).astype(np.int16), origin, sp, np.eye(3))
    logger.debug("phantom %r with %d lesions", volume, len(lesions))
    return volume, lesions
