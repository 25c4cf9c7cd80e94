"""Coarse search + several refine starts: a lesion 25 mm from the affine estimate is found; extra candidate
starts (a learned prediction) are used; a lesion at the follow-up's edge is flagged, not trusted."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from textured_ct import textured_ct

from TLTTrackerLib.coarse_search import coarse_search
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.matching import axis_resolution_mm
from TLTTrackerLib.multistart import track_point
from TLTTrackerLib.multistart_config import MultiStartConfig
from TLTTrackerLib.resample import warp_volume
from TLTTrackerLib.transforms import AffineTransform


def _textured_ct(seed: int = 0) -> Volume:
    """Smooth random texture (-700 ± 900 HU) with a 6 mm soft-tissue blob at index (30, 60, 60), 1×1×2 mm."""
    return textured_ct(seed, (60, 120, 120), (1.0, 2.5, 2.5), 6.0)


@pytest.fixture(scope="module")
def shifted():
    """Follow-up = baseline translated by (4, -3, 2) mm; the 'registration' is off by (20, 14, -6) mm."""
    baseline = _textured_ct(3)
    truth = AffineTransform(np.eye(3), np.array([4.0, -3.0, 2.0]))
    followup = warp_volume(baseline, baseline, truth.inverse())
    wrong = AffineTransform(np.eye(3), truth.translation_mm + np.array([20.0, 14.0, -6.0]))
    centre = baseline.index_kji_to_lps([30, 60, 60])
    return baseline, followup, truth, wrong, centre


def _uniform_field(truth, wrong, offset_mm=(0.0, 0.0, 0.0)):
    """A uniform pair field on top of the ``wrong`` affine that takes up its error, ``offset_mm`` (x y z) short:
    D(c) = truth(c) - offset."""
    from TLTTrackerLib.deformable import PairField

    grid = Volume(np.zeros((20, 40, 40), np.float32), origin_lps_mm=[-80, -80, -80], spacing_mm=[4.0, 4.0, 8.0])
    u = (wrong.translation_mm - truth.translation_mm + np.asarray(offset_mm)).astype(np.float32)
    return PairField(wrong, np.broadcast_to(u, (20, 40, 40, 3)).copy(), grid)


def test_coarse_search_finds_a_start_25_mm_off(shifted):
    baseline, followup, truth, wrong, centre = shifted
    res = (axis_resolution_mm(baseline), axis_resolution_mm(followup))
    match = coarse_search(baseline, followup, centre, wrong.apply(centre), np.eye(3), res)
    target = truth.apply(centre)
    assert np.linalg.norm(wrong.apply(centre) - target) > 24
    assert np.linalg.norm(match.candidates_lps_mm[0] - target) < 4.0
    assert match.scores[0] > match.score_at_start + 0.2
    assert match.gap >= 0
    assert match.score_at(target) == pytest.approx(match.scores[0], abs=0.15)
    assert np.isnan(match.score_at(target + 200.0))


def test_track_point_refines_from_the_coarse_peak_too(shifted):
    """The coarse peak becomes a second start. (Which start wins is the back-tracking miss; with a globally
    wrong affine, as here, that check is biased towards the affine start: docs/benchmarks.md.)"""
    baseline, followup, truth, wrong, centre = shifted
    out = track_point(baseline, followup, centre, 6.0, wrong)
    starts = out.info["starts_lps_mm"]
    assert len(out.info["records"]) == 2
    assert np.linalg.norm(starts[1] - truth.apply(centre)) < 4.0
    chosen = out.info["records"][out.info["chosen_start"]]
    assert chosen["miss_mm"] == min(r["miss_mm"] for r in out.info["records"])


def test_extra_candidate_start_is_refined(shifted):
    baseline, followup, truth, wrong, centre = shifted
    hint = truth.apply(centre) + np.array([1.5, -1.0, 1.0])  # e.g. a network prediction
    out = track_point(baseline, followup, centre, 6.0, wrong, candidates_lps_mm=hint[None],
                      config=MultiStartConfig(coarse=None))
    records = out.info["records"]
    assert len(records) == 2 and np.allclose(out.info["starts_lps_mm"][1], hint)
    assert np.linalg.norm(records[1]["result"].center_lps_mm - truth.apply(centre)) < 2.0
    assert out.info["chosen_start"] == int(np.argmin([r["miss_mm"] for r in records]))


def test_candidates_first_stops_at_a_good_candidate_and_falls_back_from_a_bad_one(shifted):
    """With a right registration (so that back-tracking can check a result): a candidate near the truth is
    refined alone; from a candidate 30 mm off, the affine start follows and wins."""
    baseline, followup, truth, _, centre = shifted
    target = truth.apply(centre)
    first = MultiStartConfig(candidates_first=True)
    good = track_point(baseline, followup, centre, 6.0, truth, candidates_lps_mm=(target + 2.5)[None], config=first)
    assert len(good.info["records"]) == 1 and good.info["chosen_start"] == 0  # one refinement
    assert np.allclose(good.info["starts_lps_mm"][0], target + 2.5)
    assert np.linalg.norm(good.center_lps_mm - target) < 2.0
    far = target + np.array([0.0, 30.0, 0.0])  # a poor network guess
    bad = track_point(baseline, followup, centre, 6.0, truth, candidates_lps_mm=far[None], config=first)
    assert len(bad.info["records"]) >= 2 and np.allclose(bad.info["starts_lps_mm"][1], target)
    assert bad.info["chosen_start"] >= 1 and np.linalg.norm(bad.center_lps_mm - target) < 2.0


def test_lesion_at_the_edge_of_the_followup_is_flagged_with_low_confidence():
    baseline = _textured_ct(5)
    # follow-up coverage ends 1–2 mm above the lesion (z): its surroundings are cut off
    centre = baseline.index_kji_to_lps([30, 60, 60])
    top = int((centre[2] + 1.0 - baseline.origin_lps_mm[2]) // 2.0)
    followup = Volume(baseline.array[:top + 1].copy(), baseline.origin_lps_mm, baseline.spacing_mm)
    out = track_point(baseline, followup, centre, 6.0, AffineTransform.identity())
    assert "outside_followup" in out.flags
    assert out.confidence < 0.5
    assert out.info["edge_mm"] < 5.0


def test_a_pair_field_gives_the_first_start_and_the_back_tracking_start(shifted):
    """The affine is 25 mm off everywhere; a field that takes that up (constant u = wrong - truth) makes its
    starts right. By default the field's shape start comes first, passes the check started at the field's inverse
    (within 2 mm) and ends the search; with the affine start listed first, that one fails the check, the field
    start passes it and wins; no coarse start is needed either way."""
    baseline, followup, truth, wrong, centre = shifted
    field = _uniform_field(truth, wrong)
    target = truth.apply(centre)
    assert np.allclose(field.to_followup(centre), target, atol=1e-3)
    out = track_point(baseline, followup, centre, 6.0, wrong, pair_field=field)
    assert len(out.info["records"]) == 1 and out.info["chosen_start"] == 0
    assert np.allclose(out.info["starts_lps_mm"][0], target, atol=1e-3)
    assert out.info["backtrack_error_mm"] < 2.0 and np.linalg.norm(out.center_lps_mm - target) < 1.5
    assert out.info["chosen_kind"] == "field_shape" and out.info["first_miss_mm"] == out.info["backtrack_error_mm"]
    shift = float(np.linalg.norm(wrong.translation_mm - truth.translation_mm))
    assert out.info["field_shift_mm"] == pytest.approx(shift, abs=0.01)  # |D(c) - T(c)|
    assert "agreement_mm" not in out.info
    affine_first = MultiStartConfig(registration_starts=("affine", "field", "field_shape"))
    out = track_point(baseline, followup, centre, 6.0, wrong, pair_field=field, config=affine_first)
    assert len(out.info["records"]) == 2 and out.info["chosen_start"] == 1
    assert np.allclose(out.info["starts_lps_mm"][1], target, atol=1e-3)
    assert out.info["records"][0]["miss_mm"] > 5.0 and out.info["backtrack_error_mm"] < 2.0
    assert np.linalg.norm(out.center_lps_mm - target) < 1.5
    assert "backtrack_mismatch" not in out.flags


@pytest.mark.parametrize("kinds", [(), ("affine", "affine"), ("affine", "network")])
def test_registration_starts_must_name_known_starts_once(kinds):
    with pytest.raises(ValueError, match="registration_starts"):
        MultiStartConfig(registration_starts=kinds)


def test_candidates_from_a_function_are_made_only_when_the_registration_starts_fail(shifted):
    """tlt+refine's network runs lazily: a function of candidates is called once, after the registration's
    starts (field shape, affine, field) all failed the back-tracking check, and its point is refined next."""
    from TLTTrackerLib.deformable import PairField

    baseline, followup, truth, wrong, centre = shifted
    grid = Volume(np.zeros((20, 40, 40), np.float32), origin_lps_mm=[-80, -80, -80], spacing_mm=[4.0, 4.0, 8.0])
    target = truth.apply(centre)
    calls = []

    def network():
        calls.append(1)
        return (target + 1.5)[None]

    right = _uniform_field(truth, wrong)
    out = track_point(baseline, followup, centre, 6.0, wrong, candidates_lps_mm=network, pair_field=right)
    assert not calls and out.info["chosen_start"] == 0  # the field's start tracked back: no network
    useless = PairField(wrong, np.zeros((20, 40, 40, 3), np.float32), grid)  # the field adds nothing
    out = track_point(baseline, followup, centre, 6.0, wrong, candidates_lps_mm=network, pair_field=useless)
    assert calls == [1]
    assert np.allclose(out.info["starts_lps_mm"][3], target + 1.5)  # after field shape, affine, field
    assert out.info["coarse"] is None  # the network's point took the coarse search's place
    network_result = next(x["result"] for x in out.info["records"] if x["start"] == 3)
    assert np.linalg.norm(network_result.center_lps_mm - target) < 1.5  # refined from the network's point
    with pytest.raises(ValueError, match="candidates_first"):
        track_point(baseline, followup, centre, 6.0, wrong, candidates_lps_mm=network,
                    config=MultiStartConfig(candidates_first=True))


def test_a_small_lesion_snaps_where_the_registration_missed_it_and_a_large_one_does_not(shifted):
    """A registration that does not move (demons without iterations, no local affine) leaves the point where the
    affine puts it. 2.3 mm off, the nodule's own template finds it; 1.4 mm off too, where it matches clearly better
    than at the point (NCC 0.99 against < 0.79: ``snap_min_gain``); 0.9 mm off the registration's point stays (a
    match that near and only 0.12 better is the template's noise about a point already on the nodule) unless
    ``snap_min_move_mm`` and ``snap_min_gain`` are 0. Never for a large lesion, nor with ``snap_mm`` 0."""
    from TLTTrackerLib.refine import DemonsLevel, RefineConfig

    baseline, followup, truth, _, centre = shifted
    target = truth.apply(centre)
    still = MultiStartConfig(coarse=None, refine=RefineConfig(levels=(DemonsLevel(4.0, 40.0, 0, 6.0),),
                                                              affine_iterations=0))
    far = AffineTransform(np.eye(3), truth.translation_mm + np.array([1.6, -1.4, 1.0]))
    beside = AffineTransform(np.eye(3), truth.translation_mm + np.array([1.0, -0.8, 0.6]))
    near = AffineTransform(np.eye(3), truth.translation_mm + np.array([0.6, -0.6, 0.4]))
    for transform in (far, beside):
        small = track_point(baseline, followup, centre, 2.0, transform, config=still)
        assert small.info["snap_mm"] > 1.3 and small.info["lesion_ncc"] > 0.9
        assert np.linalg.norm(small.center_lps_mm - target) < 0.5
    for radius, transform, config in ((6.0, far, still), (2.0, far, replace(still, snap_mm=0.0)), (2.0, near, still),
                                      (2.0, beside, replace(still, snap_min_gain=1.01))):
        out = track_point(baseline, followup, centre, radius, transform, config=config)
        assert "snap_mm" not in out.info
        assert np.allclose(out.center_lps_mm, transform.apply(centre), atol=0.05)
    anyway = track_point(baseline, followup, centre, 2.0, near,
                         config=replace(still, snap_min_move_mm=0.0, snap_min_gain=0.0))
    assert np.linalg.norm(anyway.center_lps_mm - target) < 0.5 < np.linalg.norm(near.apply(centre) - target)


def test_a_small_lesion_does_not_snap_onto_a_weak_match(shifted):
    """Where the lesion's own template matches nowhere near the result (its follow-up surroundings replaced by
    other texture), the snap would move the point by noise: the registration's point stays, and the lesion
    term of the confidence is the weak match there."""
    baseline, followup, truth, _, centre = shifted
    good = AffineTransform(np.eye(3), truth.translation_mm + np.array([1.0, -1.0, 0.5]))
    other = _textured_ct(11)
    target = followup.lps_to_index_kji(truth.apply(centre))
    kk, jj, ii = np.indices(followup.shape_kji)
    ball = (((np.stack([kk, jj, ii], -1) - target) * np.array([2.0, 1.0, 1.0])) ** 2).sum(-1) < 12.0**2
    swapped = followup.with_array(np.where(ball, other.array, followup.array).astype(np.int16))
    weak = track_point(baseline, swapped, centre, 2.0, good)
    assert "snap_mm" not in weak.info and weak.info["lesion_ncc"] < 0.5
    chosen = next(x for x in weak.info["records"] if x["start"] == weak.info["chosen_start"])
    assert np.allclose(weak.center_lps_mm, chosen["result"].center_lps_mm)
    never = track_point(baseline, followup, centre, 2.0, good, config=MultiStartConfig(snap_min_ncc=1.01))
    assert "snap_mm" not in never.info and never.info["lesion_ncc"] > 0.5


def test_several_results_are_ranked_by_the_selection_score(shifted):
    """With every start tried (accept_miss_mm 0), each result gets a second back-tracking check and the lesion
    template's NCC, and the smallest score wins: a field start, where the lesion is, not the affine one listed
    first."""
    baseline, followup, truth, wrong, centre = shifted
    field = _uniform_field(truth, wrong)
    every = MultiStartConfig(accept_miss_mm=0.0, coarse=None, registration_starts=("affine", "field", "field_shape"))
    out = track_point(baseline, followup, centre, 6.0, wrong, pair_field=field, config=every)
    records = out.info["records"]
    assert len(records) == 3 and out.info["start_kinds"] == ("affine", "field", "field_shape")
    assert all({"score", "miss_plain_mm", "lesion_ncc"} <= set(x) for x in records)
    assert out.info["chosen_start"] == min(records, key=lambda x: x["score"])["start"] != 0
    assert out.info["chosen_kind"] in ("field", "field_shape") and out.info["first_miss_mm"] > 5.0
    assert out.info["agreement_mm"] < 1.5  # the two field starts end at the same place
    assert np.linalg.norm(out.center_lps_mm - truth.apply(centre)) < 1.5
    plain = track_point(baseline, followup, centre, 6.0, wrong, pair_field=field,
                        config=replace(every, lesion_weight=0.0))
    assert "score" not in plain.info["records"][0]


def test_a_small_lesions_results_are_ranked_with_the_nodule_weight(shifted, monkeypatch):
    """A lesion of r ≤ snap_max_radius_mm weighs its template's NCC by nodule_lesion_weight, a larger one by
    lesion_weight."""
    import TLTTrackerLib.multistart as multistart
    baseline, followup, truth, wrong, centre = shifted
    field = _uniform_field(truth, wrong)
    weights = []

    def spy(*args):
        weights.append(args[9])
        return multistart_score(*args)

    multistart_score = multistart.selection_score
    monkeypatch.setattr(multistart, "selection_score", spy)
    every = MultiStartConfig(accept_miss_mm=0.0, coarse=None, lesion_weight=4.0, nodule_lesion_weight=10.0)
    for radius in (2.0, 6.0):
        track_point(baseline, followup, centre, radius, wrong, pair_field=field, config=every)
    assert set(weights) == {4.0, 10.0} and weights[0] == 10.0 and weights[-1] == 4.0


def _field_off_by(shifted, offset_mm):
    """A uniform pair field whose start D(c) lies ``offset_mm`` (x y z) short of the lesion's follow-up centre,
    and a config under which no result counts as consistent (accept_miss_mm 0) and refinement does not move a start
    (demons without iterations, no local affine): ``(field, config, target)``."""
    from TLTTrackerLib.refine import DemonsLevel, RefineConfig

    baseline, followup, truth, wrong, centre = shifted
    field = _uniform_field(truth, wrong, offset_mm)
    still = RefineConfig(levels=(DemonsLevel(4.0, 40.0, 0, 6.0),), affine_iterations=0)
    return field, MultiStartConfig(accept_miss_mm=0.0, coarse=None, refine=still), truth.apply(centre)


def test_a_small_lesion_whose_starts_all_fail_also_gets_its_field_start_snapped(shifted):
    """One more result without a refinement: the field start (1.5 mm off) snapped to the lesion's template; the
    refined field start stays 1.5 mm off, so the snapped point is a result of its own. Not for a large lesion,
    nor when switched off."""
    from dataclasses import replace

    baseline, followup, truth, wrong, centre = shifted
    offset = np.array([1.0, -1.0, 0.5])
    field, config, target = _field_off_by(shifted, offset)
    out = track_point(baseline, followup, centre, 2.0, wrong, pair_field=field, config=config)
    snapped = [x for x in out.info["records"] if x.get("snapped")]
    assert len(snapped) == 1 and np.isfinite(snapped[0]["miss_mm"])
    assert out.info["start_kinds"][snapped[0]["start"]] == "field_snap"
    assert np.allclose(out.info["starts_lps_mm"][snapped[0]["start"]], target - offset, atol=1e-3)
    assert np.linalg.norm(snapped[0]["result"].center_lps_mm - target) < 0.5
    for radius, other in ((6.0, config), (2.0, replace(config, field_snap_start=False))):
        out = track_point(baseline, followup, centre, radius, wrong, pair_field=field, config=other)
        assert not any(x.get("snapped") for x in out.info["records"])


def test_a_small_lesion_far_from_its_field_start_is_found_by_the_wide_snap(shifted):
    """The field start 8.4 mm off (as under extreme motion): the ±2.5 mm snap cannot reach the lesion, the ±10 mm
    one can; its miss is the template's own way back (the follow-up around the point, found in the baseline),
    which returns to the centre where the region check, started 8 mm off, need not. Off with wide_snap_mm 0. (Which
    result is kept is the selection score's, measured on the suite: here the field's uniform shift makes even its
    own start track back exactly.)"""
    from dataclasses import replace

    baseline, followup, truth, wrong, centre = shifted
    field, config, target = _field_off_by(shifted, [6.0, -5.0, 3.0])
    out = track_point(baseline, followup, centre, 2.0, wrong, pair_field=field, config=config)
    near = [x for x in out.info["records"] if np.linalg.norm(x["result"].center_lps_mm - target) < 1.0]
    assert len(near) == 1 and near[0].get("snapped") and near[0]["miss_mm"] < 1.0
    off = track_point(baseline, followup, centre, 2.0, wrong, pair_field=field, config=replace(config, wide_snap_mm=0))
    assert all(np.linalg.norm(x["result"].center_lps_mm - target) > 4.0 for x in off.info["records"])


def test_a_first_result_off_the_nodule_does_not_end_the_search(shifted):
    """The field start 8.4 mm off a small nodule, in a field that is off by the same everywhere: its result tracks
    back exactly (the check starts at the field's inverse), yet the nodule's template matches there only as this
    smooth texture does anywhere (NCC 0.31; ``accept_min_ncc`` raised to 0.5 for it). It does not end the search:
    the later results include the wide snap onto the nodule. (Which is kept is the selection score's; here the
    field's uniform error makes its checks favour the first.) With ``accept_min_ncc`` 0 the first result ends it."""
    baseline, followup, truth, wrong, centre = shifted
    field, still, target = _field_off_by(shifted, [6.0, -5.0, 3.0])
    config = replace(still, accept_miss_mm=2.0, accept_min_ncc=0.5)
    out = track_point(baseline, followup, centre, 2.0, wrong, pair_field=field, config=config)
    first = out.info["records"][0]
    assert first["miss_mm"] < 0.5 and first["lesion_ncc"] < config.accept_min_ncc
    assert any(x.get("snapped") and np.linalg.norm(x["result"].center_lps_mm - target) < 1.0
               for x in out.info["records"])
    plain = track_point(baseline, followup, centre, 2.0, wrong, pair_field=field,
                        config=replace(config, accept_min_ncc=0.0))
    assert len(plain.info["records"]) == 1 and np.linalg.norm(plain.center_lps_mm - target) > 7.0


def test_a_doubtful_visible_lesion_moves_onto_its_look_alike():
    """The lesion moved 13 mm within a homogeneous organ while the texture around the organ moved with the affine:
    the region registration follows the texture; the visible snap (forced on by a threshold above any confidence)
    takes the point onto the lesion, and tracks it back for its confidence."""
    from TLTTrackerLib.visible_lesion import VisibleSnapConfig

    def scan(lesion_kji, seed):
        rng = np.random.default_rng(seed)
        vol = _textured_ct(3)
        arr = vol.array.astype(float)
        kk, jj, ii = np.indices(arr.shape)
        organ = (np.abs(ii - 60) <= 36) & (np.abs(jj - 60) <= 36) & (np.abs(kk - 30) * 2.0 <= 36)
        arr[organ] = 60 + 6 * rng.normal(size=int(organ.sum()))
        k, j, i = lesion_kji
        arr[(ii - i) ** 2 + (jj - j) ** 2 + ((kk - k) * 2.0) ** 2 <= 36] += 45  # r 6 mm
        return Volume(arr.astype(np.int16), vol.origin_lps_mm, vol.spacing_mm)

    baseline, followup = scan((30, 60, 60), 1), scan((30, 60, 73), 2)  # the lesion 13 mm along x
    centre = baseline.index_kji_to_lps([30, 60, 60])
    lesion = followup.index_kji_to_lps([30, 60, 73])
    identity = AffineTransform(np.eye(3), np.zeros(3))
    no_snap = MultiStartConfig(coarse=None, visible_snap=None)
    plain = track_point(baseline, followup, centre, 6.0, identity, config=no_snap)
    forced = MultiStartConfig(coarse=None, visible_snap=VisibleSnapConfig(below_confidence=1.01))
    snapped = track_point(baseline, followup, centre, 6.0, identity, config=forced)
    # the plain result is confident (about 0.8) but off its lesion, where the lesion's template prefers the
    # look-alike: the default snap moves it too
    default = track_point(baseline, followup, centre, 6.0, identity, config=MultiStartConfig(coarse=None))
    assert np.linalg.norm(default.center_lps_mm - lesion) < 2.0
    assert np.linalg.norm(plain.center_lps_mm - lesion) > 6.0
    assert "visible_snap_mm" not in plain.info
    assert np.linalg.norm(snapped.center_lps_mm - lesion) < 2.0
    assert snapped.info["visible_snap_mm"] > 4.0
    assert np.isfinite(snapped.info["backtrack_error_mm"])
    assert snapped.confidence >= plain.confidence  # not below the result it replaced


def test_a_first_start_that_fell_back_is_kept_over_results_that_track_back_far_off(shifted, monkeypatch):
    """The field's starts fell back (their region matched nothing, as at the edge of a follow-up's coverage) and the
    affine start's result tracks back 30 mm from the lesion (known wrong): the field start, the first, is kept as it
    is, flagged ``low_similarity``. With ``fallback_miss_mm`` above that miss the result is kept, as before; so it is
    where only a later start (the affine) fell back: the first start's estimate is not that start's."""
    import TLTTrackerLib.multistart as multistart
    from TLTTrackerLib.refine import RefineResult

    baseline, followup, truth, wrong, centre = shifted
    field, config, _ = _field_off_by(shifted, [3.0, 0.0, 0.0])
    field_c = field.to_followup(centre)
    falls = {"at_field": True}

    def refine(fixed, moving, point, radius, transform, config=None, start_lps_mm=None, **_):
        start = np.asarray(start_lps_mm, float)
        if fixed is followup:  # the back-tracking check: 30 mm from the lesion, whatever it starts from
            return RefineResult(centre + [30.0, 0.0, 0.0], (0.9,), 0.9)
        if (np.linalg.norm(start - field_c) < 1.0) == falls["at_field"]:
            return RefineResult(start, (0.05,), 0.1, fell_back=True)
        return RefineResult(start + [0.0, 5.0, 0.0], (0.9,), 0.9)

    monkeypatch.setattr(multistart, "refine_center", refine)
    config = replace(config, visible_snap=None)
    out = track_point(baseline, followup, centre, 6.0, wrong, pair_field=field, config=config)
    assert out.info["chosen_kind"] == "field_shape" and "low_similarity" in out.flags
    assert np.allclose(out.center_lps_mm, field_c) and out.confidence < 0.2
    kept = track_point(baseline, followup, centre, 6.0, wrong, pair_field=field,
                       config=replace(config, fallback_miss_mm=40.0))
    assert kept.info["chosen_kind"] == "affine" and "low_similarity" not in kept.flags
    falls["at_field"] = False
    later = track_point(baseline, followup, centre, 6.0, wrong, pair_field=field, config=config)
    assert later.info["chosen_kind"] in ("field_shape", "field") and "low_similarity" not in later.flags
