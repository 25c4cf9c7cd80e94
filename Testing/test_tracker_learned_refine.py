"""method 'tlt+refine': the network's point is one more start of refine, after the registration's own; a poor
network guess costs no accuracy, and a lesion whose first start tracks back gets refine's own result."""

from __future__ import annotations

import numpy as np
import pytest

from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.synthetic import make_pair
from TLTTrackerLib.tracker import LEARNED_METHODS, METHODS, LesionTracker

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(3)
    volume, lesions = make_phantom(rng)
    return make_pair(volume, lesions, rng)


def test_network_point_is_a_start_and_refine_keeps_its_accuracy(tmp_path, pair, torch_one_thread):
    from test_model import TINY

    from TLTTrackerLib.checkpoint import save_checkpoint
    from TLTTrackerLib.config import PreprocessConfig
    from TLTTrackerLib.model import build_tracker

    assert "tlt+refine" in METHODS and "tlt+refine" in LEARNED_METHODS
    torch.manual_seed(0)
    pre = PreprocessConfig(search_size_mm=(16, 32, 40), template_size_mm=(16, 32, 32))
    path = save_checkpoint(tmp_path / "tiny.pt", build_tracker(TINY), TINY, pre, step=1)
    tracker = LesionTracker(method="refine", model=str(path), device="cpu")
    tracker.set_pair(pair.baseline, pair.followup)
    lesions = pair.baseline_lesions[:2]
    refined = tracker.track(lesions)
    assert "model_wait" not in tracker.timing_s  # refine waits for no model
    tracker.method = "tlt+refine"
    both = tracker.track(lesions)
    assert tracker.timing_s["model_wait"] >= 0.0  # a learned method's wait is part of the timing split
    truth = {les.id: les.center_lps_mm for les in pair.followup_lesions}
    for r, b in zip(refined, both):
        assert b.method == "tlt+refine" and 0.0 <= b.confidence <= 1.0
        assert b.extra["starts"] >= 1
        if b.extra["network_center_lps_mm"] is not None:  # the network ran: no registration start tracked back
            assert len(b.extra["network_center_lps_mm"]) == 3 and r.extra["starts"] >= 3
        # an untrained network's guess is one more start; back-tracking keeps the better result
        assert np.linalg.norm(b.followup_center_lps_mm - truth[b.id]) <= np.linalg.norm(
            r.followup_center_lps_mm - truth[r.id]) + 1.0
    # the network's point comes after the registration's starts: where the first tracked back, nothing changes
    settled = [(r, b) for r, b in zip(refined, both) if r.extra["starts"] == 1]
    assert settled
    for r, b in settled:
        assert b.extra["starts"] == 1 and b.extra["network_center_lps_mm"] is None  # the network did not run
        np.testing.assert_allclose(b.followup_center_lps_mm, r.followup_center_lps_mm, atol=0.05)
