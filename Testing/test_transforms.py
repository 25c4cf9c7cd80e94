"""Point transforms: affine algebra, displacement fields, composites."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from TLTTrackerLib.transforms import AffineTransform, CompositeTransform, DisplacementFieldTransform


def _random_affine(rng) -> AffineTransform:
    m = Rotation.from_euler("xyz", rng.uniform(-10, 10, 3), degrees=True).as_matrix() @ np.diag(rng.uniform(0.9, 1.1, 3))
    return AffineTransform(m, rng.uniform(-20, 20, 3))


def test_inverse_then_and_homogeneous(rng):
    a, b = _random_affine(rng), _random_affine(rng)
    pts = rng.normal(scale=50, size=(10, 3))
    np.testing.assert_allclose(a.inverse().apply(a.apply(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(a.then(b).apply(pts), b.apply(a.apply(pts)), atol=1e-9)
    np.testing.assert_allclose(AffineTransform.from_homogeneous(a.homogeneous()).apply(pts), a.apply(pts))
    np.testing.assert_allclose(a.apply(pts[0]), a.apply(pts)[0])  # (3,) and (N, 3) alike


def test_about_center_keeps_centre_plus_shift():
    c = np.array([10.0, -5.0, 3.0])
    t = AffineTransform.about_center(np.diag([1.1, 0.9, 1.0]), c, [1, 2, 3])
    np.testing.assert_allclose(t.apply(c), c + [1, 2, 3])


def test_dict_round_trip(rng):
    a = _random_affine(rng)
    b = AffineTransform.from_dict(a.to_dict())
    np.testing.assert_allclose(a.homogeneous(), b.homogeneous())


def test_displacement_field_interpolates_and_clamps():
    field = np.zeros((3, 3, 3, 3))
    field[..., 0] = np.arange(3)[None, None, :] * 2.0  # u_x = 2 * (grid x index)
    t = DisplacementFieldTransform(field, grid_origin_lps_mm=[0, 0, 0], grid_spacing_mm=[10, 10, 10])
    np.testing.assert_allclose(t.apply([5.0, 0.0, 0.0]), [5.0 + 1.0, 0, 0])  # halfway between nodes 0 and 1
    np.testing.assert_allclose(t.apply([100.0, 0.0, 0.0]), [104.0, 0, 0])  # beyond the grid: border value


def test_composite_applies_in_order(rng):
    a, b = _random_affine(rng), _random_affine(rng)
    pts = rng.normal(size=(4, 3))
    np.testing.assert_allclose(CompositeTransform([a, b]).apply(pts), b.apply(a.apply(pts)))
