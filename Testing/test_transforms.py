"""Point transforms: affine algebra, dict round trips, displacement fields, composites."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from TLTTrackerLib.transforms import AffineTransform, CompositeTransform, DisplacementFieldTransform

from conftest import oblique_direction


def _rotation(angles_deg) -> np.ndarray:
    return Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()


AFFINES = {
    "identity": AffineTransform.identity(),
    "translation": AffineTransform(np.eye(3), [10.0, -5.0, 2.5]),
    "rotation": AffineTransform(_rotation([10, -20, 30]), [0.0, 3.0, -7.0]),
    "scale": AffineTransform(np.diag([1.1, 0.9, 1.25]), [1.0, 2.0, 3.0]),
    "shear": AffineTransform(np.array([[1.0, 0.2, 0.0], [0.0, 1.0, -0.1], [0.05, 0.0, 0.95]]), [-4.0, 0.0, 8.0]),
    "oblique-scaled": AffineTransform(oblique_direction(35) @ np.diag([0.8, 1.2, 1.0]), [50.0, -60.0, 70.0]),
}
NAMES = list(AFFINES)


@pytest.mark.parametrize("name", NAMES)
def test_apply_matches_the_formula_and_shapes(name, rng):
    a = AFFINES[name]
    pts = rng.normal(scale=50, size=(10, 3))
    np.testing.assert_allclose(a.apply(pts), (a.matrix @ pts.T).T + a.translation_mm, atol=1e-12)
    np.testing.assert_allclose(a.apply(pts[0]), a.apply(pts)[0])  # (3,) and (N, 3) alike
    assert a.apply(pts.reshape(2, 5, 3)).shape == (2, 5, 3)


@pytest.mark.parametrize("name", NAMES)
def test_inverse_and_homogeneous(name, rng):
    a = AFFINES[name]
    pts = rng.normal(scale=50, size=(10, 3))
    np.testing.assert_allclose(a.inverse().apply(a.apply(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(a.apply(a.inverse().apply(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(a.homogeneous() @ a.inverse().homogeneous(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(AffineTransform.from_homogeneous(a.homogeneous()).apply(pts), a.apply(pts))


@pytest.mark.parametrize(
    "first, second", [("rotation", "translation"), ("shear", "scale"), ("oblique-scaled", "rotation")]
)
def test_then_applies_self_first(first, second, rng):
    a, b = AFFINES[first], AFFINES[second]
    pts = rng.normal(scale=50, size=(10, 3))
    np.testing.assert_allclose(a.then(b).apply(pts), b.apply(a.apply(pts)), atol=1e-9)
    np.testing.assert_allclose(a.then(b).homogeneous(), b.homogeneous() @ a.homogeneous(), atol=1e-12)
    if first != second:  # order matters for these pairs
        assert not np.allclose(a.then(b).apply(pts), b.then(a).apply(pts))
    c = AFFINES["shear"]
    np.testing.assert_allclose(a.then(b).then(c).apply(pts), a.then(b.then(c)).apply(pts), atol=1e-9)


@pytest.mark.parametrize("name", ["rotation", "scale", "shear"])
@pytest.mark.parametrize("shift", [None, [1.0, 2.0, 3.0]])
def test_about_center_keeps_the_centre_then_shifts(name, shift, rng):
    c = np.array([10.0, -5.0, 3.0])
    m = AFFINES[name].matrix
    t = AffineTransform.about_center(m, c, shift)
    expected_shift = np.zeros(3) if shift is None else np.asarray(shift)
    np.testing.assert_allclose(t.apply(c), c + expected_shift, atol=1e-12)
    p = rng.normal(size=3)
    np.testing.assert_allclose(t.apply(p), m @ (p - c) + c + expected_shift, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_dict_round_trip_through_json(name, rng):
    a = AFFINES[name]
    d = json.loads(json.dumps(a.to_dict()))  # must be plain JSON
    assert d["type"] == "affine"
    b = AffineTransform.from_dict(d)
    np.testing.assert_array_equal(a.homogeneous(), b.homogeneous())


def _field(shape=(4, 5, 6), origin=(-10.0, 20.0, 5.0), spacing=(2.0, 3.0, 4.0), coeff=None):
    """A displacement linear in position: u(p) = coeff @ (p - origin) (trilinear interpolation is exact)."""
    coeff = np.array([[0.1, 0.0, -0.05], [0.02, 0.2, 0.0], [0.0, -0.1, 0.3]]) if coeff is None else coeff
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    node_offsets = np.stack([x * spacing[0], y * spacing[1], z * spacing[2]], axis=-1)  # (Z, Y, X, 3) mm
    return DisplacementFieldTransform(node_offsets @ coeff.T, origin, spacing), np.asarray(origin), coeff


def test_displacement_field_is_exact_for_linear_fields(rng):
    t, origin, coeff = _field()
    extent = np.array([5, 4, 3]) * np.array([2.0, 3.0, 4.0])  # (X-1, Y-1, Z-1) × spacing
    pts = origin + rng.uniform(0, 1, size=(50, 3)) * extent
    np.testing.assert_allclose(t.displacement_at(pts), (pts - origin) @ coeff.T, atol=1e-9)
    np.testing.assert_allclose(t.apply(pts), pts + (pts - origin) @ coeff.T, atol=1e-9)
    assert t.apply(pts.reshape(5, 10, 3)).shape == (5, 10, 3)


@pytest.mark.parametrize(
    "offset_xyz, clamped_xyz",
    [
        ([-100.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([0.0, 500.0, 0.0], [0.0, 12.0, 0.0]),
        ([1e3, 1e3, 1e3], [10.0, 12.0, 12.0]),
    ],
)
def test_displacement_field_clamps_outside_the_grid(offset_xyz, clamped_xyz):
    t, origin, coeff = _field()
    np.testing.assert_allclose(t.displacement_at(origin + offset_xyz), coeff @ np.asarray(clamped_xyz), atol=1e-9)


def test_displacement_field_interpolates_between_nodes():
    field = np.zeros((3, 3, 3, 3))
    field[..., 0] = np.arange(3)[None, None, :] * 2.0  # u_x = 2 × (grid x index)
    t = DisplacementFieldTransform(field, grid_origin_lps_mm=[0, 0, 0], grid_spacing_mm=[10, 10, 10])
    np.testing.assert_allclose(t.apply([5.0, 0.0, 0.0]), [6.0, 0, 0])  # halfway between nodes 0 and 1
    np.testing.assert_allclose(t.apply([100.0, 0.0, 0.0]), [104.0, 0, 0])  # beyond the grid: border value


@pytest.mark.parametrize("shape", [(3, 3, 3), (3, 3, 3, 2), (3, 3, 3, 3, 1)])
def test_displacement_field_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="Z, Y, X, 3"):
        DisplacementFieldTransform(np.zeros(shape), np.zeros(3), np.ones(3))


def test_composite_applies_in_order(rng):
    a, b = AFFINES["rotation"], AFFINES["shear"]
    field, _, _ = _field()
    pts = rng.normal(scale=5, size=(4, 3))
    np.testing.assert_allclose(CompositeTransform([a, b]).apply(pts), b.apply(a.apply(pts)))
    np.testing.assert_allclose(CompositeTransform([a, field]).apply(pts), field.apply(a.apply(pts)))
    np.testing.assert_allclose(CompositeTransform([field, a]).apply(pts), a.apply(field.apply(pts)))
    np.testing.assert_allclose(CompositeTransform([]).apply(pts), pts)
    np.testing.assert_allclose(CompositeTransform([a, a.inverse()]).apply(pts), pts, atol=1e-9)
