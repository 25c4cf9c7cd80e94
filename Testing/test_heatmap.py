"""Gaussian priors on crop and token grids, and their decoding."""

from __future__ import annotations

import numpy as np
import pytest

from TLTTrackerLib.heatmap import (
    gaussian_grid,
    index_to_normalized,
    normalized_to_index,
    peak_index,
    sigma_mm,
    soft_argmax,
    token_grid_shape,
)


def test_sigma_rule():
    assert sigma_mm(3.0) == 8.0 and sigma_mm(12.5) == 12.5
    assert sigma_mm(10.0, sigma_min_mm=4.0, sigma_radius_scale=0.5) == 5.0


def test_gaussian_grid_values_on_the_token_lattice():
    c = np.array([9.5, 20.0, 3.0])
    g = gaussian_grid(c, 6.0, (3, 4, 2), stride=8)
    assert g.shape == (3, 4, 2) and g.dtype == np.float32
    for idx in [(0, 0, 0), (1, 2, 1), (2, 3, 0)]:
        d2 = np.sum((np.array(idx) * 8 - c) ** 2)
        assert g[idx] == pytest.approx(np.exp(-d2 / 72.0), rel=1e-6)
    full = gaussian_grid(np.array([4.0, 5.0, 6.0]), 3.0, (10, 10, 10))
    assert full.max() == pytest.approx(1.0) and peak_index(full).tolist() == [4, 5, 6]


def test_sigma_8_worst_lattice_offset_needs_the_fallback():
    """method-notes §1.4: at the worst offset (4, 4, 4) voxels, σ = 8 leaves no token ≥ 0.7; σ ≥ 8.2 does."""
    c = np.array([12.0, 12.0, 12.0])  # 4 voxels from tokens at 8 and 16 on every axis
    assert gaussian_grid(c, 8.0, (4, 4, 4), 8).max() < 0.7
    assert gaussian_grid(c, 8.3, (4, 4, 4), 8).max() >= 0.7


def test_token_grid_shape():
    assert token_grid_shape((96, 80, 80), 8) == (12, 10, 10)
    with pytest.raises(ValueError):
        token_grid_shape((90, 80, 80), 8)


def test_normalised_coordinates_and_soft_argmax():
    shape = (40, 200, 200)
    idx = np.array([0.0, 99.5, 199.0])
    u = index_to_normalized(idx, shape)
    np.testing.assert_allclose(u, [0.5 / 40, 0.5, 199.5 / 200])
    np.testing.assert_allclose(normalized_to_index(u, shape), idx)
    logits = np.full((3, 4, 5), -20.0)
    logits[2, 1, 3] = 20.0
    np.testing.assert_allclose(soft_argmax(logits, stride=8), [16.0, 8.0, 24.0], atol=1e-6)
