"""Synthetic pairs: exact forward/inverse maps, matching lesion patches, FOV, spacing, determinism."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import shared_file
from scipy.ndimage import map_coordinates

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.lesions import Lesion
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.resample import kji_to_lps_affine
from TLTTrackerLib.synthetic import (
    GridDisplacementTransform,
    PairConfig,
    RadialGrowthTransform,
    affine_residual_at_lesions,
    make_pair,
)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(0)


@pytest.fixture(scope="module")
def pair(phantom):
    return make_pair(*phantom, rng=1)


def _values(volume: Volume, points: np.ndarray) -> np.ndarray:
    return map_coordinates(
        volume.array.astype(np.float32), volume.lps_to_index_kji(points).T, order=1, cval=-1024
    )


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def _cube(center: np.ndarray, half_mm: float, step_mm: float = 1.0) -> np.ndarray:
    g = np.arange(-half_mm, half_mm + 1e-9, step_mm)
    return center + np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def test_forward_and_inverse_maps_round_trip(pair):
    rng = np.random.default_rng(0)
    pts = pair.baseline.index_kji_to_lps(
        rng.uniform(0, 1, (500, 3)) * (np.array(pair.baseline.shape_kji) - 1)
    )
    pts = np.vstack([pts, [les.center_lps_mm for les in pair.baseline_lesions]])
    fwd = pair.baseline_to_followup.apply(pts)
    assert np.max(np.linalg.norm(pair.followup_to_baseline.apply(fwd) - pts, axis=1)) < 0.01
    assert (
        np.max(
            np.linalg.norm(
                pair.baseline_to_followup.apply(pair.followup_to_baseline.apply(fwd)) - fwd, axis=1
            )
        )
        < 0.01
    )
    assert np.median(np.linalg.norm(fwd - pts, axis=1)) > 3.0  # something actually moved


def test_fast_grid_path_equals_point_path(pair):
    fu, back = pair.followup, pair.followup_to_baseline
    m, o = kji_to_lps_affine(pair.baseline)
    mi = np.linalg.inv(m)
    ks = np.array([0.0, 2.5, fu.shape_kji[0] / 2 + 0.25, fu.shape_kji[0] - 1.0])
    fast = back.map_grid(fu.index_to_lps_matrix(), ks, fu.shape_kji[1], fu.shape_kji[2], mi, -mi @ o)
    kk, jj, ii = np.meshgrid(ks, np.arange(fu.shape_kji[1]), np.arange(fu.shape_kji[2]), indexing="ij")
    pts = fu.index_kji_to_lps(np.stack([kk, jj, ii], -1).reshape(-1, 3))
    slow = (back.apply(pts) @ mi.T - mi @ o).T.reshape(fast.shape)
    assert np.abs(fast - slow).max() < 1e-3  # voxels


def test_followup_lesions_are_exact_images_and_inside(pair):
    assert [b.id for b in pair.baseline_lesions] == [f.id for f in pair.followup_lesions]
    for b, f in zip(pair.baseline_lesions, pair.followup_lesions):
        np.testing.assert_allclose(
            pair.baseline_to_followup.apply(b.center_lps_mm), f.center_lps_mm, atol=1e-6
        )
        assert pair.followup.contains_lps(
            f.center_lps_mm, margin_voxels=-f.radius_mm / pair.followup.spacing_mm.max()
        )
        s = pair.info["growth_factors"][b.id]
        assert 0.6 <= s <= 1.6
        assert f.radius_mm / (s * b.radius_mm) == pytest.approx(1.0, abs=0.15)  # growth x local volume change


@pytest.mark.parametrize("seed", [0, 1])
def test_lesion_patches_match_through_the_true_map(phantom, seed):
    # low noise: the phantom's liver lesions have little contrast, and this checks geometry, not noise
    pair = make_pair(*phantom, rng=seed, config=PairConfig(noise_hu_range=(3.0, 3.0)))
    for b in pair.baseline_lesions:
        grid = _cube(b.center_lps_mm, b.radius_mm + 6.0)
        base = _values(pair.baseline, grid)
        mapped = _values(pair.followup, pair.baseline_to_followup.apply(grid))
        shifted = _values(pair.followup, pair.baseline_to_followup.apply(grid) + [0.0, 0.0, 8.0])
        assert _ncc(base, mapped) > 0.8, b.id
        assert _ncc(base, mapped) > _ncc(base, shifted) + 0.1, b.id


def test_no_growth_patch_at_true_centre_matches_directly(phantom):
    cfg = PairConfig(
        growth_factor_range=(1.0, 1.0), slice_thickness_mm_choices=(2.5,), noise_hu_range=(5.0, 5.0)
    )
    p = make_pair(*phantom, rng=5, config=cfg)
    for b, f in zip(p.baseline_lesions, p.followup_lesions):
        half = b.radius_mm + 3.0
        base = _values(p.baseline, _cube(b.center_lps_mm, half))
        here = _values(p.followup, _cube(f.center_lps_mm, half))
        assert _ncc(base, here) > 0.8, b.id
        assert f.radius_mm == pytest.approx(b.radius_mm, rel=0.12)


def test_growth_keeps_centre_and_scales_radially():
    c = np.array([10.0, -4.0, 7.0])
    for s in (0.6, 1.6):
        g = RadialGrowthTransform(c, s, inner_radius_mm=1.2 * s * 5.0, outer_radius_mm=3.0 * s * 5.0)
        assert np.array_equal(g.apply(c), c) and np.array_equal(g.apply_inverse(c), c)
        d = np.array([[3.0, 0.0, 0.0], [0.0, -2.0, 4.0]]) * 0.9  # within the uniform zone before growth
        np.testing.assert_allclose(g.apply(c + d) - c, s * d, atol=1e-9)
        far = c + [100.0, 0, 0]
        np.testing.assert_allclose(g.apply(far), far)
        radii = np.linspace(0.01, 40, 400)
        out = np.linalg.norm(g.apply(c + radii[:, None] * [0.6, 0.0, 0.8]) - c, axis=1)
        assert np.all(np.diff(out) > 0)  # monotone: no folding
        pts = c + np.random.default_rng(0).normal(size=(200, 3)) * 10
        np.testing.assert_allclose(g.apply_inverse(g.apply(pts)), pts, atol=1e-8)


def test_displacement_grid_inverse():
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter

    u = np.stack([gaussian_filter(rng.normal(size=(12, 12, 12)), 2.0) for _ in range(3)], -1) * 20
    t = GridDisplacementTransform(u, np.zeros(3), np.full(3, 8.0), np.eye(3), tol_mm=1e-5)
    pts = rng.uniform(-10, 100, (300, 3))
    np.testing.assert_allclose(t.apply(t.apply_inverse(pts)), pts, atol=1e-4)


def test_spacing_fov_and_clamping(phantom):
    volume, lesions = phantom
    arr = volume.array.copy()
    arr[:, :3, :] = -3024  # outside-FOV padding in the input
    cfg = PairConfig(
        slice_thickness_mm_choices=(5.0,),
        fov_z_fraction_range=(0.6, 0.6),
        fov_inplane_fraction_range=(0.8, 0.8),
        inplane_spacing_factor_range=(1.1, 1.1),
    )
    p = make_pair(volume.with_array(arr), lesions[:1], rng=2, config=cfg)  # one lesion: the crop is free
    assert p.baseline.array.min() >= -1024 and p.followup.array.min() >= -1024
    assert p.followup.array.dtype == np.int16
    np.testing.assert_allclose(p.followup.spacing_mm, [1.65, 1.65, 5.0])
    assert p.info["slice_thickness_mm"] == 5.0
    np.testing.assert_allclose(p.followup.extent_mm(), volume.extent_mm() * [0.8, 0.8, 0.6], atol=5.0)
    assert p.followup.contains_lps(p.followup_lesions[0].center_lps_mm)


def test_deterministic_for_a_seed(phantom):
    a, b, c = (make_pair(*phantom, rng=s) for s in (3, 3, 4))
    assert np.array_equal(a.followup.array, b.followup.array)
    assert a.followup.same_geometry(b.followup)
    np.testing.assert_array_equal(
        [f.center_lps_mm for f in a.followup_lesions], [f.center_lps_mm for f in b.followup_lesions]
    )
    assert a.info["seed"] == 3
    assert not np.allclose(
        [f.center_lps_mm for f in a.followup_lesions], [f.center_lps_mm for f in c.followup_lesions]
    )


def test_affine_residual_is_zero_without_nonrigid_motion(phantom):
    rigid = PairConfig(nonrigid_rms_mm=0.0, growth_factor_range=(1.0, 1.0))
    res = affine_residual_at_lesions(make_pair(*phantom, rng=6, config=rigid))
    assert max(res.values()) < 0.05
    res = affine_residual_at_lesions(make_pair(*phantom, rng=6))
    assert 1.0 < np.mean(list(res.values())) < 20.0


def test_config_rejects_folding_growth():
    with pytest.raises(ValueError, match="folds"):
        PairConfig(growth_factor_range=(0.3, 1.0))
    dataclasses.replace(PairConfig(), growth_factor_range=(0.6, 2.0))  # growth never folds


@pytest.mark.shared_data
def test_lidc_nodule_patches_match(tmp_path):
    from TLTTrackerLib.io import read_volume

    volume = read_volume(shared_file("ct/lidc_0001_2mm.nii.gz"))
    nodules = json.loads(shared_file("ct/lidc_0001_nodules.json").read_text(encoding="utf-8"))["nodules"]
    lesions = [
        Lesion(f"N{n + 1}", d["centre_mm"], max(d["equiv_radius_mm"], 1.5)) for n, d in enumerate(nodules)
    ]
    p = make_pair(volume, lesions, rng=0)
    for b, f in zip(p.baseline_lesions, p.followup_lesions):
        assert p.followup.contains_lps(f.center_lps_mm)
        grid = _cube(b.center_lps_mm, max(b.radius_mm + 6.0, 12.0), 2.0)
        base = _values(p.baseline, grid)
        mapped = _values(p.followup, p.baseline_to_followup.apply(grid))
        assert _ncc(base, mapped) > 0.8, b.id


@pytest.mark.parametrize(
    "gap_mm, grows", [(4.0, {"big": False, "near": False}), (40.0, {"big": True, "near": False})]
)
def test_growth_zones_never_hold_another_lesion(phantom, gap_mm, grows):
    volume, lesions = phantom
    big = Lesion("big", lesions[0].center_lps_mm, 8.0)
    near = Lesion("near", big.center_lps_mm + [big.radius_mm + gap_mm, 0, 0], 3.0)
    cfg = PairConfig(growth_factor_range=(1.3, 1.5))
    p = make_pair(volume, [big, near], rng=0, config=cfg)
    assert {k: v > 1.0 for k, v in p.info["growth_factors"].items()} == grows
    still = dataclasses.replace(cfg, growth_factor_range=(1.0, 1.0))
    without = make_pair(volume, [big, near], rng=0, config=still)
    for a, b in zip(p.followup_lesions, without.followup_lesions):  # growth leaves every centre in place
        np.testing.assert_allclose(a.center_lps_mm, b.center_lps_mm, atol=1e-6)
        assert a.radius_mm == pytest.approx(b.radius_mm * p.info["growth_factors"][a.id])


def test_info_is_json_and_no_lesions_is_fine(phantom):
    p = make_pair(phantom[0], [], rng=9)
    assert p.followup_lesions == [] and p.followup.array.dtype == np.int16
    text = json.dumps(p.info)
    assert "slice_thickness_mm" in text and "nonrigid_rms_mm" in text


def test_closed_form_largest_eigenvalue_matches_eigvalsh():
    from TLTTrackerLib.synthetic import _largest_eigenvalue_sym3

    g = np.random.default_rng(0).normal(size=(500, 3, 3))
    m = np.einsum("...ji,...jk->...ik", g, g)
    assert np.allclose(_largest_eigenvalue_sym3(m), np.linalg.eigvalsh(m)[:, -1], rtol=1e-9, atol=1e-12)
    assert _largest_eigenvalue_sym3(np.zeros((3, 3))) == 0.0
    assert _largest_eigenvalue_sym3(np.diag([1.0, 3.0, 2.0])) == pytest.approx(3.0)
