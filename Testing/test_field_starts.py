"""Starts made from the pair field: the field's shape as a refinement prior. (The snapped field starts are tested
through ``track_point`` in ``test_multistart.py``.)"""

from __future__ import annotations

import numpy as np

from TLTTrackerLib.deformable import PairField
from TLTTrackerLib.field_starts import field_prior
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.transforms import AffineTransform


def test_field_prior_is_the_fields_shape_around_its_start():
    """With u = 0 the field is the affine, whose shape around any start is the affine itself: d = 0; with a
    linear u(y) = B y the prior is D(c + A⁻¹ g) - D(c) - g = ((I + B)⁻¹ - I) g (A = I)."""
    grid = Volume(np.zeros((20, 20, 20), np.float32), origin_lps_mm=[-80, -80, -80], spacing_mm=[8.0, 8.0, 8.0])
    affine = AffineTransform(np.array([[1.05, 0.02, 0.0], [0.0, 0.97, 0.03], [0.0, 0.0, 1.0]]), np.array([3.0, 1, 2]))
    c = np.array([4.0, -6.0, 5.0])
    zero = PairField(affine, np.zeros((20, 20, 20, 3), np.float32), grid)
    g = np.array([[0.0, 0, 0], [10.0, -4, 6], [-12.0, 8, 0]])
    prior = field_prior(zero, c, zero.to_followup(c), np.linalg.inv(affine.matrix))
    assert np.allclose(prior(g), 0.0, atol=1e-3)
    B = np.diag([0.1, -0.05, 0.08])
    nodes = grid.index_kji_to_lps(np.indices((20, 20, 20)).reshape(3, -1).T).reshape(20, 20, 20, 3)
    identity = AffineTransform(np.eye(3), np.zeros(3))
    linear = PairField(identity, (nodes @ B.T).astype(np.float32), grid)
    d = field_prior(linear, c, linear.to_followup(c), np.eye(3))(g)
    assert np.allclose(d, g @ (np.linalg.inv(np.eye(3) + B) - np.eye(3)).T, atol=0.05)
