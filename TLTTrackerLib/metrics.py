"""Lesion-tracking metrics, numpy only, exactly as the DLS benchmark defines them.

Primary (DLT's ``evaluation.py``, Cai et al., CVPR 2021):

- error ``e = ||(pred - gt) * target_spacing||`` in mm (per-axis errors x, y, z also reported);
- radius ``r = max(target RECIST diameter in pixels) / 2 * target x-spacing`` in mm;
- CPM@Radius: fraction with ``e / max(r, 1e-3) < 1`` (strict);
- CPM@10mm: fraction with ``e <= min(r, 10)``;
- MED: mean ± standard deviation of ``e`` (numpy's population std, ddof = 0, which reproduces DLT's figures).

Secondary, labelled as such wherever shown (the official TLT code's ``test()``, method-notes §4.2):
``lesion_size = sqrt(w² + h² + d²)`` of the target box in voxels, CPM@10mm counts ``e < min(10, lesion_size)``,
CPM@R counts ``e < lesion_size``. Comparisons in the literature mix the two; only the primary ones match DLT.

All CPM figures are fractions in [0, 1], not percentages.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def errors_mm(pred_xyz: np.ndarray, gt_xyz: np.ndarray, spacing_xyz_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-coordinate predictions and truths ``(N, 3)`` (x, y, z) with per-case spacing ``(N, 3)`` mm.

    Returns (Euclidean error ``(N,)`` mm, absolute per-axis error ``(N, 3)`` mm).
    """
    diff = (np.asarray(pred_xyz, float) - np.asarray(gt_xyz, float)) * np.asarray(spacing_xyz_mm, float)
    return np.linalg.norm(diff, axis=-1), np.abs(diff)


def recist_radius_mm(diameters_px: np.ndarray, spacing_x_mm: np.ndarray) -> np.ndarray:
    """DLT's lesion radius: max RECIST diameter (pixels) / 2 × x-spacing, ``(N,)`` mm."""
    d = np.asarray(diameters_px, float).reshape(len(np.atleast_1d(spacing_x_mm)), -1)
    return d.max(axis=1) / 2.0 * np.asarray(spacing_x_mm, float)


def summarise(
    errors: np.ndarray, radii_mm: np.ndarray, axis_errors_mm: np.ndarray | None = None
) -> dict[str, Any]:
    """DLT-definition summary of errors ``(N,)`` mm and radii ``(N,)`` mm.

    Returns ``n``, ``cpm_10mm``, ``cpm_radius``, ``med_mm``, ``med_std_mm``, ``median_mm``, ``p90_mm``, ``max_mm``
    and, with ``axis_errors_mm`` ``(N, 3)``, ``med_x_mm``, ``med_y_mm``, ``med_z_mm`` (+ their stds).
    """
    e = np.asarray(errors, float).reshape(-1)
    r = np.asarray(radii_mm, float).reshape(-1)
    if e.shape != r.shape:
        raise ValueError(f"errors {e.shape} and radii {r.shape} differ in length")
    if e.size == 0:
        return {"n": 0}
    out: dict[str, Any] = {
        "n": int(e.size),
        "cpm_10mm": float(np.mean(e <= np.minimum(r, 10.0))),
        "cpm_radius": float(np.mean(e / np.maximum(r, 1e-3) < 1.0)),
        "med_mm": float(e.mean()),
        "med_std_mm": float(e.std()),
        "median_mm": float(np.median(e)),
        "p90_mm": float(np.percentile(e, 90)),
        "max_mm": float(e.max()),
    }
    if axis_errors_mm is not None:
        a = np.asarray(axis_errors_mm, float).reshape(-1, 3)
        for i, name in enumerate("xyz"):
            out[f"med_{name}_mm"] = float(a[:, i].mean())
            out[f"med_{name}_std_mm"] = float(a[:, i].std())
    return out


def tlt_code_summary(errors: np.ndarray, lesion_size: np.ndarray) -> dict[str, Any]:
    """SECONDARY: the official TLT code's definitions (box diagonal threshold, strict, flat 10 mm)."""
    e = np.asarray(errors, float).reshape(-1)
    s = np.asarray(lesion_size, float).reshape(-1)
    return {
        "n": int(e.size),
        "cpm_10mm": float(np.mean(e < np.minimum(10.0, s))),
        "cpm_radius": float(np.mean(e < s)),
        "definition": "TLT code test(): lesion_size = target box diagonal (voxels), strict <",
    }


def paired_t_test(errors_a: np.ndarray, errors_b: np.ndarray) -> dict[str, float]:
    """Paired t-test between two methods' errors on the same cases (scipy.stats.ttest_rel).

    Returns ``t``, ``p`` (two-sided), ``mean_difference_mm`` (a − b) and ``n``.
    """
    from scipy.stats import ttest_rel

    a = np.asarray(errors_a, float)
    b = np.asarray(errors_b, float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("paired t-test needs two equally long error lists with at least 2 cases")
    res = ttest_rel(a, b)
    return {"t": float(res.statistic), "p": float(res.pvalue), "mean_difference_mm": float(np.mean(a - b)),
            "n": int(a.size)}
