"""NCC, sub-voxel peaks, oriented patch sampling and resolution matching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, shift

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.matching import (
    AIR_HU,
    axis_resolution_mm,
    match_resolution,
    ncc_map,
    patch_offsets_mm,
    sample_patch,
    subvoxel_peak,
)

from conftest import oblique_direction


def _texture(shape, seed=0, sigma=2.0):
    return gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma) * 100


@pytest.mark.parametrize("offset", [(0, 0, 0), (3, -2, 5), (-4, 4, -1)])
def test_ncc_finds_integer_offset(offset):
    image = _texture((40, 40, 40))
    k = 6
    c = np.array([20, 20, 20]) + np.array(offset)
    template = image[c[0] - 8 : c[0] + 9, c[1] - 8 : c[1] + 9, c[2] - 8 : c[2] + 9]
    region = image[20 - 8 - k : 20 + 9 + k, 20 - 8 - k : 20 + 9 + k, 20 - 8 - k : 20 + 9 + k]
    score = ncc_map(template, region)
    assert score.shape == (2 * k + 1,) * 3
    idx, peak = subvoxel_peak(score)
    assert peak == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(idx - k, offset, atol=0.05)  # parabolic fit of a non-parabolic peak


def test_ncc_matches_direct_formula_and_is_intensity_invariant(rng):
    image = rng.normal(size=(12, 11, 10))
    template = rng.normal(size=(5, 4, 3))
    score = ncc_map(template, image)
    for pos in [(0, 0, 0), (3, 2, 4), (7, 7, 7)]:
        w = image[pos[0] : pos[0] + 5, pos[1] : pos[1] + 4, pos[2] : pos[2] + 3]
        direct = np.corrcoef(w.ravel(), template.ravel())[0, 1]
        assert score[pos] == pytest.approx(direct, abs=1e-9)
    np.testing.assert_allclose(ncc_map(template * 3 + 7, image * 0.5 - 100), score, atol=1e-9)


def test_ncc_flat_window_scores_zero():
    score = ncc_map(np.arange(8.0).reshape(2, 2, 2), np.zeros((5, 5, 5)))
    assert np.all(score == 0)


def test_subvoxel_peak_recovers_fractional_shift():
    image = gaussian_filter(np.zeros((31, 31, 31)) + np.pad(np.ones((1, 1, 1)), 15), 3.0)
    moved = shift(image, (0.3, -0.4, 0.2), order=3)
    idx, _ = subvoxel_peak(moved)
    np.testing.assert_allclose(idx, np.array([15.3, 14.6, 15.2]), atol=0.12)


def test_sample_patch_follows_geometry_and_pads_with_air():
    arr = np.zeros((20, 30, 40), dtype=np.int16)
    arr[10, 15, 20] = 1000
    vol = Volume(arr, origin_lps_mm=[5, -3, 2], spacing_mm=[0.8, 0.9, 2.0], direction=oblique_direction(25))
    centre = vol.index_kji_to_lps([10, 15, 20])
    patch = sample_patch(vol, centre, (2, 2, 2), 0.5, order=0)
    assert patch.shape == (5, 5, 5)
    assert patch[2, 2, 2] == 1000
    far = sample_patch(vol, centre + 500.0, (1, 1, 1), 1.0)
    assert np.all(far == AIR_HU)


def test_sample_patch_linear_warp_rotates_grid():
    offsets = patch_offsets_mm((0, 0, 1), 2.0).reshape(-1, 3)
    np.testing.assert_allclose(offsets, [[-2, 0, 0], [0, 0, 0], [2, 0, 0]])
    arr = np.zeros((30, 30, 30), dtype=np.float32)
    arr[15, 19, 15] = 1.0  # +4 mm along y from the centre
    vol = Volume(arr)
    rot = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # local x -> LPS y
    patch = sample_patch(vol, [15, 15, 15], (0, 0, 4), 1.0, linear=rot, order=0)
    assert patch[0, 0, 8] == 1.0


def test_match_resolution_blurs_only_the_sharper_axis():
    patch = np.zeros((21, 21, 21))
    patch[10, 10, 10] = 1
    out = match_resolution(patch, np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.0, 5.0]), 1.0)
    assert out[10, 10, 10] < 1
    assert out[9, 10, 10] > 0 and out[10, 9, 10] == 0


def test_masked_ncc_equals_plain_ncc_with_full_masks(rng):
    from TLTTrackerLib.matching import masked_ncc_map

    image = rng.normal(size=(14, 13, 12))
    template = rng.normal(size=(5, 4, 3))
    full = masked_ncc_map(template, image, np.ones(template.shape, bool), np.ones(image.shape, bool))
    np.testing.assert_allclose(full, ncc_map(template, image), atol=1e-9)


def test_masked_ncc_ignores_voxels_outside_the_field_of_view():
    from TLTTrackerLib.matching import masked_ncc_map

    image = _texture((40, 40, 40), seed=3)
    k = 6
    template = image[12:29, 12:29, 12:29].copy()  # true offset (+4, +4, +4) in the search region below
    region = image[8 - k : 8 + 17 + k, 8 - k : 8 + 17 + k, 8 - k : 8 + 17 + k].copy()
    mask = np.ones(region.shape, bool)
    mask[:12] = False  # a third of the search region lies outside the follow-up scan
    region[~mask] = AIR_HU
    idx, peak = subvoxel_peak(masked_ncc_map(template, region, np.ones(template.shape, bool), mask))
    np.testing.assert_allclose(idx - k, [4, 4, 4], atol=0.05)
    assert peak > 0.99
