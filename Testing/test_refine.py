"""The refine method recovers a lesion centre after affine residual errors, on a textured synthetic CT."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.refine import RefineConfig, refine_center
from TLTTrackerLib.resample import warp_volume
from TLTTrackerLib.transforms import AffineTransform


def _textured_ct(seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    tex = gaussian_filter(rng.normal(size=(60, 110, 110)), (1.0, 2.5, 2.5))
    arr = (-700 + 900 * tex / tex.std()).clip(-1024, 1500)
    kk, jj, ii = np.indices(arr.shape)
    blob = ((ii - 55) * 1.0) ** 2 + ((jj - 50) * 1.0) ** 2 + ((kk - 30) * 2.0) ** 2 < 36
    arr[blob] = 60
    return Volume(arr.astype(np.int16), origin_lps_mm=[-55, -60, -60], spacing_mm=[1.0, 1.0, 2.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_refine_recovers_centre_from_a_wrong_affine_start(seed):
    baseline = _textured_ct(seed)
    rng = np.random.default_rng(seed + 10)
    matrix = Rotation.from_euler("xyz", rng.uniform(-6, 6, 3), degrees=True).as_matrix() * 1.04
    truth_t = AffineTransform.about_center(matrix, baseline.center_lps_mm(), rng.uniform(-10, 10, 3))
    reference = Volume(np.zeros((40, 100, 100), np.int16), origin_lps_mm=truth_t.apply(baseline.center_lps_mm()) - [50, 50, 60],
                       spacing_mm=[1.1, 1.1, 3.0])
    followup = warp_volume(baseline, reference, truth_t.inverse())
    centre = baseline.index_kji_to_lps([30, 50, 55])
    wrong = AffineTransform(truth_t.matrix, truth_t.translation_mm + np.array([6.0, -5.0, 4.0]))
    res = refine_center(baseline, followup, centre, 6.0, wrong)
    err_start = np.linalg.norm(wrong.apply(centre) - truth_t.apply(centre))
    err = np.linalg.norm(res.center_lps_mm - truth_t.apply(centre))
    assert err_start > 8
    assert err < 1.0, (err, res.level_similarity)
    assert not res.fell_back and 0.5 < res.confidence <= 1.0


def test_refine_falls_back_to_affine_on_unrelated_images():
    baseline = _textured_ct(0)
    other = _textured_ct(5)
    centre = baseline.index_kji_to_lps([30, 50, 55])
    cfg = RefineConfig(min_similarity=0.5)
    res = refine_center(baseline, other, centre, 6.0, AffineTransform.identity(), config=cfg)
    assert res.fell_back
    np.testing.assert_allclose(res.center_lps_mm, centre)
    assert res.confidence < 0.2


def test_refine_keeps_score_maps_in_physical_frame():
    baseline = _textured_ct(0)
    centre = baseline.index_kji_to_lps([30, 50, 55])
    res = refine_center(baseline, baseline, centre, 6.0, AffineTransform.identity(), keep_maps=True)
    score, origin, spacing = res.info["maps"][0]
    k = (score.shape[0] - 1) // 2
    np.testing.assert_allclose(origin + k * spacing, centre)
    np.testing.assert_allclose(res.center_lps_mm, centre, atol=0.3)


def test_trim_box_cuts_faces_mostly_outside_a_scan():
    from TLTTrackerLib.refine import _trim_box

    inside = np.ones((21, 21, 21), bool)
    inside[:6] = False  # the scan ends 4 voxels below the centre (z = 10)
    inside[:, :, 18:] = False
    inside[15, 3, 3] = False  # a stray voxel outside: not worth cutting a face for
    box = _trim_box(inside, h=10, min_keep=2)
    assert box[0] == slice(6, 21)  # z faces peeled up to the scan's edge
    assert box[1] == slice(0, 21)
    assert box[2] == slice(0, 18)
    # never closer than min_keep to the centre, even where the scan ends nearer
    assert _trim_box(inside, h=10, min_keep=6)[0] == slice(4, 21)


def test_quantile_map_undoes_a_monotone_intensity_change():
    from TLTTrackerLib.refine import quantile_map, remap

    values = np.random.default_rng(0).normal(0.0, 300.0, size=(20, 20, 20)).astype(np.float32)
    changed = np.where(values > 0, values * 1.3 + 40.0, values).astype(np.float32)  # soft tissue brighter
    back = remap(changed, quantile_map(values, changed, points=31))
    inner = (values > -700) & (values < 700)  # within the map's end knots
    assert np.median(np.abs(back - values)[inner]) < 10.0
    assert np.median(np.abs(changed - values)[inner & (values > 0)]) > 30.0


def test_remap_shifts_beyond_its_end_knots():
    from TLTTrackerLib.refine import remap

    values = np.array([-50.0, 0.0, 50.0, 100.0, 300.0], np.float32)
    out = remap(values, (np.array([0.0, 100.0]), np.array([10.0, 210.0])))
    np.testing.assert_allclose(out, [-40.0, 10.0, 110.0, 210.0, 410.0])


def test_refine_with_intensity_matching_tracks_through_a_contrast_change():
    baseline = _textured_ct(0)
    truth_t = AffineTransform.about_center(np.eye(3), baseline.center_lps_mm(), np.array([3.0, -2.0, 2.0]))
    reference = Volume(np.zeros((40, 100, 100), np.int16), origin_lps_mm=truth_t.apply(baseline.center_lps_mm()) - [50, 50, 60],
                       spacing_mm=[1.1, 1.1, 3.0])
    followup = warp_volume(baseline, reference, truth_t.inverse())
    v = followup.array.astype(np.float32)
    window = (v > -200) & (v < 300)
    v[window] += 60.0 * np.sin(np.pi * (v[window] + 200) / 500) ** 2  # enhancement of soft tissue (monotone)
    followup = Volume(v.astype(np.int16), followup.origin_lps_mm, followup.spacing_mm, followup.direction)
    centre = baseline.index_kji_to_lps([30, 50, 55])
    res = refine_center(baseline, followup, centre, 6.0, AffineTransform.identity(),
                        config=RefineConfig(match_intensity=True))
    assert np.linalg.norm(res.center_lps_mm - truth_t.apply(centre)) < 1.0


def test_a_prior_displacement_starts_the_first_level_instead_of_the_local_affine():
    """Start 8.8 mm off; the prior is the exact displacement (constant: the affine's matrix is right), evaluated
    once on every node of the first level's grid."""
    baseline = _textured_ct(2)
    truth_t = AffineTransform(np.eye(3), np.array([3.0, -2.0, 4.0]))
    followup = warp_volume(baseline, baseline, truth_t.inverse())
    centre = baseline.index_kji_to_lps([30, 50, 55])
    wrong = AffineTransform(np.eye(3), truth_t.translation_mm + np.array([6.0, -5.0, 4.0]))
    calls = []

    def prior(offsets_mm):
        calls.append(offsets_mm.shape)
        return np.broadcast_to(truth_t.apply(centre) - wrong.apply(centre), offsets_mm.shape)

    res = refine_center(baseline, followup, centre, 6.0, wrong, prior=prior)
    assert len(calls) == 1 and calls[0][1] == 3 and calls[0][0] > 1000
    assert np.linalg.norm(res.center_lps_mm - truth_t.apply(centre)) < 1.0
