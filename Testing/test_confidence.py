"""Confidence terms, the "check" threshold, and the signed distance to a scan's edge."""

from __future__ import annotations

import numpy as np
import pytest

from TLTTrackerLib.confidence import (
    CHECK_THRESHOLD,
    EDGE_CAP,
    FELL_BACK_CONFIDENCE,
    LESION_MATCH_MAX_RADIUS_MM,
    LESION_MATCH_OFFSET,
    SIMILARITY_OFFSET,
    combined_confidence,
    edge_distance_mm,
    needs_check,
)
from TLTTrackerLib.geometry import Volume


def test_edge_distance_is_signed_and_in_mm():
    vol = Volume(np.zeros((10, 20, 30), np.int16), origin_lps_mm=[0, 0, 0], spacing_mm=[1.0, 2.0, 5.0])
    # coverage: x -0.5..29.5, y -1..39, z -2.5..47.5
    assert edge_distance_mm(vol, np.array([15.0, 20.0, 22.5])) == pytest.approx(14.5)
    assert edge_distance_mm(vol, np.array([15.0, 20.0, 45.0])) == pytest.approx(2.5)
    assert edge_distance_mm(vol, np.array([15.0, 20.0, 52.5])) == pytest.approx(-5.0)
    assert edge_distance_mm(vol, np.array([-3.5, 20.0, 22.5])) == pytest.approx(-3.0)


def test_confidence_falls_with_the_backtracking_miss_and_a_poor_match():
    base = combined_confidence(0.8, 0.0, 5.0, coarse_gap=1.0)
    assert base == pytest.approx(1.0, abs=1e-6)
    assert combined_confidence(0.8, 5.0, 5.0, coarse_gap=1.0) == pytest.approx(np.exp(-0.5))
    assert combined_confidence(0.8, 20.0, 5.0, coarse_gap=1.0) < 0.01
    assert combined_confidence(0.0, 0.0, 5.0) == pytest.approx(SIMILARITY_OFFSET)  # a poor match lowers it
    assert combined_confidence(0.8, float("nan"), 5.0) == 0.0
    assert combined_confidence(0.9, 0.0, 5.0, edge_mm=2.0) == EDGE_CAP < CHECK_THRESHOLD
    assert combined_confidence(0.9, 0.0, 5.0, fell_back=True) == FELL_BACK_CONFIDENCE
    assert combined_confidence(1.7, None, 5.0) == 1.0
    assert combined_confidence(0.9, 5.5, 5.0, mismatch=True) < CHECK_THRESHOLD


def test_a_result_no_other_start_agrees_with_loses_confidence():
    alone = combined_confidence(0.8, 1.0, 5.0)
    assert combined_confidence(0.8, 1.0, 5.0, agreement_mm=0.0) == pytest.approx(alone)
    assert combined_confidence(0.8, 1.0, 5.0, agreement_mm=5.0) == pytest.approx(alone * np.exp(-0.5))
    small = combined_confidence(0.8, 1.0, 2.0)
    assert combined_confidence(0.8, 1.0, 2.0, agreement_mm=4.0) == pytest.approx(small * np.exp(-0.5))  # 4 mm floor
    assert combined_confidence(0.8, 1.0, 5.0, agreement_mm=15.0) < CHECK_THRESHOLD


def test_a_small_lesion_that_does_not_match_its_template_loses_confidence():
    good = combined_confidence(0.9, 0.0, 2.0, lesion_ncc=0.9)
    assert good == pytest.approx(1.0, abs=1e-6)
    assert combined_confidence(0.9, 0.0, 2.0, lesion_ncc=0.1) == pytest.approx(LESION_MATCH_OFFSET + 0.1)
    assert combined_confidence(0.9, 0.0, 2.0, lesion_ncc=-0.5) == 0.0
    big = LESION_MATCH_MAX_RADIUS_MM + 1.0  # not measured for larger lesions: the term is left out
    assert combined_confidence(0.9, 0.0, big, lesion_ncc=-0.5) == combined_confidence(0.9, 0.0, big)


def test_needs_check_threshold_and_unknown():
    assert needs_check(CHECK_THRESHOLD - 0.01) and not needs_check(CHECK_THRESHOLD)
    assert needs_check(float("nan"))


def test_results_json_and_table_mark_low_confidence_for_checking():
    from TLTTrackerLib.results import format_table, results_to_dict
    from TLTTrackerLib.tracked_lesion import TrackedLesion

    def tracked(name, confidence):
        c = np.array([1.0, 2.0, 3.0])
        return TrackedLesion(name, c, c + 1.0, 5.0, "refine", confidence, c)

    payload = results_to_dict([tracked("A", 0.9), tracked("B", 0.2), tracked("C", float("nan"))], None, {})
    assert [les["needs_check"] for les in payload["lesions"]] == [False, True, None]
    lines = format_table(payload).splitlines()
    assert "check" not in lines[2] and "check" in lines[3] and "check" not in lines[4]
