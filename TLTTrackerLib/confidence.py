"""Confidence of a tracked point, and the "check" threshold shown to the user.

The confidence (in [0, 1]) multiplies what is known after tracking one lesion (:mod:`.multistart`):

    back-track  exp(-½ (miss / s)²): miss = distance (mm) from the baseline centre of the result tracked back,
                s = max(radius, BACKTRACK_MIN_MM) (the precision of the one-level check)
    similarity  clip(SIMILARITY_OFFSET + similarity, 0, 1), similarity = the refinement's mean per-level
                weighted NCC after registration: lowers the confidence only for a poor match (< 0.3)
    ambiguity   1 - exp(-gap / GAP_SCALE): gap = best minus second-best peak of the coarse search; off
                (GAP_SCALE = 0): it lowered the hit/miss separation on the tuning seeds
    lesion      clip(LESION_MATCH_OFFSET + ncc, 0, 1) for lesions of radius ≤ LESION_MATCH_MAX_RADIUS_MM:
                ncc = the lesion's own template match at the result (:func:`~.lesion_template.lesion_match`;
                for a snapped lesion, r ≤ 3 mm, the snap's peak, :func:`~.lesion_template.snap_to_lesion`); the
                region registration can match the tissue around a small lesion and miss the lesion (tuning seeds
                0–3, all scenarios: pooled AUC 0.808 -> 0.833 as run; for larger lesions it added at most 0.013:
                left out)
    agreement   exp(-½ (d / s)²) when the first start's result did not track back (within 2 mm; a small lesion's
                also not onto its template) and more starts were refined: d = distance (mm) from the kept result
                to the nearest other start's refined result, s as for the back-track term. Two starts that end
                at the same point corroborate it: on the tuning seeds 0–9 such lesions hit 95 % of the time when
                d < 3 mm, 71 % at 3–6 mm, 21 % at 6–10 mm (single-start lesions: 99 %); pooled AUC of the 470
                tuning lesions 0.888 -> 0.928, of the 473 of the ten report seeds 0.844 -> 0.882
                (docs/benchmarks.md §21)
    mismatch    a result flagged ``backtrack_mismatch`` (miss > s) is capped at MISMATCH_CAP: flagged means "check"
    edge        a point within ``edge_margin_mm`` of the follow-up's coverage (or outside) is capped at
                EDGE_CAP: its surroundings are cut off, so the match is a guess

On the ``extreme`` tuning pairs the ROC AUC (hit vs miss) was 0.84 for the back-tracking term alone, 0.70 for
similarity × back-tracking (the old confidence), 0.84 with the offset similarity.

A result whose confidence is below :data:`CHECK_THRESHOLD` is marked "check" in the CLI table, the Slicer table
and ``results.json`` (``needs_check``). The constants were chosen on the scenario suite's tuning seeds
(``docs/benchmarks.md``, "Hard cases: what was tried").
"""

from __future__ import annotations

import numpy as np

from .geometry import Volume

CHECK_THRESHOLD = 0.5  # below: "check" (docs/benchmarks.md: hit/miss separation at this threshold)
BACKTRACK_MIN_MM = 4.0  # the one-level back-tracking check is good to a few mm
GAP_SCALE = 0.0  # off (see above)
SIMILARITY_OFFSET = 0.7
EDGE_CAP = 0.3
MISMATCH_CAP = 0.45
FELL_BACK_CONFIDENCE = 0.1
LESION_MATCH_OFFSET = 0.3
LESION_MATCH_MAX_RADIUS_MM = 5.0


def needs_check(confidence: float) -> bool:
    """True when a result should be checked by eye: confidence below :data:`CHECK_THRESHOLD` or unknown (NaN)."""
    return not (np.isfinite(confidence) and confidence >= CHECK_THRESHOLD)


def edge_distance_mm(volume: Volume, point_lps_mm: np.ndarray) -> float:
    """Signed distance (mm) of a point to the edge of ``volume``'s coverage (voxel centres ± half a voxel):
    positive inside, negative outside; per axis of the voxel grid, the nearest face counts."""
    idx = volume.lps_to_index_kji(np.asarray(point_lps_mm, dtype=float))
    upper = np.asarray(volume.shape_kji, dtype=float) - 0.5
    spacing_kji = np.asarray(volume.spacing_mm, dtype=float)[::-1]
    inside_mm = np.minimum(idx + 0.5, upper - idx) * spacing_kji
    return float(np.min(inside_mm))


def nearest_edge_mm(volume: Volume, *points_lps_mm: np.ndarray) -> float:
    """The smallest :func:`edge_distance_mm` of ``points`` (e.g. a lesion's start and its result): below the
    edge margin the lesion is ``outside_followup`` (:mod:`.multistart`, the TLT network in :mod:`.tracker`)."""
    return min(edge_distance_mm(volume, p) for p in points_lps_mm)


def cap_at_edge(confidence: float, edge_mm: float, edge_margin_mm: float) -> float:
    """``confidence`` capped at :data:`EDGE_CAP` for a point within ``edge_margin_mm`` of the follow-up's edge
    (NaN, an unknown confidence, stays NaN)."""
    return min(confidence, EDGE_CAP) if edge_mm < edge_margin_mm else confidence


def combined_confidence(
    similarity: float,
    miss_mm: float | None,
    radius_mm: float,
    coarse_gap: float | None = None,
    edge_mm: float | None = None,
    edge_margin_mm: float = 5.0,
    fell_back: bool = False,
    mismatch: bool = False,
    lesion_ncc: float | None = None,
    agreement_mm: float | None = None,
) -> float:
    """The confidence of the module docstring; ``None`` leaves a term out (factor 1). ``agreement_mm``: the
    distance of the agreement term (mm)."""
    if fell_back:
        return FELL_BACK_CONFIDENCE
    conf = float(np.clip(SIMILARITY_OFFSET + similarity, 0.0, 1.0))
    scale = max(radius_mm, BACKTRACK_MIN_MM)  # the back-track and agreement terms' distance scale (mm)
    if miss_mm is not None:
        conf *= float(np.exp(-0.5 * (miss_mm / scale) ** 2)) if np.isfinite(miss_mm) else 0.0
    if lesion_ncc is not None and radius_mm <= LESION_MATCH_MAX_RADIUS_MM:
        conf *= float(np.clip(LESION_MATCH_OFFSET + lesion_ncc, 0.0, 1.0))
    if agreement_mm is not None:
        conf *= float(np.exp(-0.5 * (agreement_mm / scale) ** 2))
    if coarse_gap is not None and GAP_SCALE > 0:
        conf *= float(1.0 - np.exp(-max(coarse_gap, 0.0) / GAP_SCALE))
    if mismatch:
        conf = min(conf, MISMATCH_CAP)
    if edge_mm is not None:
        conf = cap_at_edge(conf, edge_mm, edge_margin_mm)
    return float(np.clip(conf, 0.0, 1.0))
