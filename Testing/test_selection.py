"""The selection score of a lesion's results (:mod:`TLTTrackerLib.selection`): a result at the lesion scores lower
than one on other tissue; the score's parts are kept in the record. (Which result ``track_point`` keeps is tested
in ``test_multistart.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
from textured_ct import textured_ct

from TLTTrackerLib.deformable import PairField
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.matching import axis_resolution_mm
from TLTTrackerLib.multistart_config import BACKTRACK_CONFIG
from TLTTrackerLib.refine import RefineResult
from TLTTrackerLib.resample import warp_volume
from TLTTrackerLib.selection import selection_score
from TLTTrackerLib.transforms import AffineTransform


@pytest.fixture(scope="module")
def pair():
    """Textured CT (-700 ± 900 HU, 1×1×2 mm) with a 3 mm soft-tissue nodule at index (20, 40, 40); the follow-up
    is it translated by (3, -2, 4) mm, and a pair field that is right everywhere (u = 0 on top of the truth)."""
    baseline = textured_ct(7, (40, 80, 80), (1.0, 2.5, 2.5), 3.0)
    truth = AffineTransform(np.eye(3), np.array([3.0, -2.0, 4.0]))
    followup = warp_volume(baseline, baseline, truth.inverse())
    grid = Volume(np.zeros((12, 24, 24), np.float32), origin_lps_mm=[-48, -48, -48], spacing_mm=[4.0, 4.0, 8.0])
    field = PairField(truth, np.zeros((12, 24, 24, 3), np.float32), grid)
    return baseline, followup, truth, field, baseline.index_kji_to_lps([20, 40, 40])


def _score(pair, point_lps_mm, lesion_weight=4.0):
    baseline, followup, truth, field, centre = pair
    record = {"result": RefineResult(np.asarray(point_lps_mm, float), (0.5,), 0.5), "miss_mm": 1.0}
    res = (axis_resolution_mm(baseline), axis_resolution_mm(followup))
    score = selection_score(baseline, followup, centre, 1.5, truth.inverse(), np.eye(3), record, field,
                            BACKTRACK_CONFIG, lesion_weight, res)
    return score, record


def test_the_result_at_the_lesion_scores_lower_than_one_beside_it(pair):
    target = pair[2].apply(pair[4])
    right, at = _score(pair, target)
    wrong, off = _score(pair, target + np.array([7.0, -5.0, 4.0]))
    assert right < wrong
    assert at["miss_plain_mm"] < 1.0 < off["miss_plain_mm"]
    assert at["lesion_ncc"] > 0.8 > off["lesion_ncc"]


def test_the_score_is_the_mean_miss_less_the_weighted_template_ncc(pair):
    """``check_miss_mm`` (what the kept result's confidence uses) is the mean of the record's miss and the plain
    check's; with ``lesion_weight`` 0 the score is that mean alone."""
    target = pair[2].apply(pair[4]) + np.array([1.0, 0.0, 0.0])
    score, record = _score(pair, target)
    assert record["check_miss_mm"] == pytest.approx(0.5 * (1.0 + record["miss_plain_mm"]))
    assert score == pytest.approx(record["check_miss_mm"] - 4.0 * record["lesion_ncc"])
    plain, _ = _score(pair, target, lesion_weight=0.0)
    assert plain == pytest.approx(record["check_miss_mm"])


def test_a_snapped_result_is_scored_by_its_own_miss(pair):
    """A snapped result's miss is the check made for it (for the wide snap, with the template's own way back): no
    second check from the field's inverse, which comes back as far off as the field is wrong."""
    baseline, followup, truth, field, centre = pair
    record = {"result": RefineResult(truth.apply(centre), (0.5,), 0.5), "miss_mm": 0.4, "snapped": True}
    res = (axis_resolution_mm(baseline), axis_resolution_mm(followup))
    score = selection_score(baseline, followup, centre, 1.5, truth.inverse(), np.eye(3), record, field,
                            BACKTRACK_CONFIG, 4.0, res)
    assert "miss_plain_mm" not in record and record["check_miss_mm"] == 0.4
    assert score == pytest.approx(0.4 - 4.0 * record["lesion_ncc"])
