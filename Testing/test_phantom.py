"""The procedural phantom: deterministic, CT-like HU ranges, lesions where and as large as promised."""

from __future__ import annotations

import numpy as np
import pytest

from TLTTrackerLib.phantom import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(0)


def _mean_in_sphere(volume, center, radius_mm):
    kk, jj, ii = np.indices(volume.shape_kji)
    pts = volume.index_kji_to_lps(np.stack([kk, jj, ii], -1))
    return float(volume.array[np.linalg.norm(pts - center, axis=-1) < radius_mm].mean())


def test_shape_geometry_and_dtype(phantom):
    volume, lesions = phantom
    assert volume.shape_kji == (80, 160, 160) and volume.array.dtype == np.int16
    np.testing.assert_allclose(volume.spacing_mm, [1.5, 1.5, 2.5])
    np.testing.assert_allclose(volume.center_lps_mm(), 0.0, atol=1e-9)
    assert [les.id for les in lesions] == [f"L{n}" for n in range(1, 6)]
    other, _ = make_phantom(1, shape_kji=(40, 64, 72), spacing_mm=(3.0, 3.0, 5.0), n_lesions=2)
    assert other.shape_kji == (40, 64, 72)


def test_deterministic_for_a_seed(phantom):
    again, lesions = make_phantom(0)
    assert np.array_equal(again.array, phantom[0].array)
    np.testing.assert_array_equal([x.center_lps_mm for x in lesions], [x.center_lps_mm for x in phantom[1]])
    assert not np.array_equal(make_phantom(1)[0].array, again.array)


def test_tissue_classes_are_ct_like(phantom):
    arr = phantom[0].array
    fractions = {
        name: np.mean((arr >= lo) & (arr < hi))
        for name, (lo, hi) in {
            "air": (-1024, -950),
            "lung": (-950, -700),
            "fat": (-150, -50),
            "soft": (0, 100),
            "bone": (400, 1200),
        }.items()
    }
    assert all(f > 0.005 for f in fractions.values()), fractions
    assert arr.min() >= -1024 and arr.max() <= 1500


def test_lesions_are_solid_spheres_of_the_stated_size(phantom):
    volume, lesions = phantom
    for les in lesions:
        assert 3.0 <= les.radius_mm <= 15.0
        assert volume.contains_lps(les.center_lps_mm)
        inner = _mean_in_sphere(volume, les.center_lps_mm, 0.6 * les.radius_mm)
        shell = _mean_in_sphere(volume, les.center_lps_mm, 1.8 * les.radius_mm)
        assert -10 < inner < 70, (les.id, inner)  # solid nodule or hypodense liver lesion
        assert abs(inner - shell) > 10, (les.id, inner, shell)  # visible against its surroundings
    for a in lesions:
        for b in lesions:
            if a is not b:
                assert np.linalg.norm(a.center_lps_mm - b.center_lps_mm) > a.radius_mm + b.radius_mm
