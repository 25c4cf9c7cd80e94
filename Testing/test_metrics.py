"""Metric definitions on hand-computed cases (DLT's evaluation.py semantics, and the TLT-code secondary ones)."""

from __future__ import annotations

import numpy as np
import pytest

from TLTTrackerLib.metrics import errors_mm, paired_t_test, recist_radius_mm, summarise, tlt_code_summary


def test_errors_use_per_case_spacing_per_axis():
    err, axis = errors_mm([[10, 10, 5], [0, 0, 0]], [[13, 14, 5], [0, 0, 2]], [[0.5, 0.5, 5.0], [1, 1, 2.5]])
    np.testing.assert_allclose(err, [2.5, 5.0])
    np.testing.assert_allclose(axis, [[1.5, 2.0, 0.0], [0, 0, 5.0]])


def test_radius_is_half_the_longest_recist_diameter_times_x_spacing():
    np.testing.assert_allclose(recist_radius_mm([[24.0, 21.4], [10.0, 30.0]], [0.5, 0.8]), [6.0, 12.0])


def test_cpm_boundaries_match_dlt():
    # CPM@10mm: e <= min(r, 10) inclusive; CPM@Radius: e < r strict
    e = np.array([5.0, 10.0, 10.0, 3.0, 0.0])
    r = np.array([5.0, 12.0, 9.0, 2.0, 0.0])
    s = summarise(e, r)
    assert s["n"] == 5
    assert s["cpm_10mm"] == pytest.approx(3 / 5)  # 5<=5, 10<=10, 0<=0
    assert s["cpm_radius"] == pytest.approx(2 / 5)  # 10 < 12, and 0 / max(0, 1e-3) = 0 < 1


def test_zero_radius_uses_epsilon():
    s = summarise(np.array([0.0]), np.array([0.0]))
    assert s["cpm_radius"] == 1.0  # 0 / 1e-3 = 0 < 1


def test_med_is_mean_and_population_std():
    s = summarise(np.array([1.0, 2.0, 3.0, 6.0]), np.ones(4) * 20, axis_errors_mm=np.array([[1, 0, 0]] * 4))
    assert s["med_mm"] == pytest.approx(3.0)
    assert s["med_std_mm"] == pytest.approx(np.sqrt(((4 + 1 + 0 + 9) / 4)))
    assert s["median_mm"] == pytest.approx(2.5)
    assert s["med_x_mm"] == 1.0 and s["med_y_mm"] == 0.0


def test_secondary_tlt_code_definitions_are_strict_and_flat_10mm():
    t = tlt_code_summary(np.array([9.9, 10.0, 30.0]), np.array([40.0, 40.0, 30.0]))
    assert t["cpm_10mm"] == pytest.approx(1 / 3) and t["cpm_radius"] == pytest.approx(2 / 3)


def test_paired_t_test_sign_and_errors():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.5, 4.5, 5.0])
    res = paired_t_test(a, b)
    assert res["mean_difference_mm"] == pytest.approx(-1.0) and res["t"] < 0 and 0 < res["p"] < 0.05
    with pytest.raises(ValueError):
        paired_t_test(a, b[:3])
    with pytest.raises(ValueError):
        summarise(a, b[:3])
