"""Crops sampled through a volume's index transform keep every point where geometry says it is."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import oblique_direction

from TLTTrackerLib.config import PreprocessConfig
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.heatmap import gaussian_grid, peak_index
from TLTTrackerLib.preprocessing import (
    build_sample,
    crop_index_to_lps,
    lps_to_crop_index,
    normalized_to_lps,
    sample_crop,
    window_hu,
)

GRAD = np.array([3.0, -2.0, 5.0])  # HU per mm along x, y, z


def _linear_volume(direction: np.ndarray, spacing=(1.3, 0.9, 2.1), shape=(40, 50, 45)) -> Volume:
    """A volume whose value at LPS p is GRAD·p (+ 200): trilinear interpolation reproduces it exactly."""
    vol = Volume(np.zeros(shape, np.float32), np.array([-20.0, 15.0, -30.0]), np.array(spacing), direction)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    lps = vol.index_kji_to_lps(np.stack([k, j, i], axis=-1).astype(float))
    return vol.with_array((lps @ GRAD + 200.0).astype(np.float32))


@pytest.mark.parametrize(
    "direction", [np.eye(3), oblique_direction(25.0), np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1.0]])]
)
def test_sample_crop_reproduces_a_linear_field(direction):
    vol = _linear_volume(direction)
    center = vol.center_lps_mm() + np.array([1.7, -2.2, 0.9])
    crop = sample_crop(vol, center, (8.0, 12.0, 10.0), spacing_mm=1.0)
    assert crop.shape == (8, 12, 10) and crop.dtype == np.float32
    k, j, i = np.meshgrid(*(np.arange(n) for n in crop.shape), indexing="ij")
    lps = crop_index_to_lps(np.stack([k, j, i], axis=-1), center, crop.shape, 1.0)
    np.testing.assert_allclose(crop, lps @ GRAD + 200.0, atol=1e-2)


def test_crop_geometry_round_trip_and_centre():
    center = np.array([10.0, -4.0, 33.0])
    shape = (40, 96, 80)
    assert np.allclose(crop_index_to_lps((np.array(shape) - 1) / 2.0, center, shape, 1.5), center)
    pts = np.random.default_rng(0).normal(size=(7, 3)) * 30 + center
    back = crop_index_to_lps(lps_to_crop_index(pts, center, shape, 1.5), center, shape, 1.5)
    np.testing.assert_allclose(back, pts, atol=1e-9)
    # x runs along the last array axis, z along the first
    step = crop_index_to_lps(np.array([0.0, 0.0, 1.0]), center, shape, 2.0) - crop_index_to_lps(
        np.zeros(3), center, shape, 2.0
    )
    np.testing.assert_allclose(step, [2.0, 0.0, 0.0])


def test_outside_the_volume_is_padding_and_low_values_are_air():
    arr = np.full((10, 10, 10), -3024, np.int16)
    arr[5, 5, 5] = 100
    vol = Volume(arr)
    crop = sample_crop(vol, np.array([50.0, 50.0, 50.0]), (8, 8, 8), pad_hu=-1024)
    assert np.all(crop == -1024)
    inside = sample_crop(vol, np.array([5.0, 5.0, 5.0]), (3, 3, 3))
    assert inside[1, 1, 1] == 100 and inside.min() == -1024


def test_window_hu():
    x = np.array([-800.0, 0.0, 800.0, 2400.0])
    np.testing.assert_allclose(window_hu(x, (-800, 800)), [0, 0.5, 1, 2])
    np.testing.assert_allclose(window_hu(x, (-800, 800), clip=True), [0, 0.5, 1, 1])


def _blob_volume(center_lps, spacing=(0.8, 0.8, 2.5), direction=np.eye(3), shape=(50, 140, 140)) -> Volume:
    vol = Volume(np.zeros(shape, np.int16), np.array([-55.0, -60.0, -60.0]), np.array(spacing), direction)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    lps = vol.index_kji_to_lps(np.stack([k, j, i], axis=-1).astype(float))
    d2 = ((lps - center_lps) ** 2).sum(-1)
    return vol.with_array((np.exp(-d2 / (2 * 4.0**2)) * 1000 - 500).astype(np.int16))


def test_build_sample_targets_priors_and_frame():
    cfg = PreprocessConfig(search_size_mm=(32, 48, 40), template_size_mm=(24, 32, 32), token_stride=8)
    truth = np.array([3.0, -6.0, 4.0])
    follow = _blob_volume(truth)
    base = _blob_volume(np.array([0.0, 0.0, 0.0]))
    start = truth + np.array([5.0, -4.0, 3.0])  # registration error
    offset = np.array([-3.0, 2.0, 1.0])
    s = build_sample(base, follow, np.zeros(3), 6.0, start, cfg, truth, 6.0, search_offset_mm=offset)
    assert s["template_image"].shape == (1, 24, 32, 32) and s["search_image"].shape == (1, 32, 48, 40)
    assert s["template_prior"].shape == (3, 4, 4) and s["search_prior"].shape == (4, 6, 5)
    assert s["target_heatmap"].shape == (4, 6, 5) and s["target_inside"] == 1.0
    # the normalised target decodes to the truth, the start to the start
    np.testing.assert_allclose(normalized_to_lps(s["target_center"], s["meta"]), truth, atol=1e-4)
    np.testing.assert_allclose(normalized_to_lps(s["search_start"], s["meta"]), start, atol=1e-4)
    # the search image is brightest at the truth
    peak = np.array(np.unravel_index(np.argmax(s["search_image"][0]), s["search_image"].shape[1:]))
    np.testing.assert_allclose(
        crop_index_to_lps(peak, np.array(s["meta"]["search_center_lps_mm"]), (32, 48, 40), 1.0),
        truth,
        atol=1.0,
    )
    # priors are the analytic Gaussians (peak 1 at the sub-voxel centre) on the stride-8 lattice
    start_idx = lps_to_crop_index(start, start + offset, (32, 48, 40), 1.0)
    np.testing.assert_allclose(s["search_prior"], gaussian_grid(start_idx, 8.0, (4, 6, 5), 8), rtol=1e-6)
    assert s["template_prior"].max() <= 1.0 and s["template_prior"].max() > 0.5
    # shared frame: the template centre falls on the start point of the search crop
    np.testing.assert_allclose(s["template_origin"] + (np.array([24, 32, 32]) - 1) / 2, start_idx, atol=1e-5)
    assert peak_index(s["target_heatmap"]).tolist() == list(
        np.round(lps_to_crop_index(truth, start + offset, (32, 48, 40), 1.0) / 8).astype(int)
    )


def test_target_outside_window_is_flagged():
    cfg = PreprocessConfig(search_size_mm=(16, 16, 16), template_size_mm=(16, 16, 16))
    vol = _blob_volume(np.zeros(3))
    s = build_sample(vol, vol, np.zeros(3), 5.0, np.zeros(3), cfg, np.array([0.0, 0.0, 30.0]))
    assert s["target_inside"] == 0.0 and s["target_center"][0] > 1.0


def test_flips_mirror_images_priors_and_targets_consistently():
    cfg = PreprocessConfig(search_size_mm=(32, 48, 40), template_size_mm=(24, 32, 32))
    truth = np.array([3.0, -6.0, 4.0])
    follow = _blob_volume(truth)
    start = truth + np.array([5.0, -4.0, 3.0])
    plain = build_sample(follow, follow, truth, 6.0, start, cfg, truth, 6.0)
    flipped = build_sample(follow, follow, truth, 6.0, start, cfg, truth, 6.0, flip_axes=(0, 2))
    np.testing.assert_array_equal(flipped["search_image"], plain["search_image"][:, ::-1, :, ::-1])
    np.testing.assert_allclose(normalized_to_lps(flipped["target_center"], flipped["meta"]), truth, atol=1e-4)
    np.testing.assert_allclose(normalized_to_lps(flipped["search_start"], flipped["meta"]), start, atol=1e-4)
    # the prior is recomputed on the lattice of the mirrored crop, so the brightest search voxel and the
    # target peak token still agree
    peak = np.array(np.unravel_index(np.argmax(flipped["search_image"][0]), (32, 48, 40)))
    assert np.all(np.abs(peak_index(flipped["target_heatmap"]) * 8 - peak) <= 4)


def test_antialias_is_a_no_op_at_the_crop_spacing_and_smooths_finer_volumes():
    rng = np.random.default_rng(0)
    coarse = Volume(rng.normal(0, 100, (20, 20, 20)).astype(np.float32), np.zeros(3), np.full(3, 2.0))
    c = coarse.center_lps_mm()
    plain = sample_crop(coarse, c, (16, 16, 16), 2.0)
    assert np.array_equal(sample_crop(coarse, c, (16, 16, 16), 2.0, antialias=True), plain)
    fine = Volume(rng.normal(0, 100, (60, 60, 60)).astype(np.float32), np.zeros(3), np.full(3, 0.5))
    c = fine.center_lps_mm()
    rough = sample_crop(fine, c, (16, 16, 16), 2.0)
    smooth = sample_crop(fine, c, (16, 16, 16), 2.0, antialias=True)
    assert smooth.std() < 0.5 * rough.std()  # white noise averaged over the 2 mm footprint
    assert abs(smooth.mean() - rough.mean()) < 20.0
