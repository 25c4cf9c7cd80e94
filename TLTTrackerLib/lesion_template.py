"""The lesion's own template: how well it matches at a point (:func:`lesion_match`), and the last millimetre
(:func:`snap_to_lesion`).

The region registration (:mod:`.refine`) places a small lesion by the motion of the tissue around it; that is
robust, but the smooth field leaves a millimetre or two, which for a nodule of radius 1.5 mm is a miss. The
lesion itself fixes it: the baseline around the lesion centre ``c`` is the template,

    template(g) = baseline(c + A⁻¹ g)      g: offsets on a 0.5 mm grid (mm, LPS axes); A⁻¹: the registration's
                                           inverse linear part (the template in the follow-up's frame)
    weight(g)   = exp(-|g|² / 2σ²),        σ = max(2 mm, 1.2 r): the lesion and a rim of its surroundings

both images clipped to ``CLIP_HU`` and blurred to a common resolution per axis (:func:`~.matching.match_resolution`),
and the weighted NCC of the template and the follow-up at a point ``p`` is ``lesion_match``; ``snap_to_lesion``
moves ``p`` to the best-scoring shift within ±``search_mm`` (sub-voxel parabolic peak). Along an axis whose common
resolution is coarser than ``lock_above_mm`` (a 5–8 mm follow-up's z) the peak is too flat to place: the point
keeps its coordinate along it. A lesion that grows or shrinks about its centre keeps its centre where the
template's peak is (the template is symmetric under the weight).

Tuning seeds 0–3 (LIDC nodules of r ≤ 5 mm, the results of ``auto`` as input, docs/benchmarks.md §10): ±2.5 mm
with the lock at 3 mm took 42 → 49 of 57 nodules within their radius; without the lock, thick-slice lost 3.
"""

from __future__ import annotations

import numpy as np

from .geometry import Volume
from .matching import masked_ncc_map, match_resolution, patch_offsets_mm, sample_patch, subvoxel_at, weighted_ncc

SPACING_MM = 0.5
LOCK_ABOVE_MM = 3.0  # snap_to_lesion keeps the coordinate along an axis of coarser common resolution
CLIP_HU = (-1000.0, 200.0)


def template_sigma_mm(radius_mm: float) -> float:
    """σ of the template's Gaussian weight (mm): the lesion and a rim of its surroundings."""
    return max(2.0, 1.2 * radius_mm)


def coarse_grid_mm(radius_mm: float) -> float:
    """A grid for a wide search: σ/8, between 0.5 and 1 mm (a ±6 mm search for a large lesion on 0.5 mm took
    0.57 s, on this grid ≈ 0.1 s; the sub-voxel peak stays finer than the grid)."""
    return float(np.clip(template_sigma_mm(radius_mm) / 8.0, SPACING_MM, 1.0))


def _template(baseline: Volume, center_lps_mm, radius_mm: float, linear_inv: np.ndarray, res,
              s: float = SPACING_MM):
    """``(template (2h+1)³, weight (2h+1)³, h, common resolution (3,) x y z mm)``: the baseline lesion on the
    ``s`` mm grid (z, y, x), blurred to the common resolution."""
    sigma = template_sigma_mm(radius_mm)
    h = int(np.ceil(2.5 * sigma / s))
    template, t_in = sample_patch(baseline, np.asarray(center_lps_mm, float), (h, h, h), s, linear_inv,
                                  return_mask=True)
    res_b, res_f = res
    target = np.maximum(np.maximum(res_b, res_f), s)
    a = match_resolution(np.clip(template, *CLIP_HU), np.maximum(res_b, s), target, s).astype(np.float64)
    w = np.exp(-0.5 * np.sum(patch_offsets_mm((h, h, h), s) ** 2, axis=-1) / sigma**2) * t_in
    return a, w, h, target


def _image(followup: Volume, point_lps_mm, half: int, res_f, target,
           s: float = SPACING_MM) -> tuple[np.ndarray, np.ndarray]:
    """The follow-up ``(2 half + 1)³`` around the point on the ``s`` mm grid, blurred to ``target``, and its inside
    mask."""
    image, inside = sample_patch(followup, np.asarray(point_lps_mm, float), (half, half, half), s, None,
                                 return_mask=True)
    b = match_resolution(np.clip(image, *CLIP_HU), np.maximum(res_f, s), target, s)
    return b.astype(np.float64), inside


def lesion_match(
    baseline: Volume,
    followup: Volume,
    center_lps_mm: np.ndarray,
    point_lps_mm: np.ndarray,
    radius_mm: float,
    linear_inv: np.ndarray,
    resolution_mm: tuple[np.ndarray, np.ndarray],
    spacing_mm: float | None = None,
) -> float:
    """Weighted NCC (in [-1, 1]) of the baseline lesion at ``center_lps_mm`` and the follow-up at ``point_lps_mm``
    (module docstring; ``resolution_mm``: per-axis x, y, z mm of baseline and follow-up). A check of the lesion
    itself, where the region registration matched the tissue around it. ``spacing_mm``: the grid (None:
    :func:`coarse_grid_mm`, 0.5 mm up to r = 3.3 mm; a 12 mm nodule's template on 0.5 mm had 147³ nodes and took
    0.6–1 s, on 1 mm 0.07 s, and no tuning result changed, docs/benchmarks.md §17)."""
    s = coarse_grid_mm(radius_mm) if spacing_mm is None else float(spacing_mm)
    a, w, h, target = _template(baseline, center_lps_mm, radius_mm, linear_inv, resolution_mm, s)
    b, inside = _image(followup, point_lps_mm, h, resolution_mm[1], target, s)
    return float(np.clip(weighted_ncc(a, b, w * inside), -1.0, 1.0))


def snap_to_lesion(
    baseline: Volume,
    followup: Volume,
    center_lps_mm: np.ndarray,
    point_lps_mm: np.ndarray,
    radius_mm: float,
    linear_inv: np.ndarray,
    resolution_mm: tuple[np.ndarray, np.ndarray],
    search_mm: float = 2.5,
    lock_above_mm: float = LOCK_ABOVE_MM,
    spacing_mm: float = SPACING_MM,
    locked_search_mm: float | None = None,
) -> tuple[np.ndarray, float]:
    """The follow-up point ``(3,)`` LPS mm within ±``search_mm`` of ``point_lps_mm`` where the lesion's template
    matches best, and that match (weighted NCC, as :func:`lesion_match`); module docstring. The shift stays on
    the search box (a peak on its face is taken as it is). ``spacing_mm``: the grid of template and search
    (:func:`coarse_grid_mm` for a wide search). ``locked_search_mm``: the search at most this far when an axis is
    locked (the match then finds false peaks across the others: ``tlt``'s ±6 mm became ±2.5 mm there,
    docs/benchmarks.md §14)."""
    a, w, h, target = _template(baseline, center_lps_mm, radius_mm, linear_inv, resolution_mm, spacing_mm)
    locked = np.asarray(target, float)[::-1] > lock_above_mm  # z, y, x
    if locked_search_mm is not None and locked.any():
        search_mm = min(search_mm, locked_search_mm)
    k = int(round(search_mm / spacing_mm))
    b, inside = _image(followup, point_lps_mm, h + k, resolution_mm[1], target, spacing_mm)
    score = masked_ncc_map(a, b, w, inside)  # (2k+1)³, node (k, k, k) = no shift
    # along a locked axis only the no-shift plane counts (size 1 there: subvoxel_at leaves that axis alone)
    plane = score[tuple(slice(k, k + 1) if lock else slice(None) for lock in locked)]
    peak = np.array(np.unravel_index(int(np.argmax(plane)), plane.shape))
    shift_zyx = (subvoxel_at(plane, peak) + np.where(locked, k, 0) - k) * spacing_mm
    return np.asarray(point_lps_mm, float) + shift_zyx[::-1], float(np.clip(plane[tuple(peak)], -1.0, 1.0))
