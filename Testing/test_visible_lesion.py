"""Tests of TLTTrackerLib.visible_lesion: the look-alike map and when the snap moves a result."""

import numpy as np
import pytest

from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.visible_lesion import VisibleSnapConfig, contrast_at, contrast_maps, look_alikes, visible_snap

SPACING = 2.0
SHAPE = (60, 60, 60)  # z, y, x: a 120 mm cube, origin at 0


def _liver(centers_lps_mm, radius_mm=8.0, contrast_hu=-40.0, seed=0, bone_at=None, tissue_hu=60.0) -> Volume:
    """Homogeneous tissue (60 HU) with 8 HU noise, one ball lesion per centre, optionally a 700 HU bone block."""
    rng = np.random.default_rng(seed)
    array = tissue_hu + 8.0 * rng.standard_normal(SHAPE)
    z, y, x = np.indices(SHAPE) * SPACING
    for c in centers_lps_mm:
        array[(x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius_mm ** 2] += contrast_hu
    if bone_at is not None:
        array[(np.abs(x - bone_at[0]) <= 6) & (np.abs(y - bone_at[1]) <= 6) & (np.abs(z - bone_at[2]) <= 6)] = 700.0
    return Volume(array.astype(np.float32), np.zeros(3), np.full(3, SPACING))


C = np.array([60.0, 60.0, 60.0])
MOVED = C + np.array([9.0, -6.0, 4.0])


def test_contrast_maps_measure_a_ball_against_its_shell():
    patch = np.zeros((41, 41, 41))
    z, y, x = np.indices(patch.shape) - 20
    patch[x * x + y * y + z * z <= 25] = 50.0  # a ball of r 5 voxels
    contrast, shell_std = contrast_maps(patch, 5.0, 1.0)
    assert contrast[20, 20, 20] == pytest.approx(50.0)
    assert shell_std[20, 20, 20] == pytest.approx(0.0, abs=1e-6)
    assert contrast[20, 20, 32] < 5.0  # off the ball


def test_baseline_contrast_has_the_lesions_sign_and_size():
    contrast, shell_std = contrast_at(_liver([C]), C, 8.0)
    assert -45.0 < contrast < -30.0
    assert shell_std < 8.0  # the noise, averaged a little by the patch's sampling


def test_look_alikes_find_the_moved_lesion():
    followup = _liver([MOVED], radius_mm=9.0, seed=1)
    contrast, shell_std = contrast_at(_liver([C]), C, 8.0)
    found = look_alikes(followup, C, 8.0, contrast, shell_std)
    assert found, "the lesion 12 mm away was not found"
    assert np.linalg.norm(found[0].point_lps_mm - MOVED) < 2.0
    assert found[0].contrast_hu > 0  # signed as the baseline lesion's: a dark lesion counts positive


def test_a_doubtful_result_beside_the_lesion_snaps_onto_it():
    baseline, followup = _liver([C]), _liver([MOVED], radius_mm=9.0, seed=1)
    moved = visible_snap(baseline, followup, C, 8.0, C, confidence=0.4)
    assert moved is not None and np.linalg.norm(moved - MOVED) < 2.0


def test_a_lesion_with_a_twin_nearby_still_snaps():
    """A twin 13 mm away in the baseline does not keep the lesion from being a look-alike of itself."""
    baseline = _liver([C, C + np.array([0.0, 0.0, -13.0])], radius_mm=5.0)
    followup = _liver([MOVED], radius_mm=5.0, seed=1)
    moved = visible_snap(baseline, followup, C, 5.0, C, confidence=0.4)
    assert moved is not None and np.linalg.norm(moved - MOVED) < 2.0


def test_a_lesion_among_many_look_alikes_is_left_alone():
    """Four twins around the lesion in its baseline (textured surroundings): the follow-up's strongest look-alike
    would be a guess. The same pair snaps when the limit is lifted."""
    ring = [C + np.array(d) for d in ([11.0, 0, 0], [-11.0, 0, 0], [0, 11.0, 0], [0, -11.0, 0])]
    baseline = _liver([C] + ring, radius_mm=4.0)
    followup = _liver([MOVED], radius_mm=4.0, seed=1)
    assert visible_snap(baseline, followup, C, 4.0, C, confidence=0.4) is None
    lifted = VisibleSnapConfig(max_look_alikes=99)
    assert visible_snap(baseline, followup, C, 4.0, C, confidence=0.4, config=lifted) is not None


def test_a_point_beside_bone_is_no_look_alike_of_itself():
    """Bone 12 mm away fills the point's shell: a strong "contrast" (−56 HU) but no look-alike on the point in its
    own baseline, so a dark ball in the follow-up, which is its look-alike, is not snapped to."""
    baseline = _liver([], bone_at=C + np.array([0.0, 12.0, 0.0]))
    followup = _liver([MOVED], radius_mm=6.0, contrast_hu=-56.0, seed=1)
    contrast, shell_std = contrast_at(baseline, C, 6.0)
    assert contrast < -20.0
    assert look_alikes(followup, C, 6.0, contrast, shell_std), "nothing to snap to: the test would prove nothing"
    assert visible_snap(baseline, followup, C, 6.0, C, confidence=0.4) is None


@pytest.mark.parametrize("case", ["confident", "already on it", "small", "faint", "wrong sign", "too far"])
def test_the_snap_leaves_a_result_alone(case):
    radius, contrast, start, confidence = 8.0, -40.0, C, 0.4
    where = MOVED
    if case == "confident":
        confidence = 0.9
    elif case == "already on it":
        start = MOVED + np.array([1.5, 0.0, 0.0])
    elif case == "small":
        radius = 2.5
    elif case == "faint":
        contrast = -12.0
    elif case == "too far":
        where = C + np.array([20.0, 0.0, 0.0])
    baseline = _liver([C], radius_mm=radius, contrast_hu=contrast)
    followup = _liver([where], radius_mm=radius, contrast_hu=contrast if case != "wrong sign" else 40.0, seed=1)
    assert visible_snap(baseline, followup, C, radius, start, confidence) is None


def test_bone_next_to_the_result_is_no_look_alike():
    """A bright block in the search sphere has a bright lesion's sign but not its contrast or quiet shell."""
    baseline = _liver([C], contrast_hu=40.0)
    followup = _liver([], seed=1, bone_at=C + np.array([0.0, 10.0, 0.0]))
    assert visible_snap(baseline, followup, C, 8.0, C, confidence=0.3) is None


def test_the_snap_can_be_turned_off():
    baseline, followup = _liver([C]), _liver([MOVED], radius_mm=9.0, seed=1)
    off = VisibleSnapConfig(below_confidence=0.0)
    assert visible_snap(baseline, followup, C, 8.0, C, confidence=0.4, config=off) is None


def test_nothing_is_measured_beyond_the_scan():
    """Near the scan's edge a look-alike is measured only where its ball and shell (out to 2 ρ) lie inside the
    scan (the volume's coverage ends at z = -1 mm): a shell cut off by the edge would hold air. A solid nodule in
    emphysematous lung (-990 HU): air in its shell changes neither its contrast nor the shell's texture, so without
    this the nodule cut off by the edge would count."""
    lung = {"tissue_hu": -990.0, "contrast_hu": 900.0}
    at_edge = np.array([60.0, 60.0, 8.0])
    contrast, shell_std = contrast_at(_liver([C], **lung), C, 8.0)
    found = look_alikes(_liver([at_edge], seed=1, **lung), at_edge + np.array([0.0, 0.0, 6.0]), 8.0, contrast,
                        shell_std)
    half_step = 8.0 / 3.0 / 2.0  # the sub-voxel refinement moves a point by up to half a grid step
    assert all(a.point_lps_mm[2] - 2.0 * a.ball_radius_mm >= -1.0 - half_step for a in found)
    inside = look_alikes(_liver([C], seed=1, **lung), C + np.array([0.0, 0.0, 6.0]), 8.0, contrast, shell_std)
    assert inside and np.linalg.norm(inside[0].point_lps_mm - C) < 2.0


def _template_match(baseline: Volume, followup: Volume, radius_mm: float):
    """The lesion template's NCC at a follow-up point (as :mod:`.last_steps` gives it; identity linear part)."""
    from TLTTrackerLib.lesion_template import lesion_match

    res = (np.full(3, SPACING), np.full(3, SPACING))
    return lambda q: lesion_match(baseline, followup, C, q, radius_mm, np.eye(3), res)


def test_a_confident_result_off_the_lesion_moves_where_its_template_agrees():
    baseline, followup = _liver([C]), _liver([MOVED], radius_mm=9.0, seed=1)
    match = _template_match(baseline, followup, 8.0)
    moved = visible_snap(baseline, followup, C, 8.0, C, confidence=0.9, template_match=match)
    assert moved is not None and np.linalg.norm(moved - MOVED) < 2.0
    off = VisibleSnapConfig(confident_max_own=0.0)
    assert visible_snap(baseline, followup, C, 8.0, C, confidence=0.9, config=off, template_match=match) is None


@pytest.mark.parametrize("fade", [0.35, 0.8])
def test_a_confident_result_on_its_faded_lesion_stays_beside_a_twin(fade):
    """The lesion (r 5 mm) faded in place, the same soft texture around it in both scans, and a twin of full
    contrast lies 13 mm away: at 0.8 of its contrast the lesion is plainly there; at 0.35 the twin is the strongest
    look-alike (a doubtful result moves there, as would a confident one if the template were left out), but the
    lesion's template, texture and all, matches the result better."""
    from scipy.ndimage import gaussian_filter

    texture = gaussian_filter(np.random.default_rng(5).standard_normal(SHAPE), 1.5)
    texture *= 10.0 / texture.std()  # HU
    twin = C + np.array([-13.0, 0.0, 0.0])
    baseline = _liver([C], radius_mm=5.0)
    followup = _liver([C], radius_mm=5.0, contrast_hu=-40.0 * fade, seed=1)
    followup.array[...] += _liver([twin], radius_mm=5.0, tissue_hu=0.0).array - _liver([], tissue_hu=0.0).array
    baseline.array[...] += texture
    followup.array[...] += texture
    contrast, shell_std = contrast_at(baseline, C, 5.0)
    found = look_alikes(followup, C, 5.0, contrast, shell_std)
    assert found and np.linalg.norm(found[0].point_lps_mm - twin) < 3.0, "no twin: the test would prove nothing"
    match = _template_match(baseline, followup, 5.0)
    assert visible_snap(baseline, followup, C, 5.0, C, confidence=0.9, template_match=match) is None
    if fade < 0.5:
        assert visible_snap(baseline, followup, C, 5.0, C, confidence=0.4) is not None
        blind = lambda q: 1.0 if np.linalg.norm(q - C) > 3.0 else 0.0  # noqa: E731 - prefers any point but C
        assert visible_snap(baseline, followup, C, 5.0, C, confidence=0.9, template_match=blind) is not None
