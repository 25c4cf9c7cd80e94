"""TLTTrackerLib.network_tracking: the network's view in tlt+refine's result (tlt itself: test_tracker.py)."""

from __future__ import annotations

import numpy as np

from TLTTrackerLib.network_tracking import with_network_view
from TLTTrackerLib.tracked_lesion import TrackedLesion


def _result(point, confidence=0.8, method="refine", radius=4.0):
    return TrackedLesion("L1", np.zeros(3), np.asarray(point, float), radius, method, confidence, np.zeros(3),
                         (), None, {"starts": 3})


def test_the_network_view_halves_the_confidence_only_when_it_ran_and_disagrees():
    refined = _result([10.0, 0.0, 0.0])
    alone = with_network_view(refined, None)  # the registration's starts tracked back: no network
    assert alone.method == "tlt+refine" and alone.confidence == 0.8 and alone.extra["starts"] == 3
    assert alone.extra["network_center_lps_mm"] is None and alone.extra["network_confidence"] is None
    near = with_network_view(refined, _result([14.0, 0.0, 0.0], 0.3, "tlt"))  # 4 mm apart: agree
    assert near.confidence == 0.8 and near.extra["network_result_apart_mm"] == 4.0
    far = with_network_view(refined, _result([21.0, 0.0, 0.0], float("nan"), "tlt"))  # 11 mm > max(r, 10)
    assert far.confidence == 0.4 and far.extra["network_confidence"] is None
    np.testing.assert_allclose(far.followup_center_lps_mm, refined.followup_center_lps_mm)
