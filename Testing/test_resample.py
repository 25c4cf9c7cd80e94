"""warp_volume against SimpleITK, its fast and general paths, slice profiles; resample_to_spacing geometry."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import oblique_direction
from scipy.ndimage import gaussian_filter
from scipy.spatial.transform import Rotation

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.io import volume_from_sitk, volume_to_sitk
from TLTTrackerLib.resample import grid_with_spacing, resample_to_spacing, warp_volume
from TLTTrackerLib.transforms import AffineTransform


def _smooth_volume(seed: int = 0, shape=(24, 40, 36), direction=None) -> Volume:
    rng = np.random.default_rng(seed)
    arr = gaussian_filter(rng.normal(size=shape), 2.0) * 800
    return Volume(
        arr.astype(np.float32),
        origin_lps_mm=[-20.0, -25.0, -30.0],
        spacing_mm=[1.1, 0.9, 2.0],
        direction=np.eye(3) if direction is None else direction,
    )


class _PointsOnly:
    """A transform with only ``apply`` (forces warp_volume's general path)."""

    def __init__(self, t: AffineTransform) -> None:
        self.t = t

    def apply(self, p: np.ndarray) -> np.ndarray:
        return self.t.apply(p)


def _random_affine(source: Volume, seed: int) -> AffineTransform:
    rng = np.random.default_rng(seed)
    m = Rotation.from_euler("xyz", rng.uniform(-10, 10, 3), degrees=True).as_matrix() @ np.diag(
        rng.uniform(0.95, 1.05, 3)
    )
    return AffineTransform.about_center(m, source.center_lps_mm(), rng.uniform(-4, 4, 3))


def _reference(source: Volume) -> Volume:
    return Volume(
        np.zeros((20, 30, 32), np.int16),
        source.center_lps_mm() - [14, 12, 18],
        [0.8, 0.85, 1.7],
        oblique_direction(7.0),
    )


def test_identity_warp_returns_the_input():
    src = _smooth_volume(direction=oblique_direction())
    out = warp_volume(src, src, None)
    np.testing.assert_allclose(out.array, src.array, atol=1e-3)
    assert out.same_geometry(src)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_simpleitk_resample_on_an_affine(seed):
    src = _smooth_volume(seed, direction=oblique_direction(12.0))
    ref = _reference(src)
    t = _random_affine(src, seed)  # target (reference) -> source points
    ours = warp_volume(src, ref, t, default_value=-1024.0).array
    itk_t = sitk.AffineTransform(3)
    itk_t.SetMatrix(t.matrix.ravel().tolist())
    itk_t.SetTranslation(t.translation_mm.tolist())
    theirs = volume_from_sitk(
        sitk.Resample(
            volume_to_sitk(src), volume_to_sitk(ref), itk_t, sitk.sitkLinear, -1024.0, sitk.sitkFloat32
        )
    ).array
    # compare where the source point is at least one voxel inside the source (ITK and scipy differ at the rim)
    kk, jj, ii = np.indices(ref.shape_kji)
    pts = t.apply(ref.index_kji_to_lps(np.stack([kk, jj, ii], -1).reshape(-1, 3)))
    idx = src.lps_to_index_kji(pts)
    inside = np.all((idx >= 1) & (idx <= np.array(src.shape_kji) - 2), axis=1).reshape(ref.shape_kji)
    assert inside.mean() > 0.3
    np.testing.assert_allclose(ours[inside], theirs[inside], atol=0.05)
    assert np.all(
        ours[~np.all((idx > -1) & (idx < np.array(src.shape_kji)), axis=1).reshape(ref.shape_kji)] == -1024
    )


def test_general_path_and_chunking_agree_with_affine_path():
    src = _smooth_volume(2)
    ref = _reference(src)
    t = _random_affine(src, 2)
    fast = warp_volume(src, ref, t).array
    general = warp_volume(src, ref, _PointsOnly(t), chunk_voxels=1000).array
    np.testing.assert_allclose(general, fast, atol=1e-2)


def test_slice_profile_averages_over_the_thickness():
    arr = np.zeros((40, 8, 8), np.float32)
    arr[21] = 1000.0  # a 1 mm bright plate at z = 21 mm
    src = Volume(arr, [0, 0, 0], [1.0, 1.0, 1.0])
    ref = Volume(np.zeros((8, 8, 8), np.int16), [0, 0, 0], [1.0, 1.0, 5.0])  # slices centred at z = 5 k
    thin = warp_volume(src, ref, None).array[:, 4, 4]
    thick = warp_volume(src, ref, None, slice_thickness_mm=5.0).array[:, 4, 4]
    assert thin.max() == 0  # point sampling misses the plate between slice centres
    assert thick.max() == pytest.approx(200.0, abs=1e-3)  # 1 of 5 samples (one per source mm) hits it
    assert np.argmax(thick) == 4  # the slice covering z = 17.5..22.5


def test_integer_output_is_rounded_and_clipped():
    src = Volume(np.full((4, 4, 4), 40000.0, np.float32))
    out = warp_volume(src, src, None, dtype=np.int16)
    assert out.array.dtype == np.int16 and out.array.max() == 32767


def test_resample_to_spacing_keeps_extent_and_position():
    arr = np.full((30, 64, 64), -1000, np.int16)
    arr[14:17, 30:34, 20:24] = 1000
    vol = Volume(arr, [10.0, -5.0, 3.0], [0.7, 0.7, 2.5], oblique_direction(15.0))
    out = resample_to_spacing(vol, 2.0)
    assert out.array.dtype == np.int16
    np.testing.assert_allclose(out.spacing_mm, 2.0)
    np.testing.assert_allclose(out.center_lps_mm(), vol.center_lps_mm(), atol=1e-6)
    np.testing.assert_allclose(out.extent_mm(), vol.extent_mm(), atol=2.0)

    def centroid(v: Volume) -> np.ndarray:
        w = np.maximum(v.array.astype(float) + 1000, 0)
        idx = np.argwhere(w > 0)
        return v.index_kji_to_lps(np.average(idx, axis=0, weights=w[w > 0]))

    np.testing.assert_allclose(centroid(out), centroid(vol), atol=0.5)
    grid = grid_with_spacing(vol, [1.4, 1.4, 5.0])
    assert grid.shape_kji == (15, 32, 32)
