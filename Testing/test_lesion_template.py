"""The lesion's own template: its match score at a point and the snap to its best match."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, shift

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.lesion_template import coarse_grid_mm, lesion_match, snap_to_lesion
from TLTTrackerLib.matching import axis_resolution_mm


def _pair(offset_zyx=(2, -3, 4)):
    """A textured baseline and the same texture moved by ``offset_zyx`` voxels (1 mm), identity geometry."""
    texture = gaussian_filter(np.random.default_rng(3).normal(size=(40, 48, 48)), 1.5) * 100
    base = Volume(texture.astype(np.float32), np.zeros(3), np.ones(3))
    moved = Volume(shift(texture, offset_zyx, order=1).astype(np.float32), np.zeros(3), np.ones(3))
    return base, moved, (axis_resolution_mm(base), axis_resolution_mm(moved))


def test_lesion_match_is_high_at_the_lesion_and_low_beside_it():
    base, moved, res = _pair()
    c = np.array([24.0, 24.0, 20.0])
    at = lesion_match(base, moved, c, c + np.array([4.0, -3.0, 2.0]), 2.0, np.eye(3), res)  # x y z = shift's z y x
    beside = lesion_match(base, moved, c, c + np.array([8.0, 1.0, -2.0]), 2.0, np.eye(3), res)
    assert at > 0.95 and beside < 0.5


def test_a_large_lesion_is_matched_on_a_coarser_grid_to_the_same_score():
    """Above r = 3.3 mm the match runs on σ/8 (here 0.9 mm, 8x fewer nodes than 0.5 mm) and scores as before: a
    blob of r = 6 mm in texture, moved (2, -3, 4) voxels, scored at, near and beside its new place."""
    rng = np.random.default_rng(3)
    k, j, i = np.mgrid[:64, :64, :64]
    texture = gaussian_filter(rng.normal(size=(64, 64, 64)), 1.5) * 150
    image = texture + 60.0 / (1.0 + np.exp(np.sqrt((k - 32) ** 2 + (j - 32) ** 2 + (i - 32) ** 2) - 6.0))
    base = Volume(image.astype(np.float32), np.zeros(3), np.ones(3))
    moved = Volume(shift(image, (2, -3, 4), order=1).astype(np.float32), np.zeros(3), np.ones(3))
    res = (axis_resolution_mm(base), axis_resolution_mm(moved))
    c = np.array([32.0, 32.0, 32.0])
    assert coarse_grid_mm(6.0) == pytest.approx(0.9)
    scores = []
    for offset in ([4.0, -3.0, 2.0], [6.0, -1.0, 3.0], [9.0, 2.0, -3.0]):
        fine = lesion_match(base, moved, c, c + offset, 6.0, np.eye(3), res, spacing_mm=0.5)
        scores.append(lesion_match(base, moved, c, c + offset, 6.0, np.eye(3), res))
        assert abs(scores[-1] - fine) < 0.02
    assert scores[0] > 0.95 > scores[1] > 0.5 > scores[2]


def test_snap_moves_a_point_a_millimetre_off_onto_the_lesion():
    base, moved, res = _pair()
    c = np.array([24.0, 24.0, 20.0])
    truth = c + np.array([4.0, -3.0, 2.0])
    point, ncc = snap_to_lesion(base, moved, c, truth + np.array([1.2, -0.8, 0.7]), 2.0, np.eye(3), res)
    np.testing.assert_allclose(point, truth, atol=0.25)
    assert ncc > 0.95


def test_snap_keeps_the_coordinate_along_a_coarse_axis():
    base, moved, res = _pair()
    coarse = (res[0], res[1] * np.array([1.0, 1.0, 5.0]))  # a 5 mm follow-up along z
    c = np.array([24.0, 24.0, 20.0])
    truth = c + np.array([4.0, -3.0, 2.0])
    start = truth + np.array([1.2, -0.8, 0.7])
    point, _ = snap_to_lesion(base, moved, c, start, 2.0, np.eye(3), coarse)
    assert point[2] == start[2]
    np.testing.assert_allclose(point[:2], truth[:2], atol=0.35)


def test_snap_stays_within_its_search_box():
    base, moved, res = _pair()
    c = np.array([24.0, 24.0, 20.0])
    start = c + np.array([4.0, -3.0, 2.0]) + np.array([6.0, 0.0, 0.0])
    point, _ = snap_to_lesion(base, moved, c, start, 2.0, np.eye(3), res, search_mm=2.5)
    assert np.all(np.abs(point - start) <= 2.5 + 0.5 + 1e-9)


def test_snap_on_a_coarser_grid_still_lands_on_the_lesion():
    """``tlt`` snaps a large lesion on a grid of σ/8 (up to 1 mm) over ±6 mm: the sub-voxel peak stays sub-mm."""
    base, moved, res = _pair()
    c = np.array([24.0, 24.0, 20.0])
    truth = c + np.array([4.0, -3.0, 2.0])
    point, ncc = snap_to_lesion(base, moved, c, truth + np.array([-3.5, 2.6, -2.2]), 4.0, np.eye(3), res,
                                search_mm=6.0, spacing_mm=1.0)
    np.testing.assert_allclose(point, truth, atol=0.35)
    assert ncc > 0.95


def test_a_locked_axis_caps_the_search_and_the_wide_grid_follows_the_lesion_size():
    base, moved, res = _pair()
    coarse = (res[0], res[1] * np.array([1.0, 1.0, 5.0]))  # a 5 mm follow-up along z: z locked
    c = np.array([24.0, 24.0, 20.0])
    start = c + np.array([4.0, -3.0, 2.0]) + np.array([4.5, 0.0, 0.0])  # 4.5 mm off in x
    wide, _ = snap_to_lesion(base, moved, c, start, 2.0, np.eye(3), coarse, search_mm=6.0)
    capped, _ = snap_to_lesion(base, moved, c, start, 2.0, np.eye(3), coarse, search_mm=6.0, locked_search_mm=2.5)
    assert abs(wide[0] - start[0]) > 3.0  # ±6 mm reaches the lesion
    assert np.all(np.abs(capped - start) <= 2.5 + 0.5 + 1e-9)  # ±2.5 mm where an axis is locked
    same, _ = snap_to_lesion(base, moved, c, start, 2.0, np.eye(3), res, search_mm=6.0, locked_search_mm=2.5)
    assert abs(same[0] - start[0]) > 3.0  # nothing locked: not capped
    assert coarse_grid_mm(1.0) == 0.5 and coarse_grid_mm(5.0) == 0.75 and coarse_grid_mm(12.0) == 1.0
