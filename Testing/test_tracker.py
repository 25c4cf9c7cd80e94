"""LesionTracker end to end on a phantom pair with exact ground truth: methods, back-tracking, chaining, errors."""

from __future__ import annotations

import numpy as np
import pytest

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.lesions import Lesion
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.synthetic import make_pair
from TLTTrackerLib.tracker import TLT_SNAP_MM, Cancelled, LesionTracker, track_chain


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(3)
    volume, lesions = make_phantom(rng)
    return make_pair(volume, lesions, rng)


@pytest.fixture(scope="module")
def tracked(pair):
    tracker = LesionTracker(method="affine")
    tracker.set_pair(pair.baseline, pair.followup)
    out = {"affine": tracker.track(pair.baseline_lesions)}
    tracker.method = "auto"
    out["auto"] = tracker.track(pair.baseline_lesions, with_heatmap=True)
    return tracker, out


def _errors(results, pair):
    truth = {les.id: les.center_lps_mm for les in pair.followup_lesions}
    return np.array([np.linalg.norm(r.followup_center_lps_mm - truth[r.id]) for r in results])


def test_auto_beats_affine_and_reaches_millimetres(pair, tracked):
    _, out = tracked
    e_affine, e_auto = _errors(out["affine"], pair), _errors(out["auto"], pair)
    assert np.median(e_auto) < 2.0, e_auto
    assert e_auto.mean() < e_affine.mean(), (e_auto, e_affine)


def test_results_carry_ids_methods_and_confidences(pair, tracked):
    tracker, out = tracked
    assert [r.id for r in out["auto"]] == [les.id for les in pair.baseline_lesions]
    assert {r.method for r in out["auto"]} == {tracker.resolved_method()}
    for r in out["auto"]:
        assert 0.0 <= r.confidence <= 1.0
        assert r.heatmap is not None and r.heatmap.array.ndim == 3
        assert "backtrack_error_mm" in r.extra
    for r in out["affine"]:
        np.testing.assert_allclose(r.followup_center_lps_mm, r.affine_center_lps_mm)


def test_the_pair_field_is_made_once_for_refine_only(pair, tracked):
    tracker, _ = tracked
    assert tracker.field is not None and tracker.timing_s["deformable"] > 0  # made by the "auto" track
    assert tracker.field.grid.array.ndim == 3
    plain = LesionTracker(method="affine")
    plain.set_pair(pair.baseline, pair.followup, registration=tracker.registration)
    plain.track(pair.baseline_lesions[:1])
    assert plain.field is None  # affine: no field
    off = LesionTracker(method="auto", deformable=False)
    off.set_pair(pair.baseline, pair.followup, registration=tracker.registration)
    r = off.track(pair.baseline_lesions[:1])[0]
    assert off.field is None and r.extra["starts"] >= 1


def test_heatmap_peak_near_result(tracked):
    _, out = tracked
    r = out["auto"][0]
    peak = np.unravel_index(np.argmax(r.heatmap.array), r.heatmap.array.shape)
    # the lesion-template NCC map around the result peaks within a few mm of it
    assert np.linalg.norm(r.heatmap.index_kji_to_lps(np.array(peak)) - r.followup_center_lps_mm) < 6


def test_point_outside_baseline_is_a_clear_error(pair):
    tracker = LesionTracker(method="affine")
    tracker.set_pair(pair.baseline, pair.followup, registration=None)
    far = Lesion("X", pair.baseline.center_lps_mm() + 5000.0, 5.0)
    with pytest.raises(InputError, match="outside the baseline"):
        tracker.track([far])


def test_track_before_set_pair_and_unknown_method():
    with pytest.raises(InputError, match="set_pair"):
        LesionTracker().track([Lesion("A", [0, 0, 0], 5)])
    with pytest.raises(InputError, match="unknown method"):
        LesionTracker(method="magic")


def test_cancel_stops(pair, tracked):
    tracker, _ = tracked
    with pytest.raises(Cancelled):
        tracker.track(pair.baseline_lesions, cancel=lambda: True)


def test_lesions_side_by_side_give_the_same_results_in_order(pair, tracked):
    tracker, out = tracked  # out["auto"]: workers=0 (one per core; 1 on a one-core machine)
    serial = LesionTracker(method="auto", workers=1)
    serial.set_pair(pair.baseline, pair.followup, registration=tracker.registration)
    parallel = LesionTracker(method="auto", workers=3)
    parallel.set_pair(pair.baseline, pair.followup, registration=tracker.registration)
    seen: list[float] = []
    a = serial.track(pair.baseline_lesions)
    b = parallel.track(pair.baseline_lesions, progress=lambda f, m: seen.append(f))
    assert [r.id for r in b] == [les.id for les in pair.baseline_lesions]
    for x, y in zip(a, b):  # one SimpleITK thread per lesion vs all threads: the same point, to rounding
        np.testing.assert_allclose(x.followup_center_lps_mm, y.followup_center_lps_mm, atol=1e-3)
        assert x.confidence == pytest.approx(y.confidence, abs=1e-3)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    with pytest.raises(Cancelled):
        parallel.track(pair.baseline_lesions, cancel=lambda: True)
    with pytest.raises(InputError, match="workers"):
        LesionTracker(workers=-1)


def test_chain_through_two_follow_ups(pair):
    rng = np.random.default_rng(11)
    second = make_pair(pair.followup, pair.followup_lesions, rng)
    chain = track_chain([pair.baseline, pair.followup, second.followup], pair.baseline_lesions, method="affine")
    assert len(chain) == 2 and [r.id for r in chain[1]] == [les.id for les in pair.baseline_lesions]
    # step 2 starts where step 1 ended
    for a, b in zip(chain[0], chain[1]):
        np.testing.assert_allclose(b.baseline_center_lps_mm, a.followup_center_lps_mm)


def test_learned_method_with_a_model_file_and_clear_errors(tmp_path, pair, no_bundled_model):
    """method 'tlt' runs a checkpoint written by the training code, batched; no model -> a clear error."""
    torch = pytest.importorskip("torch")
    from test_model import TINY

    from TLTTrackerLib.checkpoint import save_checkpoint
    from TLTTrackerLib.config import PreprocessConfig
    from TLTTrackerLib.errors import ModelFileError
    from TLTTrackerLib.model import build_tracker

    torch.manual_seed(0)
    pre = PreprocessConfig(search_size_mm=(16, 32, 40), template_size_mm=(16, 32, 32))
    path = save_checkpoint(tmp_path / "tiny.pt", build_tracker(TINY), TINY, pre)
    tracker = LesionTracker(method="tlt", model=str(path), device="cpu")
    tracker.set_pair(pair.baseline, pair.followup)
    results = tracker.track(pair.baseline_lesions, with_heatmap=True)
    assert [r.id for r in results] == [les.id for les in pair.baseline_lesions]
    for r in results:  # step 0: an untrained network, so no confidence and a flag saying so
        assert r.method == "tlt" and "untrained_model" in r.flags
        assert np.isnan(r.confidence) or ("outside_followup" in r.flags and r.confidence == 0.0)
        assert r.heatmap is not None
        # it starts where the pair's deformable field puts the lesion (its registration prior), and an
        # untrained network stays inside its search window around that start
        start = np.asarray(r.extra["network_start_lps_mm"])
        np.testing.assert_allclose(start, tracker.field.to_followup(r.baseline_center_lps_mm), atol=1e-2)
        network = np.asarray(r.extra["network_center_lps_mm"])
        assert np.all(np.abs(network - start) <= np.array([40, 32, 16]) / 2 + 1)
        # then its point snaps onto the lesion's template, within TLT_SNAP_MM (a face of the search box at most)
        if "lesion_ncc" in r.extra:
            assert np.all(np.abs(r.followup_center_lps_mm - network) <= TLT_SNAP_MM + 1e-6)
    assert any("lesion_ncc" in r.extra for r in results)
    no_model = LesionTracker(method="tlt")
    no_model.set_pair(pair.baseline, pair.followup, registration=tracker.registration)
    with pytest.raises(ModelFileError, match="needs a model"):
        no_model.track(pair.baseline_lesions[:1])
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    bad = LesionTracker(method="tlt", model=str(tmp_path / "bad.pt"))
    bad.set_pair(pair.baseline, pair.followup, registration=tracker.registration)
    with pytest.raises(ModelFileError):
        bad.track(pair.baseline_lesions[:1])

