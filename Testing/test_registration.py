"""Affine registration recovers known transforms (phantom and real CT) in the baseline -> follow-up direction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.io import read_volume
from TLTTrackerLib.lesions import Lesion
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.registration import RegistrationResult, register_affine
from TLTTrackerLib.synthetic import PairConfig, make_pair

from conftest import shared_file

AFFINE_ONLY = PairConfig(nonrigid_rms_mm=0.0, growth_factor_range=(1.0, 1.0))


@pytest.mark.parametrize("seed", [1, 7])
def test_recovers_known_affine_on_phantom_with_other_fov_and_slices(seed):
    rng = np.random.default_rng(seed)
    volume, lesions = make_phantom(rng)
    pair = make_pair(volume, lesions, rng, AFFINE_ONLY)
    result = register_affine(pair.baseline, pair.followup)
    centres = np.array([les.center_lps_mm for les in pair.baseline_lesions])
    truth = np.array([les.center_lps_mm for les in pair.followup_lesions])
    errors = np.linalg.norm(result.baseline_to_followup.apply(centres) - truth, axis=1)
    assert np.median(errors) < 1.5, errors
    # the inverse maps follow-up points back to the baseline
    back = result.followup_to_baseline.apply(truth)
    assert np.median(np.linalg.norm(back - centres, axis=1)) < 1.5
    assert result.seconds > 0 and np.isfinite(result.metric_value)


def test_direction_is_baseline_to_followup():
    """A pure shift of the follow-up by +12 mm in z must come back as +12 mm, not -12 mm."""
    volume, _ = make_phantom(np.random.default_rng(2))
    moved = Volume(volume.array, volume.origin_lps_mm + [0.0, 0.0, 12.0], volume.spacing_mm, volume.direction)
    result = register_affine(volume, moved)
    shift = result.baseline_to_followup.apply(volume.center_lps_mm()) - volume.center_lps_mm()
    np.testing.assert_allclose(shift, [0, 0, 12], atol=0.6)


@pytest.mark.shared_data
def test_recovers_known_affine_on_real_ct_at_the_nodules():
    volume = read_volume(shared_file("ct/lidc_0001_2mm.nii.gz"))
    nodules = json.loads(shared_file("ct/lidc_0001_nodules.json").read_text(encoding="utf-8"))["nodules"]
    lesions = [Lesion(f"N{i}", np.array(d["centre_mm"]), 3.0) for i, d in enumerate(nodules)]
    pair = make_pair(volume, lesions, np.random.default_rng(4), AFFINE_ONLY)
    result = register_affine(pair.baseline, pair.followup)
    errors = [np.linalg.norm(result.baseline_to_followup.apply(a.center_lps_mm) - b.center_lps_mm)
              for a, b in zip(pair.baseline_lesions, pair.followup_lesions)]
    assert max(errors) < 2.0, errors


def test_dict_round_trip():
    volume, _ = make_phantom(np.random.default_rng(0), shape_kji=(40, 80, 80), spacing_mm=(3.0, 3.0, 5.0))
    result = register_affine(volume, volume)
    again = RegistrationResult.from_dict(json.loads(json.dumps(result.to_dict())))
    np.testing.assert_allclose(again.baseline_to_followup.homogeneous(), result.baseline_to_followup.homogeneous())
    assert again.metric_value == pytest.approx(result.metric_value)


@pytest.mark.parametrize("array", [np.zeros((20, 20, 20), np.int16), np.zeros((2, 50, 50), np.int16) + 40])
def test_constant_or_tiny_volume_is_a_clear_error(array):
    good, _ = make_phantom(np.random.default_rng(0), shape_kji=(40, 80, 80), spacing_mm=(3.0, 3.0, 5.0))
    with pytest.raises(InputError, match="too small or constant"):
        register_affine(Volume(array), good)
