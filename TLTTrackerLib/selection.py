"""Which of a lesion's several results to keep: the selection score of :func:`~.multistart.track_point`.

A deformable registration matches wrong tissue well too, so its own similarity cannot pick among the results of
several starts. Each result r is scored (smaller is better, mm):

    score = ½ (miss + miss_plain) - lesion_weight × ncc      a refined result
    score = miss - lesion_weight × ncc                        a snapped one (the record's ``"snapped"``)
    miss        the back-tracking check's miss (:mod:`.multistart`: r tracked back from D⁻¹(r), with the local
                affine), already in the record; for a snapped result the check made for it
                (:func:`~.field_starts.snapped_field_starts`: for the wide snap, the smaller of that and the
                template's own way back)
    miss_plain  a second check from D⁻¹(r) without the local affine: on the tuning seeds' small nodules the local
                affine's check came back 3–5 mm off from results within 1 mm of the truth
    ncc         the lesion template's NCC at r (:func:`~.lesion_template.lesion_match`): breaks near-ties in
                favour of the point that looks like the lesion

Chosen on the tuning seeds 0–3 from every result's signals (docs/benchmarks.md §11). A snapped result has no
``miss_plain``: where the whole-pair field is wrong, the check started at its inverse D⁻¹(r) and unable to travel
(no local affine) comes back as far off as the field is, from exactly the results that leave the wrong field; a
snapped nodule 1 mm from the truth came back 9.9 mm off and lost to the field's result 7.7 mm off (LIDC nodules of
the tuning seeds 0–9: 183 → 184 of 190 hits; docs/benchmarks.md §20).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .deformable import PairField
from .geometry import Volume
from .lesion_template import lesion_match
from .refine import RefineConfig, refine_center
from .transforms import AffineTransform


def selection_score(baseline: Volume, followup: Volume, center_lps_mm: np.ndarray, radius_mm: float,
                    backward: AffineTransform, linear_inv: np.ndarray, record: dict[str, Any],
                    pair_field: PairField, back_config: RefineConfig, lesion_weight: float,
                    res: tuple[np.ndarray, np.ndarray]) -> float:
    """The score of ``record``'s result (module docstring), mm. ``backward``: the follow-up → baseline affine;
    ``linear_inv`` ``(3, 3)``: the inverse of the baseline → follow-up affine's linear part; ``back_config``: the
    back-tracking check's refinement; ``res``: per-axis resolution (x, y, z mm) of baseline and follow-up.

    Adds to ``record`` the second miss (``miss_plain_mm``, not for a snapped result), the miss the score uses
    (``check_miss_mm``: the kept result's confidence and ``backtrack_error_mm`` use it too) and the NCC
    (``lesion_ncc``, unless the record has it already)."""
    r = record["result"].center_lps_mm
    if record.get("snapped"):
        record["check_miss_mm"] = record["miss_mm"]
    else:
        back = refine_center(followup, baseline, r, radius_mm, backward,
                             config=replace(back_config, affine_iterations=0), start_lps_mm=pair_field.to_baseline(r))
        record["miss_plain_mm"] = float(np.linalg.norm(back.center_lps_mm - center_lps_mm))
        record["check_miss_mm"] = 0.5 * (record["miss_mm"] + record["miss_plain_mm"])
    if "lesion_ncc" not in record:  # track_point measures it at a small lesion's result that tracks back
        record["lesion_ncc"] = lesion_match(baseline, followup, center_lps_mm, r, radius_mm, linear_inv, res)
    return record["check_miss_mm"] - lesion_weight * record["lesion_ncc"]
