"""Visible synthetic lesions painted into a real CT: targets a radiologist would click, for the scenario suite.

The chest scenarios' POPI and TotalSegmentator cases carry six anatomical points each (DoG blob points of
:mod:`.sampling`, ``P1..P6``). Looked at (``docs/benchmarks.md`` §23), most are not lesions: points in homogeneous
liver or muscle, on the lung's or the skin's edge, inside a vertebral body. Nothing in the image marks where such a
point lies along the tissue around it, so tracking it measures the deformation prior, not lesion tracking. This
module adds what those volumes lack, lesions that can be seen, by the usual lesion-insertion approach of CAD
studies: a small ellipsoid of lesion-like intensity painted into the real image, which the synthetic pair
generator then moves and grows like any other lesion.

Two kinds, as in DeepLesion's lung and soft-tissue lesions (radii are equivalent-sphere radii, mm):

- ``L1..`` lung nodules: r 3–8, solid (mean −30..+50 HU), inside lung parenchyma: the 4 mm-smoothed image at
  −950..−700 HU and at least 12 mm (the largest r + 4 mm) from any tissue above −500 HU;
- ``S1..`` soft-tissue lesions: r 5–12, ±25..60 HU against the organ around them (hypo- or hyperdense): inside
  homogeneous soft tissue (4 mm-smoothed 0..120 HU, 6 mm standard deviation < 25 HU), at least 22 mm (the
  largest r + 10 mm) inside the body and 10 mm from bone (> 250 HU).

Shape: an ellipsoid with semi-axes r × U(0.8, 1.25) along a random orientation, a linear 1 mm edge. Intensity:
the image plus ``w · offset``, ``w`` the ellipsoid's 0..1 weight; a nodule's offset brings the 2 mm-smoothed lung to
its mean HU, so the scanner's noise texture stays; a soft-tissue lesion's offset is its contrast. Sites are drawn at
random (``rng``) at least ``min_separation_mm`` apart, from ``avoid`` too, and 25 mm from the volume's z ends.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .geometry import Volume
from .lesions import Lesion
from .resample import resample_to_spacing

EDGE_MM = 1.0
Z_MARGIN_MM = 25.0
LUNG_CLEARANCE_MM = 12.0  # a nodule site's distance from tissue above -500 HU: the largest r + 4 mm
BODY_DEPTH_MM = 22.0  # a soft-tissue site's depth inside the body: the largest r + 10 mm
BONE_CLEARANCE_MM = 10.0


def paint_lesions(volume: Volume, rng: np.random.Generator, n_lung: int = 3, n_total: int = 6,
                  avoid: Sequence[np.ndarray] = (), min_separation_mm: float = 40.0) -> tuple[Volume, list[Lesion]]:
    """``volume`` (HU) with up to ``n_lung`` nodules and soft-tissue lesions up to ``n_total`` lesions painted in
    (module doc).

    Returns the painted copy (same geometry and dtype; ``volume`` is not changed) and the lesions (LPS mm,
    equivalent radii), fewer where the volume has too few sites (a chest CT without lungs has no nodule site).
    """
    work = _working_copy(volume)
    lung_ok, soft_ok = _site_masks(work)
    picked = [np.asarray(p, float) for p in avoid]
    lesions: list[Lesion] = []
    array = np.array(volume.array, copy=True)
    for kind, mask in (("L", lung_ok), ("S", soft_ok)):
        count = n_lung if kind == "L" else n_total - len(lesions)
        made = 0
        candidates = np.argwhere(mask)
        for idx in candidates[rng.permutation(len(candidates))]:
            if made == count:
                break
            centre = work.index_kji_to_lps(idx.astype(float))
            if any(np.linalg.norm(centre - q) < min_separation_mm for q in picked):
                continue
            radius = rng.uniform(3.0, 8.0) if kind == "L" else rng.uniform(5.0, 12.0)
            if kind == "L":
                mean_hu = rng.uniform(-30.0, 50.0)
                offset = None
            else:
                mean_hu = None
                offset = rng.choice([-1.0, 1.0]) * rng.uniform(25.0, 60.0)
            axes = radius * rng.uniform(0.8, 1.25, 3)
            axes *= radius / float(np.prod(axes)) ** (1.0 / 3.0)  # equivalent-sphere radius = radius
            rotation = _random_rotation(rng)
            _paint_one(array, volume, centre, axes, rotation, mean_hu, offset)
            picked.append(centre)
            made += 1
            lesions.append(Lesion(f"{kind}{made}", centre, float(radius)))
    return volume.with_array(array), lesions


def _working_copy(volume: Volume) -> Volume:
    """A float32 copy at ≥ 3 mm for choosing sites (masks need no finer grid)."""
    arr = np.asarray(volume.array, np.float32)
    coarse = np.maximum(volume.spacing_mm, 3.0)
    vol = volume.with_array(arr)
    if np.any(coarse > volume.spacing_mm * 1.01):
        vol = resample_to_spacing(vol, coarse, dtype=np.float32)
    return vol


def _site_masks(work: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(K, J, I)`` masks of the working grid where a nodule / a soft-tissue lesion may sit."""
    from .sampling import tissue_maps

    arr = work.array
    t = tissue_maps(work, Z_MARGIN_MM)
    from_tissue = ndimage.distance_transform_edt(arr <= -500.0, sampling=work.spacing_mm[::-1])
    lung = t.z_ok & t.body & (t.mean4 > -950.0) & (t.mean4 < -700.0) & (from_tissue >= LUNG_CLEARANCE_MM)
    soft = (t.z_ok & (t.mean4 > 0.0) & (t.mean4 < 120.0) & (t.std6 < 25.0) & (t.depth >= BODY_DEPTH_MM)
            & (t.from_bone >= BONE_CLEARANCE_MM))
    return lung, soft


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3×3 rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _paint_one(array: np.ndarray, volume: Volume, centre: np.ndarray, axes: np.ndarray, rotation: np.ndarray,
               mean_hu: float | None, offset_hu: float | None) -> None:
    """Paints one ellipsoid into ``array`` ``(K, J, I)`` in place (module doc); exactly one of ``mean_hu`` (a
    nodule: the smoothed image is brought to it) and ``offset_hu`` (a soft-tissue lesion's contrast) is given."""
    reach = float(axes.max()) + 2.0 * EDGE_MM + 4.0
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float) * reach
    idx = volume.lps_to_index_kji(centre + corners)
    lo = np.maximum(np.floor(idx.min(0)).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(0)).astype(int) + 1, np.array(array.shape))  # a site lies inside: never empty
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    kk, jj, ii = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij")
    pts = volume.index_kji_to_lps(np.stack([kk, jj, ii], -1).reshape(-1, 3).astype(float))
    local = (pts - centre) @ rotation  # coordinates along the ellipsoid's axes, mm
    rho = np.sqrt(np.sum((local / axes) ** 2, axis=1))
    dist_mm = (rho - 1.0) * float(np.exp(np.mean(np.log(axes))))  # ≈ mm outside (+) / inside (−) the surface
    w = np.clip(0.5 - dist_mm / EDGE_MM, 0.0, 1.0).reshape(kk.shape)
    region = array[box].astype(np.float32)
    if mean_hu is not None:
        sigma = 2.0 / volume.spacing_mm[::-1]
        offset = mean_hu - ndimage.gaussian_filter(region, sigma, mode="nearest")
    else:
        offset = np.float32(offset_hu)
    painted = region + w * offset
    info = np.iinfo(array.dtype) if np.issubdtype(array.dtype, np.integer) else None
    if info is not None:
        painted = np.clip(np.rint(painted), info.min, info.max)
    array[box] = painted.astype(array.dtype)
