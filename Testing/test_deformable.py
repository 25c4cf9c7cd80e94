"""The pair's deformable field: it takes up motion the affine missed, and its two directions invert each other."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from TLTTrackerLib.deformable import FieldConfig, PairField, register_field
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.resample import warp_volume
from TLTTrackerLib.transforms import AffineTransform


def _body(seed: int = 0) -> Volume:
    """Organ-scale texture (-800..+200 HU, correlation ≈ 10 mm) on a 2 mm grid, 200 × 200 × 160 mm."""
    rng = np.random.default_rng(seed)
    tex = gaussian_filter(rng.normal(size=(80, 100, 100)), 4.0)
    arr = np.clip(-300 + 500 * tex / tex.std(), -1024, 1500)
    return Volume(arr.astype(np.float32), origin_lps_mm=[-100, -100, -80], spacing_mm=[2.0, 2.0, 2.0])


class _Bump:
    """Follow-up → baseline map of a smooth bump: points near ``centre`` move by up to ``shift`` mm."""

    def __init__(self, centre, shift, sigma_mm=45.0):
        self.centre, self.shift, self.sigma = np.asarray(centre, float), np.asarray(shift, float), sigma_mm

    def apply(self, points):
        p = np.asarray(points, float)
        w = np.exp(-0.5 * np.sum((p - self.centre) ** 2, axis=-1) / self.sigma**2)
        return p - w[..., None] * self.shift


@pytest.fixture(scope="module")
def bumped():
    baseline = _body(1)
    bump = _Bump([0.0, 0.0, 0.0], [14.0, -10.0, 6.0])
    followup = warp_volume(baseline, baseline, bump)  # follow-up(y) = baseline(bump(y))
    return baseline, followup, bump


def test_field_takes_up_motion_the_affine_missed(bumped):
    baseline, followup, bump = bumped
    field = register_field(baseline, followup, AffineTransform.identity())
    # follow-up points near the bump and the baseline points they show (exact truth)
    truth_f = np.array([[0.0, 0.0, 0.0], [10.0, -8.0, 5.0], [-12.0, 6.0, -4.0], [15.0, 10.0, 8.0]])
    truth_b = bump.apply(truth_f)
    affine_error = np.linalg.norm(truth_b - truth_f, axis=1)  # identity affine: follow-up start = baseline point
    field_error = np.linalg.norm(field.to_followup(truth_b) - truth_f, axis=1)
    assert affine_error.min() > 10.0
    assert field_error.max() < 3.0, field_error
    assert field.displacement_kji.shape[-1] == 3 and field.seconds > 0


def test_directions_invert_each_other(bumped):
    baseline, followup, _ = bumped
    field = register_field(baseline, followup, AffineTransform(np.diag([1.02, 0.98, 1.0]), [3.0, -2.0, 1.0]),
                           FieldConfig(levels=((8.0, 20, 1.25), (4.0, 10, 1.25))))
    points = np.array([[0.0, 0.0, 0.0], [20.0, -30.0, 10.0], [-40.0, 25.0, -20.0]])
    there = field.to_followup(points)
    assert np.allclose(field.to_baseline(there), points, atol=0.05)
    assert field.to_followup(points[0]).shape == (3,)


def test_zero_field_is_the_affine():
    grid = Volume(np.zeros((5, 6, 7), np.float32), origin_lps_mm=[-10, -10, -10], spacing_mm=[4.0, 4.0, 4.0])
    affine = AffineTransform(np.eye(3), [5.0, 0.0, -3.0])
    field = PairField(affine, np.zeros((5, 6, 7, 3), np.float32), grid)
    p = np.array([1.0, 2.0, 3.0])
    assert np.allclose(field.to_followup(p), affine.apply(p))
    assert np.allclose(field.to_baseline(affine.apply(p)), p)


def test_field_stands_in_for_the_affine_as_a_point_map():
    """``apply`` and ``matrix``: what the TLT network's start (``TLTPredictor.predict``) asks of a transform."""
    grid = Volume(np.zeros((5, 6, 7), np.float32), origin_lps_mm=[-10, -10, -10], spacing_mm=[4.0, 4.0, 4.0])
    affine = AffineTransform(np.diag([1.1, 1.0, 0.9]), [5.0, 0.0, -3.0])
    displacement = np.zeros((5, 6, 7, 3), np.float32)
    displacement[..., 0] = 2.0  # y + u(y) = T(c): the field puts every point 2 mm lower in x than the affine
    field = PairField(affine, displacement, grid)
    p = np.array([[1.0, 2.0, 3.0], [-4.0, 0.0, 2.0]])
    assert np.allclose(field.apply(p), affine.apply(p) - [2.0, 0.0, 0.0])
    assert np.allclose(field.apply(p[0]), field.to_followup(p[0]))
    assert np.array_equal(field.matrix, affine.matrix)


def test_local_linear_is_the_affine_and_the_fields_shape():
    """u = 0: the affine's own matrix; a linear u(y) = B y on top: y + B y = A c, so dy/dc = (I + B)⁻¹ A."""
    grid = Volume(np.zeros((20, 20, 20), np.float32), origin_lps_mm=[-80, -80, -80], spacing_mm=[8.0, 8.0, 8.0])
    A = np.array([[1.05, 0.02, 0.0], [0.0, 0.97, 0.03], [0.1, 0.0, 1.0]])
    affine = AffineTransform(A, np.array([3.0, 1, 2]))
    c = np.array([4.0, -6.0, 5.0])
    assert np.allclose(PairField(affine, np.zeros((20, 20, 20, 3), np.float32), grid).local_linear(c), A)
    B = np.array([[0.1, 0.05, 0.0], [0.0, -0.05, 0.0], [0.02, 0.0, 0.08]])
    nodes = grid.index_kji_to_lps(np.indices((20, 20, 20)).reshape(3, -1).T).reshape(20, 20, 20, 3)
    sheared = PairField(affine, (nodes @ B.T).astype(np.float32), grid)
    assert np.allclose(sheared.local_linear(c), np.linalg.inv(np.eye(3) + B) @ A, atol=1e-3)
