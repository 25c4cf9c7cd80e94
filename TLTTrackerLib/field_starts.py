"""Starts made from the pair's deformable field (:mod:`.deformable`) beyond its plain start D(c), for
:func:`~.multistart.track_point`.

- :func:`field_prior`: the field's own shape around D(c), as the first level's starting field of a refinement
  (the ``"field_shape"`` start of ``MultiStartConfig.registration_starts``; docs/benchmarks.md §11, §19).
- :func:`snapped_field_starts`: for a small lesion none of whose refined results tracks back, D(c) snapped to the
  lesion's own template, as results without a refinement (``field_snap_start``, ``wide_snap_mm``):

      within ±snap_mm on 0.5 mm    near the cut edge of a follow-up the ±40 mm region registration moved field
                                   starts 1.4–2.5 mm off to 5–6 mm off (§15); its miss: the region check
      within ±wide_snap_mm on 1 mm where the field itself is 8–11 mm off a nodule under extreme motion (§17); its
                                   miss: the smaller of the region check and the template's own way back, the
                                   follow-up around the point, as a template (the affine's linear part), found
                                   in the baseline within ±wide_snap_mm of D⁻¹(q) (a region check started at
                                   D⁻¹(q), as far off as the field is there, came back 8–12 mm off from right
                                   points)

  Neither is held to ``snap_min_ncc``: they are only candidates, ranked by the selection score like the others
  (a tuning nodule's best result, 0.28 mm off, was the ±snap_mm one at NCC 0.09; §16).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .deformable import PairField
from .geometry import Volume
from .lesion_template import SPACING_MM, snap_to_lesion
from .transforms import AffineTransform


def field_prior(pair_field: PairField, center_lps_mm: np.ndarray, start_lps_mm: np.ndarray,
                linear_inv: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The pair field's displacement around ``start_lps_mm`` = D(c), as :func:`~.refine.refine_center`'s
    ``prior``: fixed offset ``g`` shows baseline point ``c + A⁻¹ g``, which the field puts at ``D(c + A⁻¹ g)``, so
    ``d(g) = D(c + A⁻¹ g) - D(c) - g`` (mm, x y z; zero at ``g = 0``)."""
    c, p0 = np.asarray(center_lps_mm, float), np.asarray(start_lps_mm, float)

    def prior(offsets_mm: np.ndarray) -> np.ndarray:
        return pair_field.to_followup(c + offsets_mm @ linear_inv.T) - p0 - offsets_mm

    return prior


def snapped_field_starts(
    baseline: Volume,
    followup: Volume,
    center_lps_mm: np.ndarray,
    radius_mm: float,
    pair_field: PairField,
    baseline_to_followup: AffineTransform,
    resolution_mm: tuple[np.ndarray, np.ndarray],
    snap_mm: float,
    wide_snap_mm: float,
    known_lps_mm: list[np.ndarray],
    back_miss: Callable[[np.ndarray], float],
) -> list[tuple[np.ndarray, float]]:
    """``[(point (3,) LPS mm, miss mm)]``: D(c) snapped within ±``snap_mm`` and within ±``wide_snap_mm`` (module
    docstring; 0: that one off), each kept only ≥ 1 mm from ``known_lps_mm`` (the results already refined) and
    from the other (nearer, it adds nothing: that result snaps there too). ``back_miss(point)``: the region
    check's miss (:func:`~.multistart.track_point`'s)."""
    c = np.asarray(center_lps_mm, float)
    start = pair_field.to_followup(c)
    linear = np.asarray(baseline_to_followup.matrix, float)
    linear_inv = np.linalg.inv(linear)
    out: list[tuple[np.ndarray, float]] = []
    for search_mm, grid_mm, way_back in ((snap_mm, SPACING_MM, False), (wide_snap_mm, 1.0, True)):
        if search_mm <= 0:
            continue
        q, _ = snap_to_lesion(baseline, followup, c, start, radius_mm, linear_inv, resolution_mm,
                              search_mm=search_mm, spacing_mm=grid_mm, locked_search_mm=snap_mm)
        if min(np.linalg.norm(q - p) for p in [*known_lps_mm, *(p for p, _ in out)]) < 1.0:
            continue
        miss = back_miss(q)
        if way_back:
            back, _ = snap_to_lesion(followup, baseline, q, pair_field.to_baseline(q), radius_mm, linear,
                                     resolution_mm[::-1], search_mm=search_mm, spacing_mm=grid_mm,
                                     locked_search_mm=snap_mm)
            miss = min(miss, float(np.linalg.norm(back - c)))
        out.append((q, miss))
    return out
