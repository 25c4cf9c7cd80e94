"""Tests of TLTTrackerLib.last_steps' helpers: the agreement term's distance and which lesions snap to their
template. The steps run through ``track_point`` in test_multistart.py; each step's own rules are tested in
test_lesion_template.py, test_visible_lesion.py and test_lesion_centre.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from TLTTrackerLib.last_steps import agreement_mm, snaps_to_template
from TLTTrackerLib.multistart_config import MultiStartConfig
from TLTTrackerLib.refine import RefineResult


def test_agreement_is_the_distance_to_the_nearest_other_refined_result():
    def record(x_mm: float, **extra) -> dict:
        return {"result": RefineResult(np.array([x_mm, 0.0, 0.0]), (0.9,), 0.9), "miss_mm": 3.0, **extra}

    kept = record(0.0)
    at = kept["result"].center_lps_mm
    assert agreement_mm(at, [kept], exclude=kept) is None  # the first start ended the search
    assert agreement_mm(at, [record(9.0), kept, record(2.5)], exclude=kept) == pytest.approx(2.5)
    # a snapped result reuses the field start's refinement: it is no second opinion
    assert agreement_mm(at, [kept, record(1.0, snapped=True), record(6.0)], exclude=kept) == pytest.approx(6.0)
    assert agreement_mm(at, [kept, record(1.0, snapped=True)], exclude=kept) is None
    # a point moved off every result (the visible snap): every refined result counts, its own old one too
    assert agreement_mm(np.array([4.0, 0.0, 0.0]), [kept, record(9.0)]) == pytest.approx(4.0)


def test_only_small_lesions_snap_to_their_template_and_only_with_a_search():
    config = MultiStartConfig()
    assert snaps_to_template(config.snap_max_radius_mm, config)
    assert not snaps_to_template(config.snap_max_radius_mm + 0.5, config)
    assert not snaps_to_template(1.5, replace(config, snap_mm=0.0))
