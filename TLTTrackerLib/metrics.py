"""Lesion-tracking metrics, numpy only, as the DLS benchmark defines them.

Primary (JimmyCai91/DLT ``evaluation.py``, Cai et al., CVPR 2021; method-notes §4.1):

- error ``e = ||(pred - gt) * target_spacing||`` in mm, with per-axis absolute errors |dx|, |dy|, |dz| in mm;
- radius ``r = max(target RECIST diameter in pixels) / 2 * target x-spacing`` in mm;
- CPM@Radius: fraction of cases with ``e / max(r, 1e-3) < 1`` (strict);
- CPM@10mm: fraction with ``e <= min(r, 10)`` (inclusive);
- MED: mean ± standard deviation of ``e`` (numpy's population std, ddof = 0: on DLS test.json's affine start
  it gives 9.88 mm as DLT reports; ddof = 1 would give 9.89).

Secondary, labelled as such wherever shown (the official TLT code's ``test()``, method-notes §4.2):
``lesion_size = sqrt(w² + h² + d²)`` of the target box in original voxels, CPM@10mm counts
``e < min(10, lesion_size)``, CPM@R counts ``e < lesion_size`` (both strict). They are far more lenient (a bare
affine start scores ~99% CPM@R); never compare them with the primary ones.

:func:`summarise` also serves non-DLS benchmarks: any errors and radii in mm. All CPM figures are fractions in
[0, 1], not percentages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TLT_CODE_DEFINITION = "TLT code test(): threshold = target box diagonal sqrt(w²+h²+d²) in voxels, strict <"


def errors_mm(
    pred_xyz: np.ndarray, gt_xyz: np.ndarray, spacing_xyz_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Errors of voxel-coordinate predictions.

    Args:
        pred_xyz, gt_xyz: ``(N, 3)`` positions (x, y, z) in target voxels.
        spacing_xyz_mm: ``(N, 3)`` (or ``(3,)``) target voxel spacing (x, y, z) in mm.

    Returns:
        (Euclidean error ``(N,)`` mm, absolute per-axis error ``(N, 3)`` mm in x, y, z).
    """
    diff = (np.asarray(pred_xyz, float) - np.asarray(gt_xyz, float)) * np.asarray(spacing_xyz_mm, float)
    return np.linalg.norm(diff, axis=-1), np.abs(diff)


def recist_radius_mm(diameters_px: np.ndarray, spacing_x_mm: np.ndarray) -> np.ndarray:
    """DLT's lesion radius, ``(N,)`` mm: max RECIST diameter (``(N, 2)`` pixels) / 2 × x-spacing (``(N,)`` mm)."""
    spacing = np.atleast_1d(np.asarray(spacing_x_mm, float))
    d = np.asarray(diameters_px, float).reshape(len(spacing), -1)
    return d.max(axis=1) / 2.0 * spacing


def tlt_lesion_size(boxes: np.ndarray) -> np.ndarray:
    """SECONDARY: the TLT code's ``lesion_size``, sqrt(w² + h² + d²) of ``(N, 6)`` boxes [x, y, z, w, h, d]."""
    b = np.asarray(boxes, float).reshape(-1, 6)
    return np.linalg.norm(b[:, 3:6], axis=1)


def _finite_1d(values: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(values, float).reshape(-1)
    bad = int(np.count_nonzero(~np.isfinite(v)))
    if bad:
        raise ValueError(f"{name} holds {bad} non-finite values; drop or score failed cases explicitly first")
    return v


def summarise(
    errors_mm: np.ndarray, radii_mm: np.ndarray, axis_errors_mm: np.ndarray | None = None
) -> dict[str, Any]:
    """Primary (DLT-definition) summary of per-case errors.

    Args:
        errors_mm: ``(N,)`` Euclidean errors in mm.
        radii_mm: ``(N,)`` lesion radii in mm (DLS: :func:`recist_radius_mm`).
        axis_errors_mm: optional ``(N, 3)`` absolute errors along x, y, z in mm.

    Returns:
        ``n``, ``cpm_10mm``, ``cpm_radius`` (fractions), ``med_mm``, ``med_std_mm`` (population std),
        ``median_mm``, ``p90_mm``, ``max_mm``; with ``axis_errors_mm`` also ``med_x_mm``, ``med_y_mm``,
        ``med_z_mm`` and their ``*_std_mm``. ``{"n": 0}`` for no cases. Non-finite errors (failed cases)
        count as misses in both CPMs, are counted in ``n_nonfinite``, and make the MED figures non-finite.
    """
    e = np.asarray(errors_mm, float).reshape(-1)
    r = np.asarray(radii_mm, float).reshape(-1)
    if e.shape != r.shape:
        raise ValueError(f"errors {e.shape} and radii {r.shape} differ in length")
    if e.size == 0:
        return {"n": 0}
    with np.errstate(invalid="ignore"):
        return _summary(e, r, axis_errors_mm)


def _summary(e: np.ndarray, r: np.ndarray, axis_errors_mm: np.ndarray | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n": int(e.size),
        "n_nonfinite": int(np.count_nonzero(~np.isfinite(e))),
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
        if len(a) != e.size:
            raise ValueError(f"axis errors {a.shape} and errors {e.shape} differ in length")
        for i, name in enumerate("xyz"):
            out[f"med_{name}_mm"] = float(a[:, i].mean())
            out[f"med_{name}_std_mm"] = float(a[:, i].std())
    return out


def tlt_code_summary(errors_mm: np.ndarray, lesion_size: np.ndarray) -> dict[str, Any]:
    """SECONDARY: the official TLT code's definitions.

    Args:
        errors_mm: ``(N,)`` errors (the TLT code measures crop voxels, which are mm on its 1 mm grid).
        lesion_size: ``(N,)`` target box diagonals in original voxels (:func:`tlt_lesion_size`).

    Returns ``n``, ``cpm_10mm`` (``e < min(10, size)``), ``cpm_radius`` (``e < size``) and ``definition``.
    """
    e = np.asarray(errors_mm, float).reshape(-1)
    s = np.asarray(lesion_size, float).reshape(-1)
    if e.shape != s.shape:
        raise ValueError(f"errors {e.shape} and lesion sizes {s.shape} differ in length")
    if e.size == 0:
        return {"n": 0, "definition": TLT_CODE_DEFINITION}
    return {
        "n": int(e.size),
        "cpm_10mm": float(np.mean(e < np.minimum(10.0, s))),
        "cpm_radius": float(np.mean(e < s)),
        "definition": TLT_CODE_DEFINITION,
    }


def paired_t_test(errors_a: np.ndarray, errors_b: np.ndarray) -> dict[str, Any]:
    """Paired t-test between two methods' errors ``(N,)`` mm on the same cases (``scipy.stats.ttest_rel``).

    Returns ``t``, ``p`` (two-sided), ``mean_difference_mm`` (mean of a − b; negative: a is better) and ``n``.
    Identical errors give ``t`` 0, ``p`` 1, difference exactly 0 and ``note`` "identical errors" (scipy: NaN);
    a constant non-zero difference gives ``t`` None, ``p`` 0 and ``note`` "constant difference".
    """
    from scipy.stats import ttest_rel

    a = _finite_1d(errors_a, "errors_a")
    b = _finite_1d(errors_b, "errors_b")
    if a.shape != b.shape or a.size < 2:
        raise ValueError(
            f"a paired t-test needs two equally long error lists of ≥ 2 cases, got {a.size} and {b.size}"
        )
    diff = a - b
    if np.all(diff == diff[0]):  # no spread: scipy gives NaN (identical) or ±inf; say what it means instead
        same = bool(diff[0] == 0)
        return {"t": 0.0 if same else None, "p": 1.0 if same else 0.0, "mean_difference_mm": float(diff[0]),
                "n": int(a.size), "note": "identical errors" if same else "constant difference"}
    res = ttest_rel(a, b)
    return {
        "t": float(res.statistic),
        "p": float(res.pvalue),
        "mean_difference_mm": float(np.mean(a - b)),
        "n": int(a.size),
    }
