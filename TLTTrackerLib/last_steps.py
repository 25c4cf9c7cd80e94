"""The kept result's last steps and its verdict, once :func:`~.multistart.track_point` has chosen a start.

    a small lesion (r ≤ ``snap_max_radius_mm``) snaps to its own template's best match
             (:func:`~.lesion_template.snap_to_lesion`) where that match is strong and either far or clearly better;
             the template in the affine's frame or the pair field's local one, whichever matches the result better
             (``field_frame_snap``)
    the point gets its flags (``low_similarity``, ``backtrack_mismatch``, ``outside_followup``) and its confidence
             (:func:`~.confidence.combined_confidence`)
    a doubtful visible lesion off every blob of its contrast, or a confident one plainly off the lesion whose
             template matches the look-alike better, moves onto its look-alike
             (:func:`~.visible_lesion.visible_snap`), tracked back and judged again (its confidence not below the
             replaced result's)
    a visible lesion on its blob moves to the blob's centre (:func:`~.lesion_centre.lesion_centre`; the confidence
             stays)

The rules and their tuning are :mod:`.multistart`'s (module docstring) and docs/benchmarks.md §10–§32; this module
only keeps them apart from the search for starts.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .coarse_search import CoarseMatch
from .confidence import BACKTRACK_MIN_MM, LESION_MATCH_MAX_RADIUS_MM, combined_confidence, nearest_edge_mm
from .deformable import PairField
from .geometry import Volume
from .lesion_centre import lesion_centre
from .lesion_template import lesion_match, snap_to_lesion
from .multistart_config import MultiStartConfig
from .transforms import AffineTransform, linear_scale
from .visible_lesion import visible_snap


def finish_point(
    baseline: Volume,
    followup: Volume,
    center_lps_mm: np.ndarray,
    radius_mm: float,
    baseline_to_followup: AffineTransform,
    best: dict[str, Any],
    records: list[dict[str, Any]],
    back_miss: Callable[[np.ndarray], float],
    resolution_mm: tuple[np.ndarray, np.ndarray],
    coarse: CoarseMatch | None,
    config: MultiStartConfig,
    backtrack: bool,
    pair_field: PairField | None = None,
) -> tuple[np.ndarray, float, list[str], dict[str, Any]]:
    """The final point ``(3,)`` LPS mm of the chosen record ``best`` (one of ``records``, :mod:`.multistart`'s
    per-start records), its confidence, flags and the ``info`` entries of these steps: ``edge_mm``,
    ``agreement_mm``, ``backtrack_error_mm``, ``lesion_ncc``, ``snap_mm``, ``visible_snap_mm``, ``centre_move_mm``
    (each where it applies). ``back_miss``: the one-level back-tracking check of a follow-up point (mm);
    ``resolution_mm``: per-axis x, y, z resolution of baseline and follow-up; ``pair_field``: the pair's deformable
    field (a small lesion's template frame, ``config.field_frame_snap``)."""
    c = np.asarray(center_lps_mm, float)
    linear_inv = np.linalg.inv(baseline_to_followup.matrix)
    affine_c = baseline_to_followup.apply(c)
    r = best["result"]
    miss = best.get("check_miss_mm", best["miss_mm"])  # the selection score's (with a second check: their mean)
    center, lesion_ncc, snapped = _nodule_snap(baseline, followup, c, radius_mm, best, linear_inv, resolution_mm,
                                               config, backtrack, pair_field)
    scale = max(radius_mm, BACKTRACK_MIN_MM)

    def assess(point: np.ndarray, miss_mm: float, ncc: float | None, agree: float | None):
        """``(flags, confidence, edge_mm)`` of a kept point, its back-tracking miss and its other terms."""
        edge_mm = nearest_edge_mm(followup, affine_c, point)
        out = ["low_similarity"] if r.fell_back else []
        if backtrack and np.isfinite(miss_mm) and miss_mm > scale:
            out.append("backtrack_mismatch")
        if edge_mm < config.edge_margin_mm:
            out.append("outside_followup")
        conf = combined_confidence(
            similarity=r.confidence, miss_mm=miss_mm if backtrack else None, radius_mm=radius_mm,
            coarse_gap=coarse.gap if coarse is not None else None, edge_mm=edge_mm,
            edge_margin_mm=config.edge_margin_mm, fell_back=r.fell_back, mismatch="backtrack_mismatch" in out,
            lesion_ncc=ncc if backtrack else None, agreement_mm=agree)
        return out, conf, edge_mm

    agreement = agreement_mm(r.center_lps_mm, records, exclude=best)
    flags, confidence, edge = assess(center, miss, lesion_ncc, agreement)
    info: dict[str, Any] = {}
    moved = None
    if config.visible_snap is not None and backtrack and "outside_followup" not in flags:
        moved = visible_snap(baseline, followup, c, radius_mm, center, confidence,
                             linear_scale(baseline_to_followup.matrix), edge, config.visible_snap,
                             lambda q: lesion_match(baseline, followup, c, q, radius_mm, linear_inv, resolution_mm))
    if moved is not None:
        # the look-alike is kept and judged like any result (its own back-tracking miss and agreement), but its
        # confidence is not below the result's it replaces: the check starts where the pair field puts the point,
        # and the field is what misled that result (no move on the tuning, report or held-out seeds turned a hit
        # into a miss; most moved points' checks gave below 0.2, docs/benchmarks.md §26)
        info["visible_snap_mm"] = float(np.linalg.norm(moved - center))
        center, miss, before = moved, back_miss(moved), confidence
        lesion_ncc = (lesion_match(baseline, followup, c, center, radius_mm, linear_inv, resolution_mm)
                      if radius_mm <= LESION_MATCH_MAX_RADIUS_MM else None)
        agreement = agreement_mm(center, records) if len(records) > 1 else None
        flags, confidence, edge = assess(center, miss, lesion_ncc, agreement)
        confidence = max(confidence, before)
    if config.lesion_centre is not None and "outside_followup" not in flags:
        centred = lesion_centre(baseline, followup, c, radius_mm, center, baseline_to_followup.matrix,
                                config.lesion_centre)
        if centred is not None:
            info["centre_move_mm"] = float(np.linalg.norm(centred - center))
            center = centred
    info["edge_mm"] = edge
    if agreement is not None:
        info["agreement_mm"] = agreement
    if backtrack and np.isfinite(miss):
        info["backtrack_error_mm"] = miss
    if lesion_ncc is not None:
        info["lesion_ncc"] = lesion_ncc
    if snapped:
        info["snap_mm"] = float(np.linalg.norm(center - r.center_lps_mm))
    return center, confidence, flags, info


def _nodule_snap(baseline: Volume, followup: Volume, c: np.ndarray, radius_mm: float, best: dict[str, Any],
                 linear_inv: np.ndarray, resolution_mm: tuple[np.ndarray, np.ndarray], config: MultiStartConfig,
                 backtrack: bool, pair_field: PairField | None = None) -> tuple[np.ndarray, float | None, bool]:
    """``(point (3,) LPS mm, the template's NCC there or None, whether it snapped)`` for the chosen result: a small
    lesion's snap to its own template (module docstring), and the NCC the confidence uses (in the affine's
    frame)."""
    r = best["result"]
    center = np.asarray(r.center_lps_mm, float)
    small = not r.fell_back and radius_mm <= LESION_MATCH_MAX_RADIUS_MM
    snap = not r.fell_back and snaps_to_template(radius_mm, config)
    at_result = best.get("lesion_ncc")  # the template's NCC at the result (selection_score may have measured it)
    if (snap or small and backtrack) and at_result is None:
        at_result = lesion_match(baseline, followup, c, center, radius_mm, linear_inv, resolution_mm)
    frame_inv, at_frame, min_move, min_gain = linear_inv, at_result, config.snap_min_move_mm, config.snap_min_gain
    if snap and pair_field is not None and config.field_frame_snap is not None:
        # the template in the field's local frame too; the one that matches the result better is snapped in
        field_inv = np.linalg.inv(pair_field.local_linear(c))
        in_field = lesion_match(baseline, followup, c, center, radius_mm, field_inv, resolution_mm)
        if in_field > at_result:
            frame_inv, at_frame = field_inv, in_field
        min_move, min_gain = config.field_frame_snap
    if snap:
        snapped, peak = snap_to_lesion(baseline, followup, c, center, radius_mm, frame_inv, resolution_mm,
                                       search_mm=config.snap_mm)
        # a weak peak is not the lesion, and a near one that matches hardly better is the template's noise
        # about a point already on it
        snap = peak >= config.snap_min_ncc and (float(np.linalg.norm(snapped - center)) >= min_move
                                                or peak - at_frame >= min_gain)
        if snap:
            # the confidence's NCC stays the affine frame's (the field's, high at wrong places too, took the ROC
            # AUC on the extreme and large-motion tuning nodules 0.88 -> 0.81; this 0.86: docs/benchmarks.md §32)
            return snapped, (peak if frame_inv is linear_inv else
                             lesion_match(baseline, followup, c, snapped, radius_mm, linear_inv, resolution_mm)), True
    return center, at_result if small and backtrack else None, False


def agreement_mm(point: np.ndarray, records: list[dict[str, Any]],
                 exclude: dict[str, Any] | None = None) -> float | None:
    """Distance (mm) from a kept point ``(3,)`` LPS mm to the nearest refined result but ``exclude`` (its own record)
    (:mod:`.confidence`'s agreement term); None when the first start's result ended the search or no other start
    was refined."""
    others = [np.linalg.norm(x["result"].center_lps_mm - point) for x in records
              if x is not exclude and not x.get("snapped") and not x["result"].fell_back]
    return float(min(others)) if others else None


def snaps_to_template(radius_mm: float, config: MultiStartConfig) -> bool:
    """Whether a lesion of this radius ends at its own template's best match (``snap_mm``)."""
    return config.snap_mm > 0 and radius_mm <= min(config.snap_max_radius_mm, LESION_MATCH_MAX_RADIUS_MM)
