"""Volume geometry: index <-> LPS round trips (anisotropic, oblique), agreement with SimpleITK, RAS <-> LPS."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from TLTTrackerLib.geometry import Volume, lps_to_ras, ras_to_lps
from TLTTrackerLib.io import volume_to_sitk

from conftest import oblique_direction

CASES = [
    ("identity", np.zeros(3), np.ones(3), np.eye(3)),
    ("anisotropic", np.array([-166.0, -171.7, -340.0]), np.array([0.703, 0.703, 2.5]), np.eye(3)),
    ("oblique", np.array([12.0, -4.0, 30.0]), np.array([0.8, 1.1, 3.0]), oblique_direction(20)),
    ("deeplesion", np.zeros(3), np.array([0.8, 0.8, 5.0]), np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1.0]])),
]


@pytest.mark.parametrize("name, origin, spacing, direction", CASES, ids=[c[0] for c in CASES])
def test_index_lps_round_trip_and_sitk_agreement(name, origin, spacing, direction, rng):
    vol = Volume(np.zeros((7, 9, 11), np.int16), origin, spacing, direction)
    image = volume_to_sitk(vol)
    idx_kji = rng.uniform(-2, 12, size=(20, 3))
    lps = vol.index_kji_to_lps(idx_kji)
    np.testing.assert_allclose(vol.lps_to_index_kji(lps), idx_kji, atol=1e-9)
    for k, j, i in idx_kji[:5]:
        expected = image.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k)))
        np.testing.assert_allclose(vol.index_kji_to_lps([k, j, i]), expected, atol=1e-9)
    np.testing.assert_allclose(vol.index_to_lps_matrix()[:3, 3], origin)
    np.testing.assert_allclose(vol.index_ijk_to_lps(idx_kji[:, ::-1]), lps)


def test_kji_order_is_numpy_order():
    arr = np.zeros((4, 5, 6))
    arr[3, 1, 2] = 1
    vol = Volume(arr, spacing_mm=[1.0, 2.0, 3.0])
    p = vol.index_kji_to_lps([3, 1, 2])
    np.testing.assert_allclose(p, [2.0, 2.0, 9.0])  # x = i * 1, y = j * 2, z = k * 3
    assert vol.size_ijk == (6, 5, 4) and vol.shape_kji == (4, 5, 6)


def test_contains_centre_corners_and_extent():
    vol = Volume(np.zeros((10, 20, 30)), [5, 5, 5], [1, 1, 2])
    assert vol.contains_lps(vol.center_lps_mm())
    assert not vol.contains_lps(vol.center_lps_mm() + [100, 0, 0])
    assert vol.contains_lps(vol.corners_lps_mm()).all()
    np.testing.assert_allclose(vol.extent_mm(), [30, 20, 20])
    assert vol.contains_lps(np.array([[5, 5, 5], [500, 5, 5]])).tolist() == [True, False]


def test_ras_lps_flip_x_and_y():
    np.testing.assert_allclose(ras_to_lps([1.0, 2.0, 3.0]), [-1, -2, 3])
    pts = np.array([[1.0, 2.0, 3.0], [-4.0, 5.0, -6.0]])
    np.testing.assert_allclose(lps_to_ras(ras_to_lps(pts)), pts)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"array": np.zeros((3, 3))}, "3D"),
        ({"array": np.zeros((3, 3, 3)), "spacing_mm": [1, 0, 1]}, "positive"),
        ({"array": np.zeros((3, 3, 3)), "direction": np.ones((3, 3))}, "orthonormal"),
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
    with pytest.raises(ValueError):
        vol.with_array(np.ones((2, 3, 5)))
    assert "shape_kji=(2, 3, 4)" in repr(vol)
    assert isinstance(sitk.Image, type)
