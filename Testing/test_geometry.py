"""Volume geometry: index <-> LPS round trips (anisotropic, oblique), agreement with SimpleITK, RAS <-> LPS."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from TLTTrackerLib.geometry import Volume, lps_to_ras, ras_to_lps
from TLTTrackerLib.io import volume_to_sitk

from conftest import oblique_direction

# name, origin_lps_mm, spacing_mm (i, j, k), direction
CASES = [
    ("identity", np.zeros(3), np.ones(3), np.eye(3)),
    ("anisotropic", np.array([-166.0, -171.7, -340.0]), np.array([0.703, 0.703, 2.5]), np.eye(3)),
    ("oblique", np.array([12.0, -4.0, 30.0]), np.array([0.8, 1.1, 3.0]), oblique_direction(20)),
    ("oblique-steep", np.array([-3.0, 7.5, 0.25]), np.array([2.0, 0.5, 1.25]), oblique_direction(65)),
    ("deeplesion", np.zeros(3), np.array([0.8, 0.8, 5.0]), np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1.0]])),
    ("flipped-ras", np.array([100.0, 120.0, -50.0]), np.array([0.9, 0.9, 1.5]), np.diag([-1.0, -1.0, 1.0])),
]
IDS = [c[0] for c in CASES]


def _volume(origin, spacing, direction, shape=(7, 9, 11)):
    return Volume(np.zeros(shape, np.int16), origin, spacing, direction)


@pytest.mark.parametrize("name, origin, spacing, direction", CASES, ids=IDS)
def test_index_lps_round_trip(name, origin, spacing, direction, rng):
    vol = _volume(origin, spacing, direction)
    idx_kji = rng.uniform(-2, 12, size=(20, 3))
    lps = vol.index_kji_to_lps(idx_kji)
    assert lps.shape == (20, 3)
    np.testing.assert_allclose(vol.lps_to_index_kji(lps), idx_kji, atol=1e-9)
    np.testing.assert_allclose(vol.index_ijk_to_lps(idx_kji[:, ::-1]), lps, atol=1e-9)
    np.testing.assert_allclose(vol.lps_to_index_ijk(lps), idx_kji[:, ::-1], atol=1e-9)
    # one point (3,) behaves like a row of (N, 3)
    np.testing.assert_allclose(vol.index_kji_to_lps(idx_kji[3]), lps[3], atol=1e-9)
    # the homogeneous matrix says the same
    homogeneous = np.c_[idx_kji[:, ::-1], np.ones(20)] @ vol.index_to_lps_matrix().T
    np.testing.assert_allclose(homogeneous[:, :3], lps, atol=1e-9)
    # steps along k move by spacing_k along direction column k
    step = vol.index_kji_to_lps([1, 0, 0]) - vol.index_kji_to_lps([0, 0, 0])
    np.testing.assert_allclose(step, spacing[2] * direction[:, 2], atol=1e-12)


@pytest.mark.parametrize("name, origin, spacing, direction", CASES, ids=IDS)
def test_agrees_with_simpleitk(name, origin, spacing, direction, rng):
    vol = _volume(origin, spacing, direction)
    image = volume_to_sitk(vol)
    for k, j, i in rng.uniform(-2, 12, size=(8, 3)):
        expected = image.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k)))
        np.testing.assert_allclose(vol.index_kji_to_lps([k, j, i]), expected, atol=1e-9)
        back = image.TransformPhysicalPointToContinuousIndex(expected)
        np.testing.assert_allclose(vol.lps_to_index_ijk(expected), back, atol=1e-6)
    # array order: GetArrayFromImage is (k, j, i) like Volume.array
    arr = np.zeros((7, 9, 11), np.int16)
    arr[6, 2, 9] = 5
    image = volume_to_sitk(vol.with_array(arr))
    assert image.GetPixel(9, 2, 6) == 5 and image.GetSize() == vol.size_ijk
    np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((9, 2, 6)), vol.index_kji_to_lps([6, 2, 9]))


def test_kji_order_is_numpy_order():
    vol = Volume(np.zeros((4, 5, 6)), spacing_mm=[1.0, 2.0, 3.0])
    np.testing.assert_allclose(vol.index_kji_to_lps([3, 1, 2]), [2.0, 2.0, 9.0])  # x = i·1, y = j·2, z = k·3
    np.testing.assert_allclose(vol.index_ijk_to_lps([3, 1, 2]), [3.0, 2.0, 6.0])
    assert vol.size_ijk == (6, 5, 4) and vol.shape_kji == (4, 5, 6)


@pytest.mark.parametrize(
    "ras, lps",
    [
        ([1.0, 2.0, 3.0], [-1.0, -2.0, 3.0]),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([-4.5, 5.0, -6.0], [4.5, -5.0, -6.0]),
    ],
)
def test_ras_lps_flip_x_and_y(ras, lps):
    np.testing.assert_allclose(ras_to_lps(ras), lps)
    np.testing.assert_allclose(lps_to_ras(lps), ras)
    np.testing.assert_allclose(lps_to_ras(ras_to_lps(np.array([ras, lps]))), [ras, lps])  # (N, 3)


@pytest.mark.parametrize("name, origin, spacing, direction", CASES, ids=IDS)
@pytest.mark.parametrize(
    "index_kji, margin, inside",
    [
        ((3, 4, 5), 0.5, True),
        ((0, 0, 0), 0.5, True),
        ((6, 8, 10), 0.5, True),  # last voxel centre
        ((6.49, 8, 10), 0.5, True),  # just inside the outer face
        ((6.6, 8, 10), 0.5, False),
        ((-0.6, 0, 0), 0.5, False),
        ((-0.6, 0, 0), 1.0, True),
        ((3, 9.2, 5), 0.0, False),
        ((3, -0.01, 5), 0.0, False),
    ],
)
def test_contains_lps(name, origin, spacing, direction, index_kji, margin, inside):
    vol = _volume(origin, spacing, direction)
    point = vol.index_kji_to_lps(np.asarray(index_kji, float))
    assert bool(vol.contains_lps(point, margin_voxels=margin)) is inside


def test_contains_many_points_centre_and_corners():
    vol = Volume(np.zeros((10, 20, 30)), [5, 5, 5], [1, 1, 2], oblique_direction(30))
    assert vol.contains_lps(vol.center_lps_mm())
    assert vol.contains_lps(vol.corners_lps_mm()).tolist() == [True] * 8
    far = vol.center_lps_mm() + 100 * vol.direction[:, 0]
    assert vol.contains_lps(np.array([vol.center_lps_mm(), far])).tolist() == [True, False]
    np.testing.assert_allclose(vol.extent_mm(), [30, 20, 20])
    np.testing.assert_allclose(vol.lps_to_index_kji(vol.center_lps_mm()), [4.5, 9.5, 14.5], atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"array": np.zeros((3, 3))}, "3D"),
        ({"array": np.zeros((3, 3, 3, 1))}, "3D"),
        ({"array": np.zeros((3, 3, 3)), "spacing_mm": [1, 0, 1]}, "positive"),
        ({"array": np.zeros((3, 3, 3)), "spacing_mm": [1, 1]}, "3 finite"),
        ({"array": np.zeros((3, 3, 3)), "direction": np.ones((3, 3))}, "orthonormal"),
        ({"array": np.zeros((3, 3, 3)), "direction": 2 * np.eye(3)}, "orthonormal"),
        ({"array": np.zeros((3, 3, 3)), "origin_lps_mm": [0, np.nan, 0]}, "finite"),
    ],
)
def test_invalid_geometry_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Volume(**kwargs)


def test_same_geometry_and_with_array():
    vol = Volume(np.zeros((2, 3, 4)), [1, 2, 3], [1, 1, 2], oblique_direction(10))
    other = vol.with_array(np.ones((2, 3, 4)))
    assert vol.same_geometry(other) and other.array.sum() == 24
    assert not vol.same_geometry(Volume(np.zeros((2, 3, 4)), [1, 2, 3.1], [1, 1, 2], oblique_direction(10)))
    assert not vol.same_geometry(Volume(np.zeros((2, 3, 5)), [1, 2, 3], [1, 1, 2], oblique_direction(10)))
    with pytest.raises(ValueError):
        vol.with_array(np.ones((2, 3, 5)))
    assert "shape_kji=(2, 3, 4)" in repr(vol)
    assert isinstance(sitk.Image, type)
