"""Tests of TLTTrackerLib.lesion_centre: a point on a visible lesion moves to the lesion's centre, and where it
does not apply (no contrast, no compact blob, a point off the lesion, a blob that runs into other tissue)."""

import numpy as np
import pytest

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.lesion_centre import LesionCentreConfig, ball_and_shell, find_blob, lesion_centre

SPACING = 1.5
SHAPE = (80, 80, 80)  # z, y, x: a 120 mm cube, origin at 0
C = np.array([60.0, 60.0, 60.0])
EYE = np.eye(3)


def _organ(lesions, seed=0, slab=None, tissue_hu=60.0, spacing=SPACING) -> Volume:
    """Homogeneous tissue (60 HU, 8 HU noise) with ellipsoid lesions ``(centre, semi-axes x y z mm, HU)`` and,
    optionally, a slab ``(x from, x to, HU)`` across the volume; a 120 mm cube of isotropic ``spacing`` mm."""
    rng = np.random.default_rng(seed)
    shape = (int(round(SHAPE[0] * SPACING / spacing)),) * 3
    array = tissue_hu + 8.0 * rng.standard_normal(shape)
    z, y, x = np.indices(shape) * spacing
    for centre, axes, hu in lesions:
        inside = ((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2 + ((z - centre[2]) / axes[2]) ** 2
        array[inside <= 1.0] += hu
    if slab is not None:
        array[(x >= slab[0]) & (x <= slab[1])] += slab[2]
    return Volume(array.astype(np.float32), np.zeros(3), np.full(3, spacing))


MOVED = C + np.array([7.0, -5.0, 4.0])


def test_a_point_on_the_grown_lesion_moves_to_its_centre():
    """The lesion (r 8 mm, 40 HU darker) moved and grew to r 11 mm; a point 6 mm from its centre, on it, moves to
    within 1 mm of the centre; the centre itself stays there."""
    baseline = _organ([(C, (8.0, 8.0, 8.0), -40.0)])
    followup = _organ([(MOVED, (11.0, 11.0, 11.0), -40.0)], seed=1)
    off = MOVED + np.array([4.0, 3.0, -3.0])
    centred = lesion_centre(baseline, followup, C, 8.0, off, EYE)
    assert centred is not None and np.linalg.norm(centred - MOVED) < 1.0
    again = lesion_centre(baseline, followup, C, 8.0, MOVED, EYE)
    assert again is not None and np.linalg.norm(again - MOVED) < 1.0


def test_the_baseline_offset_of_the_clicked_centre_is_carried_over():
    """The click lies 1.5 mm from the blob's centroid (within half a radius): the follow-up point keeps that
    offset, turned by the registration's linear part (here a 90° turn about z)."""
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    baseline = _organ([(C, (8.0, 8.0, 8.0), 45.0)])
    followup = _organ([(MOVED, (8.0, 8.0, 8.0), 45.0)], seed=1)
    click = C + np.array([1.5, 0.0, 0.0])
    centred = lesion_centre(baseline, followup, click, 8.0, MOVED + [3.0, 0.0, 0.0], turn)
    assert centred is not None and np.linalg.norm(centred - (MOVED + turn @ [1.5, 0.0, 0.0])) < 1.0


@pytest.mark.parametrize("case", ["faint", "small", "off the lesion", "slab in the baseline", "slab in the follow-up"])
def test_it_does_not_apply(case):
    """A faint lesion (10 HU), a nodule-sized one (r 3 mm: the template snap's), a point 14 mm off a lesion of r 6 mm,
    a lesion that joins a slab of its own intensity in the baseline, or in the follow-up: no move."""
    lesion, radius, point = (C, (8.0, 8.0, 8.0), -40.0), 8.0, MOVED + [3.0, 0.0, 0.0]
    baseline_slab = followup_slab = None
    if case == "faint":
        lesion = (C, (8.0, 8.0, 8.0), -10.0)
    elif case == "small":
        lesion, radius = (C, (3.0, 3.0, 3.0), -40.0), 3.0
    elif case == "off the lesion":
        lesion, radius, point = (C, (6.0, 6.0, 6.0), -40.0), 6.0, MOVED + [0.0, 14.0, 0.0]
    elif case == "slab in the baseline":
        baseline_slab = (C[0] + 6.0, 200.0, -40.0)
    else:
        followup_slab = (MOVED[0] + 6.0, 200.0, -40.0)
    baseline = _organ([lesion], slab=baseline_slab)
    followup = _organ([(MOVED, lesion[1], lesion[2])], seed=1, slab=followup_slab)
    assert lesion_centre(baseline, followup, C, radius, point, EYE) is None


def test_a_blob_that_does_not_stand_out_from_its_surroundings_stays():
    """The follow-up lesion sits in a halo of tissue nearly as dark (−30 HU from r 11 to 22 mm, past a 3 mm rim):
    its blob keeps a quarter of the baseline's contrast against its shell, under ``min_contrast_kept``; no move.
    The same pair with the rule off moves the point."""
    baseline = _organ([(C, (8.0, 8.0, 8.0), -40.0)])
    followup = _organ([(MOVED, (22.0, 22.0, 22.0), -30.0), (MOVED, (11.0, 11.0, 11.0), 30.0),
                       (MOVED, (8.0, 8.0, 8.0), -40.0)], seed=1)
    point = MOVED + [3.0, 0.0, 0.0]
    assert lesion_centre(baseline, followup, C, 8.0, point, EYE) is None
    off = lesion_centre(baseline, followup, C, 8.0, point, EYE, config=LesionCentreConfig(min_contrast_kept=0.0))
    assert off is not None and np.linalg.norm(off - MOVED) < 1.0


def test_ball_and_shell_measure_a_ball_against_its_surroundings():
    patch = np.zeros((41, 41, 41))
    z, y, x = np.indices(patch.shape) - 20
    patch[x * x + y * y + z * z <= 25] = 50.0
    inner, shell = ball_and_shell(patch, 1.0, 5.0)
    assert inner == pytest.approx(50.0) and shell == pytest.approx(0.0)


def test_find_blob_takes_the_nearest_part_within_reach_and_reports_a_cut():
    mask = np.zeros((21, 21, 21), bool)
    mask[10:15, 13:18, 8:13] = True  # a box 3 voxels from the centre node along y
    inside = np.ones_like(mask)
    assert find_blob(mask, inside, np.zeros(3), 1.0, 0.0, 2.0) is None
    blob = find_blob(mask, inside, np.zeros(3), 1.0, 0.0, 3.5)
    assert blob is not None and not blob.cut
    assert np.allclose(blob.centroid_lps_mm, [0.0, 5.0, 2.0])  # x, y, z: the box's centre
    wide = np.zeros_like(mask)
    wide[5:16, 5:16, 0:16] = True
    assert find_blob(wide, inside, np.zeros(3), 1.0, 0.0, 0.0).cut


def test_the_config_turns_it_off_for_larger_minimum_radii():
    baseline = _organ([(C, (8.0, 8.0, 8.0), -40.0)])
    followup = _organ([(MOVED, (8.0, 8.0, 8.0), -40.0)], seed=1)
    assert lesion_centre(baseline, followup, C, 8.0, MOVED + [3.0, 0, 0], EYE,
                         config=LesionCentreConfig(min_radius_mm=10.0)) is None


def test_a_pair_with_thick_slices_keeps_the_point_along_them():
    """A follow-up of 4.5 mm slices: the blob's centroid along z is no centre, so the point moves in the slice plane
    only; the same pair on 1.5 mm moves along z too."""
    baseline = _organ([(C, (8.0, 8.0, 8.0), -40.0)])
    followup = _organ([(MOVED, (8.0, 8.0, 8.0), -40.0)], seed=1)
    thick = Volume(followup.array[::3], followup.origin_lps_mm, np.array([SPACING, SPACING, 3 * SPACING]))
    point = MOVED + [3.0, -2.0, 2.0]
    fine = lesion_centre(baseline, followup, C, 8.0, point, EYE)
    assert fine is not None and np.linalg.norm(fine - MOVED) < 1.0
    coarse = lesion_centre(baseline, thick, C, 8.0, point, EYE)
    assert coarse is not None and coarse[2] == point[2] and np.linalg.norm(coarse[:2] - MOVED[:2]) < 1.0


def test_a_3_mm_follow_up_moves_the_point_along_every_axis():
    """3.3 mm voxels (a 3 mm scan resampled) are no thick slices: the point moves along every axis (a lock above
    3 mm would have left it)."""
    baseline = _organ([(C, (8.0, 8.0, 8.0), -40.0)])
    followup = _organ([(MOVED, (8.0, 8.0, 8.0), -40.0)], seed=1, spacing=3.3)
    point = MOVED + [3.0, -2.0, 2.0]
    centred = lesion_centre(baseline, followup, C, 8.0, point, EYE)
    assert centred is not None and np.linalg.norm(centred - MOVED) < 1.0
    assert lesion_centre(baseline, followup, C, 8.0, point, EYE, LesionCentreConfig(lock_above_mm=3.0)) is None


def test_a_shrunk_fainter_lesion_beside_the_point_is_found_with_a_smaller_opening():
    """The lesion shrank from r 8 to 5 mm and lost a quarter of its contrast; the point lies 6.5 mm from its centre,
    just off it. The first opening (0.45 of the baseline blob's radius) erases the follow-up blob; the retries find
    it and the point moves to within 1 mm of the centre. Without retries, or with no shrinking allowed, no move."""
    baseline = _organ([(C, (8.0, 8.0, 8.0), -40.0)])
    followup = _organ([(MOVED, (5.0, 5.0, 5.0), -30.0)], seed=1)
    point = MOVED + np.array([6.5, 0.0, 0.0])
    centred = lesion_centre(baseline, followup, C, 8.0, point, EYE)
    assert centred is not None and np.linalg.norm(centred - MOVED) < 1.0
    assert lesion_centre(baseline, followup, C, 8.0, point, EYE, LesionCentreConfig(retry_open_fractions=())) is None
    assert lesion_centre(baseline, followup, C, 8.0, point, EYE, LesionCentreConfig(retry_max_growth=0.4)) is None
