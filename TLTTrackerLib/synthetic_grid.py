"""The follow-up grid of a synthetic pair (:mod:`TLTTrackerLib.synthetic`): new in-plane spacing and slice
thickness, a cropped field of view that keeps every lesion inside (or, with ``fov_edge_offset_mm_range``, puts
one z edge at or through a lesion). LPS mm; grids share the baseline's directions."""

from __future__ import annotations

from typing import Any

import numpy as np

from .geometry import Volume
from .transforms import AffineTransform, PointTransform


def _box_in_frame(volume: Volume, transform: AffineTransform, direction: np.ndarray) -> tuple:
    """Bounds ``(lo, hi)`` of ``transform(volume box)`` in the coordinates ``direction.T @ p`` (i, j, k)."""
    u = transform.apply(volume.corners_lps_mm()) @ direction
    return u.min(axis=0), u.max(axis=0)


def _followup_grid(
    baseline: Volume,
    forward_na: PointTransform,
    centers: np.ndarray,
    radii: np.ndarray,
    rng: np.random.Generator,
    cfg: Any,
) -> tuple[Volume, dict]:
    """Follow-up grid (baseline directions): new spacing and thickness, a cropped FOV holding every lesion."""
    d = baseline.direction
    thickness = float(rng.choice(np.asarray(cfg.slice_thickness_mm_choices, dtype=float)))
    spacing = np.append(baseline.spacing_mm[:2] * rng.uniform(*cfg.inplane_spacing_factor_range), thickness)
    inplane = rng.uniform(*cfg.fov_inplane_fraction_range)
    frac = np.array([inplane, inplane, rng.uniform(*cfg.fov_z_fraction_range)])
    length = baseline.extent_mm() * frac
    # where the mapped baseline covers the follow-up frame: images of the baseline's six faces
    n_k, n_j, n_i = baseline.shape_kji
    g = np.linspace(0, 1, 7)
    a, b = np.meshgrid(g, g, indexing="ij")
    a, b = a.ravel(), b.ravel()
    lo_valid, hi_valid = np.empty(3), np.empty(3)
    for axis in range(3):  # i, j, k
        faces = []
        for side in (0.0, 1.0):
            idx = np.zeros((a.size, 3))
            others = [x for x in range(3) if x != axis]
            idx[:, axis], idx[:, others[0]], idx[:, others[1]] = side, a, b
            idx *= np.array([n_i, n_j, n_k]) - 1
            faces.append(forward_na.apply(baseline.index_ijk_to_lps(idx)) @ d)
        lo_face, hi_face = sorted(faces, key=lambda f: f[:, axis].mean())
        lo_valid[axis], hi_valid[axis] = lo_face[:, axis].max(), hi_face[:, axis].min()
    u_c = centers @ d
    keep = radii[:, None] + cfg.fov_lesion_margin_mm + spacing  # voxel centres cover lesion + margin
    need_lo = (u_c - keep).min(axis=0) if len(centers) else np.full(3, np.inf)
    need_hi = (u_c + keep).max(axis=0) if len(centers) else np.full(3, -np.inf)
    mid = 0.5 * (lo_valid + hi_valid)
    start = np.empty(3)
    for axis in range(3):
        length[axis] = max(length[axis], need_hi[axis] - need_lo[axis], 4 * spacing[axis])
        if axis < 2:
            s = mid[axis] - length[axis] / 2 + rng.uniform(-cfg.fov_shift_mm, cfg.fov_shift_mm)
        else:
            s = rng.uniform(lo_valid[2], max(lo_valid[2], hi_valid[2] - length[2]))
        s = min(s, need_lo[axis]) if np.isfinite(need_lo[axis]) else s  # keep the lesions inside
        s = max(s, need_hi[axis] - length[axis]) if np.isfinite(need_hi[axis]) else s
        start[axis] = s
    size = np.maximum(1, np.ceil(length / spacing).astype(int))
    edge_info = {}
    if cfg.fov_edge_offset_mm_range is not None and len(centers):
        start[2], size[2], edge_info = _edge_cut(u_c[:, 2], keep[:, 2], lo_valid[2], hi_valid[2], size[2],
                                                 spacing[2], rng, cfg.fov_edge_offset_mm_range)
    origin = d @ (start + spacing / 2)
    grid = Volume(np.zeros(size[::-1], np.int8), origin, spacing, d)
    info = {"slice_thickness_mm": thickness, "spacing_mm": spacing.tolist(), "fov_fraction": frac.tolist()}
    return grid, {**info, "shape_kji": [int(v) for v in size[::-1]], **edge_info}


def _edge_cut(
    z: np.ndarray, keep: np.ndarray, lo_valid: float, hi_valid: float, size: int, step: float,
    rng: np.random.Generator, offset_range: tuple[float, float],
) -> tuple[float, int, dict]:
    """Follow-up z range (``start`` of the coverage, slice count) with one edge at a signed distance drawn from
    ``offset_range`` from the most extreme lesion of a random side (``> 0``: that centre lies inside by that
    much; ``< 0``: outside), the other edge keeping the other lesions (``z ± keep``) where the mapped baseline
    allows. ``z``: lesion centres along the grid's third axis (mm)."""
    high = bool(rng.integers(2))
    offset = float(rng.uniform(*offset_range))
    n = int(np.argmax(z) if high else np.argmin(z))
    others = np.arange(len(z)) != n
    if high:
        edge = z[n] + offset
        far = min((z - keep)[others].min() if others.any() else edge, edge - size * step)
        far = min(max(far, lo_valid), edge - 4 * step)
        count = int(np.ceil((edge - far) / step))
        start = edge - count * step
    else:
        edge = z[n] - offset
        far = max((z + keep)[others].max() if others.any() else edge, edge + size * step)
        far = max(min(far, hi_valid), edge + 4 * step)
        count = int(np.ceil((far - edge) / step))
        start = edge
    return start, count, {"fov_edge": {"lesion_index": n, "side": "superior" if high else "inferior",
                                       "offset_mm": offset}}
