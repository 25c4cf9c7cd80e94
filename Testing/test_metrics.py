"""Metric definitions on hand-computed cases: DLT's evaluation.py semantics, and the TLT-code secondary ones."""

from __future__ import annotations

import numpy as np
import pytest

from TLTTrackerLib.metrics import (
    errors_mm,
    paired_t_test,
    recist_radius_mm,
    summarise,
    tlt_code_summary,
    tlt_lesion_size,
)


def test_errors_use_per_case_spacing_per_axis():
    err, axis = errors_mm([[10, 10, 5], [0, 0, 0]], [[13, 14, 5], [0, 0, 2]], [[0.5, 0.5, 5.0], [1, 1, 2.5]])
    np.testing.assert_allclose(err, [2.5, 5.0])  # (1.5, 2, 0) mm -> 2.5; (0, 0, 5) mm -> 5
    np.testing.assert_allclose(axis, [[1.5, 2.0, 0.0], [0, 0, 5.0]])


def test_radius_is_half_the_longest_recist_diameter_times_x_spacing():
    np.testing.assert_allclose(recist_radius_mm([[24.0, 21.4], [10.0, 30.0]], [0.5, 0.8]), [6.0, 12.0])


@pytest.mark.parametrize(
    "error, radius, in_10mm, in_radius",
    [
        (5.0, 5.0, True, False),  # CPM@10mm inclusive (e <= r), CPM@Radius strict (e < r)
        (4.999, 5.0, True, True),
        (10.0, 12.0, True, True),  # min(r, 10) = 10, inclusive
        (10.001, 12.0, False, True),
        (10.0, 9.0, False, False),
        (0.0, 0.0, True, True),  # r = 0: 0 / max(0, 1e-3) = 0 < 1; 0 <= 0
        (0.0005, 0.0, False, True),  # 0.0005 / 1e-3 = 0.5 < 1, but 0.0005 > min(0, 10)
        (30.0, 40.0, False, True),
    ],
)
def test_cpm_boundaries_match_dlt(error, radius, in_10mm, in_radius):
    s = summarise(np.array([error]), np.array([radius]))
    assert s["n"] == 1
    assert s["cpm_10mm"] == float(in_10mm) and s["cpm_radius"] == float(in_radius)


def test_fractions_over_several_cases():
    s = summarise(np.array([5.0, 10.0, 10.0, 3.0, 0.0]), np.array([5.0, 12.0, 9.0, 2.0, 0.0]))
    assert s["cpm_10mm"] == pytest.approx(3 / 5) and s["cpm_radius"] == pytest.approx(2 / 5)


def test_med_is_mean_and_population_std_with_per_axis():
    axis = np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0], [6.0, 0, 0]])
    e = np.linalg.norm(axis, axis=1)  # 1, 2, 3, 6
    s = summarise(e, np.full(4, 20.0), axis_errors_mm=axis)
    assert s["med_mm"] == pytest.approx(3.0)
    assert s["med_std_mm"] == pytest.approx(np.sqrt((4 + 1 + 0 + 9) / 4))  # ddof = 0, not sqrt(14 / 3)
    assert s["median_mm"] == pytest.approx(2.5) and s["max_mm"] == 6.0
    assert (s["med_x_mm"], s["med_y_mm"], s["med_z_mm"]) == pytest.approx((7 / 4, 2 / 4, 3 / 4))
    assert s["n_nonfinite"] == 0


def test_empty_and_failed_cases():
    assert summarise(np.array([]), np.array([])) == {"n": 0}
    s = summarise(np.array([1.0, np.nan, np.inf]), np.array([5.0, 5.0, 5.0]))
    assert s["n"] == 3 and s["n_nonfinite"] == 2
    assert s["cpm_10mm"] == pytest.approx(1 / 3) and s["cpm_radius"] == pytest.approx(1 / 3)  # failures are misses
    assert not np.isfinite(s["med_mm"])


def test_secondary_tlt_code_definitions_are_strict_and_flat_10mm():
    np.testing.assert_allclose(tlt_lesion_size([[0, 0, 0, 30, 40, 0], [1, 2, 3, 2, 3, 6]]), [50.0, 7.0])
    t = tlt_code_summary(np.array([9.9, 10.0, 30.0, 6.9]), np.array([40.0, 40.0, 30.0, 7.0]))
    assert t["cpm_10mm"] == pytest.approx(2 / 4)  # 9.9 < 10, 6.9 < min(10, 7); 10.0 is not < 10
    assert t["cpm_radius"] == pytest.approx(3 / 4)  # 30 is not < 30
    assert "TLT code" in t["definition"]


def test_paired_t_test_against_hand_computation():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.5, 4.5, 5.0])
    d = a - b  # -1, -0.5, -1.5, -1
    t_expected = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
    res = paired_t_test(a, b)
    assert res["n"] == 4 and res["mean_difference_mm"] == pytest.approx(-1.0)
    assert res["t"] == pytest.approx(t_expected) and 0 < res["p"] < 0.05


@pytest.mark.parametrize("a, b", [([1.0, 2.0, 3.0], [1.0, 2.0]), ([1.0], [2.0]), ([1.0, np.nan], [1.0, 2.0])])
def test_paired_t_test_rejects_bad_input(a, b):
    with pytest.raises(ValueError):
        paired_t_test(np.array(a), np.array(b))


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        summarise(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="differ"):
        summarise(np.ones(3), np.ones(3), axis_errors_mm=np.ones((2, 3)))
