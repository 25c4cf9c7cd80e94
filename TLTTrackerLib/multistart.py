"""One lesion, several starts: the ``refine`` method with a wide coarse search and back-tracking selection.

    starts = the registration's starts in the order of ``registration_starts`` (with the pair's deformable
             field, :mod:`.deformable`; without it the affine estimate T(c) alone): ``"field_shape"``, the field
             start D(c) refined from the field's own local shape; ``"affine"``, T(c); ``"field"``, D(c) (these
             two refined from the region's local affine) + caller's candidates (e.g. a network prediction; made
             only when needed if given as a function) + coarse-search peaks that lie ≥
             ``min_jump_mm`` from every start already listed (:mod:`.coarse_search`, centred on the first start);
             with ``candidates_first`` the caller's candidates come first
    for each start (at most ``max_starts`` beyond the caller's and the field's): refine
             (:func:`~.refine.refine_center`; its first level runs ``featureless_iterations`` for a lesion in
             featureless surroundings, :mod:`.featureless`, and so does every check below), then track the result r
             back to the baseline with the one-level check (:func:`~.multistart_config.backtrack_config`),
             started at D⁻¹(r) (the field's inverse; the affine's T⁻¹(r) without a field): miss = |back - c|
             (mm); the search ends at the first result that back-tracks within ``accept_miss_mm`` (one
             refinement when the first start is good: a start is refined only when every earlier one fails that
             check); a coarse peak within ``min_jump_mm`` of a result already refined is skipped (the two
             agree: no second refinement)
    a small lesion (r ≤ ``snap_max_radius_mm``) none of whose results back-tracks within ``accept_miss_mm`` gets up
             to two more results without a refinement (``field_snap_start``): the field start D(c) snapped to the
             lesion's own template within ±``snap_mm`` and within ±``wide_snap_mm``, each with its miss
             (:func:`~.field_starts.snapped_field_starts`)
    where every result tracks back further than ``fallback_miss_mm`` and the first start fell back (its region
             did not match: :func:`~.refine.refine_center`'s fallback), keep that start as it is
    otherwise keep the start whose result has the smallest back-tracking miss (ties: the first listed); with the pair
             field and more than one result, the smallest selection score instead: the mean of that miss and
             the miss of a second check started at D⁻¹(r) without the local affine (a snapped result: its own
             miss alone), minus ``lesion_weight`` × the lesion template's NCC at r (``nodule_lesion_weight``
             for a small lesion, r ≤ ``snap_max_radius_mm``) (:func:`~.selection.selection_score`)
    a small lesion (r ≤ ``snap_max_radius_mm``) then snaps to its own template's best match within ``snap_mm``
             (:func:`~.lesion_template.snap_to_lesion`) when that match reaches ``snap_min_ncc`` and lies at least
             ``snap_min_move_mm`` away or matches ``snap_min_gain`` better than the result (otherwise the
             registration's own point is the more precise); with the pair field, the template in the field's local
             frame where that matches the result better, and ``field_frame_snap``'s move and gain
    a visible lesion larger than that whose result is doubtful (confidence below ``visible_snap``'s threshold)
             and lies off every blob of the lesion's contrast nearby moves onto the strongest such blob
             (:func:`~.visible_lesion.visible_snap`); a confident one too where the lesion is plainly not at the
             result and the lesion's template matches that blob better; the moved point is tracked back like a
             result, and its miss and agreement give its confidence, or the replaced result's where that is higher
    a visible lesion larger than that whose point lies on a blob of its contrast in the follow-up moves to that blob's
             centre, in the slice plane only where a scan has slices thicker than 4 mm
             (:func:`~.lesion_centre.lesion_centre`; the confidence stays)

The steps after the choice of start (the snaps, the centring, the flags and the confidence) are
:func:`~.last_steps.finish_point`.

Demons' own similarity after registration cannot pick the start: a deformable field matches wrong tissue well
too. The back-tracking miss can, because a wrong match started from a point far from ``c`` comes back far from
``c``. The confidence of the kept result is :func:`~.confidence.combined_confidence` (when the first start's
result did not end the search, lower the further the kept result lies from every other start's).

A lesion whose follow-up position (the affine estimate or the result) lies outside, or within
``edge_margin_mm`` of the edge of, the follow-up's coverage gets ``outside_followup``: its point is a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from .coarse_search import CoarseMatch, coarse_search
from .deformable import PairField
from .featureless import refine_for_surroundings
from .field_starts import field_prior, snapped_field_starts
from .geometry import Volume
from .last_steps import finish_point, snaps_to_template
from .lesion_template import lesion_match
from .matching import axis_resolution_mm
from .multistart_config import MultiStartConfig, backtrack_config
from .refine import refine_center
from .selection import selection_score
from .transforms import AffineTransform


@dataclass(frozen=True, eq=False)
class PointResult:
    """Follow-up centre ``(3,)`` LPS mm, confidence in [0, 1], flags, and per-start records in ``info``.

    ``info`` also holds what the confidence and its study use (mm unless named): ``backtrack_error_mm`` (the kept
    result's check miss), ``first_miss_mm`` (the first start's, unless it fell back), ``agreement_mm`` (the
    agreement term's distance, when it applies), ``field_gap_mm`` (result to D(c)), ``field_shift_mm``
    (|D(c) - T(c)|: the motion the pair field took up beyond the affine), ``edge_mm``, ``chosen_start`` and
    ``chosen_kind`` (its index and kind), ``visible_snap_mm`` and ``centre_move_mm`` (the moves of the last two
    steps, where they ran)."""

    center_lps_mm: np.ndarray
    confidence: float
    flags: tuple[str, ...]
    level_similarity: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)


def track_point(
    baseline: Volume,
    followup: Volume,
    center_lps_mm: np.ndarray,
    radius_mm: float,
    baseline_to_followup: AffineTransform,
    candidates_lps_mm: np.ndarray | Callable[[], np.ndarray] | None = None,
    config: MultiStartConfig = MultiStartConfig(),
    keep_maps: bool = False,
    backtrack: bool = True,
    pair_field: PairField | None = None,
) -> PointResult:
    """Track one baseline lesion centre ``(3,)`` LPS mm into the follow-up (module docstring).

    Args:
        candidates_lps_mm: ``(K, 3)`` extra follow-up start points, LPS mm (a learned prediction); they are
            refined after the registration's starts and before the coarse peaks, on top of ``max_starts``. Or a
            function that returns them, called only when no registration start tracks back within
            ``accept_miss_mm`` (``tlt+refine`` runs the network only for those lesions); those take the coarse
            peak's place within ``max_starts``.
        pair_field: the pair's deformable field (:func:`~.deformable.register_field`): a second start, and the
            back-tracking check's start; None: the affine alone.
        backtrack: off = refine from the affine start only, no selection, similarity-only confidence (the snap
            of a small lesion still applies).
    """
    c = np.asarray(center_lps_mm, dtype=float)
    affine_c = baseline_to_followup.apply(c)
    linear_inv = np.linalg.inv(baseline_to_followup.matrix)
    res = (axis_resolution_mm(baseline), axis_resolution_mm(followup))
    refine_config = refine_for_surroundings(config.refine, baseline, c, config.featureless_iterations,
                                            config.featureless_std_hu)
    coarse: CoarseMatch | None = None
    base = [affine_c]
    limit = config.max_starts
    base_kinds = ["affine"]
    if pair_field is not None:
        field_c = pair_field.to_followup(c)
        base_kinds = list(config.registration_starts)
        base = [affine_c if kind == "affine" else field_c for kind in base_kinds]
        limit += len(base) - 1
    late = candidates_lps_mm if callable(candidates_lps_mm) else None
    if late is not None and config.candidates_first:
        raise ValueError("candidates_first needs the candidates themselves, not a function that makes them")
    candidates: list[np.ndarray] = []
    if late is None and candidates_lps_mm is not None:
        limit += _add_distinct(candidates_lps_mm, base, candidates)
    starts = candidates + base if config.candidates_first else base + candidates
    # beside each start, what it is: one of multistart_config.START_KINDS, "candidate", "coarse" or "field_snap"
    kinds = ["candidate"] * len(candidates)
    kinds = kinds + base_kinds if config.candidates_first else base_kinds + kinds
    backward, back_config = baseline_to_followup.inverse(), backtrack_config(refine_config)
    records: list[dict[str, Any]] = []

    def back_miss(point_lps_mm: np.ndarray) -> float:
        """The one-level check: ``point_lps_mm`` tracked back to the baseline, its distance from ``c`` (mm)."""
        back_start = (pair_field.to_baseline(point_lps_mm) if pair_field is not None and config.field_backtrack
                      else None)
        back = refine_center(followup, baseline, point_lps_mm, radius_mm, backward, config=back_config,
                             start_lps_mm=back_start)
        return float(np.linalg.norm(back.center_lps_mm - c))

    n = 0
    while n < len(starts) and (backtrack or n == 0):
        prior = field_prior(pair_field, c, starts[n], linear_inv) if kinds[n] == "field_shape" else None
        r = refine_center(baseline, followup, c, radius_mm, baseline_to_followup, refine_config,
                          start_lps_mm=starts[n], keep_maps=keep_maps, prior=prior)
        miss = back_miss(r.center_lps_mm) if backtrack and not r.fell_back else float("nan")
        records.append({"start": n, "result": r, "miss_mm": miss})
        if config.accept_min_ncc > 0 and snaps_to_template(radius_mm, config) and miss < config.accept_miss_mm:
            records[-1]["lesion_ncc"] = lesion_match(baseline, followup, c, r.center_lps_mm, radius_mm, linear_inv,
                                                     res)
        n += 1
        consistent = _tracks_back(records, config)
        if consistent and (config.candidates_first or pair_field is not None):
            break
        if late is not None and n == len(starts) and backtrack and not consistent:
            # made only now, they take the coarse peak's place (tuning seeds: the coarse start added nothing after
            # the network's, docs/benchmarks.md §14)
            kinds += ["candidate"] * _add_distinct(late(), list(starts), starts)
            late = None
        if (n == len(starts) and backtrack and config.coarse is not None and coarse is None
                and len(starts) < limit and not consistent):
            # only now the wide search (lazy: most lesions back-track within accept_miss_mm from the first start)
            coarse = coarse_search(baseline, followup, c, starts[0], linear_inv, res, config.coarse)
            # the best coarse peak away from every start, unless a result already lies near it (they agree)
            far = [p for p in coarse.candidates_lps_mm
                   if min(np.linalg.norm(p - q) for q in starts) >= config.min_jump_mm]
            done = [x["result"].center_lps_mm for x in records]
            if far and min(np.linalg.norm(far[0] - q) for q in done) >= config.min_jump_mm:
                starts.append(far[0])
                kinds.append("coarse")
    if (config.field_snap_start and pair_field is not None and backtrack and snaps_to_template(radius_mm, config)
            and not _tracks_back(records, config)):
        field_record = next((x for x in records
                             if kinds[x["start"]] in ("field_shape", "field") and not x["result"].fell_back), None)
        if field_record is not None:
            for q, miss in snapped_field_starts(baseline, followup, c, radius_mm, pair_field, baseline_to_followup,
                                                res, config.snap_mm, config.wide_snap_mm,
                                                [x["result"].center_lps_mm for x in records], back_miss):
                starts.append(field_c)
                kinds.append("field_snap")
                records.append({"start": len(starts) - 1, "snapped": True,
                                "result": replace(field_record["result"], center_lps_mm=q), "miss_mm": miss})
    finite = [x for x in records if np.isfinite(x["miss_mm"])]
    if records[0]["result"].fell_back and finite and min(x["miss_mm"] for x in finite) > config.fallback_miss_mm:
        best = records[0]  # every result is known wrong: the pair's own estimate, as it is
    elif pair_field is not None and len(finite) > 1 and config.lesion_weight > 0:
        weight = config.nodule_lesion_weight if radius_mm <= config.snap_max_radius_mm else config.lesion_weight
        for x in finite:
            x["score"] = selection_score(baseline, followup, c, radius_mm, backward, linear_inv, x, pair_field,
                                         back_config, weight, res)
        best = min(finite, key=lambda x: (x["score"], x["start"]))
    else:
        best = min(records, key=lambda x: (np.inf if not np.isfinite(x["miss_mm"]) else x["miss_mm"], x["start"]))
    r = best["result"]
    center, confidence, flags, last = finish_point(baseline, followup, c, radius_mm, baseline_to_followup, best,
                                                   records, back_miss, res, coarse, config, backtrack, pair_field)
    info: dict[str, Any] = {"records": records, "coarse": coarse, "chosen_start": best["start"],
                            "starts_lps_mm": np.array(starts), "start_kinds": tuple(kinds),
                            "chosen_kind": kinds[best["start"]], **last}
    if np.isfinite(records[0]["miss_mm"]):
        info["first_miss_mm"] = records[0]["miss_mm"]
    if pair_field is not None:
        info["field_gap_mm"] = float(np.linalg.norm(center - field_c))
        info["field_shift_mm"] = float(np.linalg.norm(field_c - affine_c))
    if keep_maps and r.info.get("maps"):
        info["maps"] = r.info["maps"]
    return PointResult(center, confidence, tuple(flags), r.level_similarity, info)


def _tracks_back(records: list[dict[str, Any]], config: MultiStartConfig) -> bool:
    """Whether any result so far back-tracks within ``accept_miss_mm`` (the search may end); a small lesion's
    result, whose template NCC the loop measured, only where that reaches ``accept_min_ncc``."""
    return any(np.isfinite(x["miss_mm"]) and x["miss_mm"] < config.accept_miss_mm
               and x.get("lesion_ncc", 1.0) >= config.accept_min_ncc for x in records)


def _add_distinct(points_lps_mm: Any, known: list[np.ndarray], out: list[np.ndarray]) -> int:
    """Append to ``out`` each of ``points_lps_mm`` ``(K, 3)`` at least 1 mm from ``known`` and from those already
    appended; returns K (each counts towards the refinements allowed)."""
    points = np.asarray(points_lps_mm, dtype=float).reshape(-1, 3)
    added: list[np.ndarray] = []
    for p in points:
        if min(np.linalg.norm(p - q) for q in known + added) >= 1.0:
            added.append(p)
    out.extend(added)
    return len(points)

