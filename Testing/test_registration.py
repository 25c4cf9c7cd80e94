"""Affine registration recovers known transforms (phantom, real CT) in the baseline -> follow-up direction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.io import read_volume, volume_from_sitk, volume_to_sitk
from TLTTrackerLib.lesions import Lesion
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.registration import RegistrationResult, register_affine
from TLTTrackerLib.synthetic import PairConfig, make_pair
from TLTTrackerLib.transforms import AffineTransform

from conftest import shared_file

AFFINE_ONLY = PairConfig(nonrigid_rms_mm=0.0, growth_factor_range=(1.0, 1.0))


@pytest.fixture(scope="module")
def small_phantom() -> Volume:
    volume, _ = make_phantom(np.random.default_rng(0), shape_kji=(40, 80, 80), spacing_mm=(3.0, 3.0, 5.0))
    return volume


def _errors(result: RegistrationResult, pair) -> np.ndarray:
    centres = np.array([les.center_lps_mm for les in pair.baseline_lesions])
    truth = np.array([les.center_lps_mm for les in pair.followup_lesions])
    return np.linalg.norm(result.baseline_to_followup.apply(centres) - truth, axis=1)


def _body_points(volume: Volume, every: int) -> np.ndarray:
    return volume.index_kji_to_lps(np.argwhere(volume.array > -500)[::every].astype(float))


def _resampled_through(volume: Volume, forward: AffineTransform) -> Volume:
    """The follow-up that ``forward`` (baseline -> follow-up) makes of ``volume``, on the baseline's grid.

    ITK resampling maps output (follow-up) points to input (baseline) points, so it is given ``forward⁻¹``."""
    backward = forward.inverse()
    itk = sitk.AffineTransform(backward.matrix.ravel().tolist(), backward.translation_mm.tolist())
    image = volume_to_sitk(volume)
    return volume_from_sitk(sitk.Resample(image, image, itk, sitk.sitkLinear, -1024.0))


@pytest.mark.parametrize("seed", [1, 7])
def test_recovers_known_affine_on_phantom_with_other_fov_and_slices(seed):
    rng = np.random.default_rng(seed)
    volume, lesions = make_phantom(rng)
    pair = make_pair(volume, lesions, rng, AFFINE_ONLY)
    result = register_affine(pair.baseline, pair.followup)
    errors = _errors(result, pair)
    assert np.median(errors) < 1.0 and errors.max() < 2.0, errors
    # the inverse maps follow-up points back to the baseline
    centres = np.array([les.center_lps_mm for les in pair.baseline_lesions])
    truth = np.array([les.center_lps_mm for les in pair.followup_lesions])
    back = result.followup_to_baseline.apply(truth)
    assert np.median(np.linalg.norm(back - centres, axis=1)) < 1.0
    assert result.seconds > 0 and np.isfinite(result.metric_value)
    assert result.info["correlation"] > 0.9 and result.info["overlap_fraction"] > 0.9


def test_direction_is_baseline_to_followup(small_phantom):
    """A follow-up made by pushing the baseline through a known ``F`` gives back ``F``, not ``F⁻¹``."""
    volume = small_phantom
    rotation = Rotation.from_euler("xyz", [3.0, -2.0, 6.0], degrees=True).as_matrix()
    forward = AffineTransform.about_center(
        rotation * 1.03, volume.center_lps_mm(), np.array([9.0, -6.0, 12.0])
    )
    result = register_affine(volume, _resampled_through(volume, forward))
    body = _body_points(volume, 97)
    err_forward = np.linalg.norm(result.baseline_to_followup.apply(body) - forward.apply(body), axis=1)
    err_backward = np.linalg.norm(
        result.baseline_to_followup.apply(body) - forward.inverse().apply(body), axis=1
    )
    assert np.median(err_forward) < 1.0, np.median(err_forward)
    assert np.median(err_backward) > 10.0  # the opposite convention would be far off


def test_origin_shift_comes_back_with_its_sign(small_phantom):
    """The same array with the follow-up origin 12 mm higher: anatomy moved +12 mm in z (not -12)."""
    volume = small_phantom
    moved = Volume(volume.array, volume.origin_lps_mm + [0.0, 0.0, 12.0], volume.spacing_mm, volume.direction)
    result = register_affine(volume, moved)
    shift = result.baseline_to_followup.apply(volume.center_lps_mm()) - volume.center_lps_mm()
    np.testing.assert_allclose(shift, [0, 0, 12], atol=0.6)


def test_larger_followup_and_headers_150_mm_apart(small_phantom):
    """Follow-up with the larger field of view (roles swap inside) and headers that disagree by 150 mm in z,
    as origin-0 (DeepLesion) volumes do."""
    volume = small_phantom
    cropped = Volume(
        volume.array[8:30], volume.index_kji_to_lps([8, 0, 0]), volume.spacing_mm, volume.direction
    )
    forward = AffineTransform(np.eye(3), np.array([4.0, -3.0, 150.0]))
    followup = Volume(
        volume.array, volume.origin_lps_mm + forward.translation_mm, volume.spacing_mm, volume.direction
    )
    result = register_affine(cropped, followup)
    assert result.info["fixed_image"] == "baseline"
    points = _body_points(cropped, 53)
    errors = np.linalg.norm(result.baseline_to_followup.apply(points) - forward.apply(points), axis=1)
    assert np.median(errors) < 1.0, np.median(errors)


@pytest.mark.shared_data
def test_recovers_known_affine_on_real_ct_at_the_nodules():
    volume = read_volume(shared_file("ct/lidc_0001_2mm.nii.gz"))
    nodules = json.loads(shared_file("ct/lidc_0001_nodules.json").read_text(encoding="utf-8"))["nodules"]
    lesions = [Lesion(f"N{i}", np.array(d["centre_mm"]), 3.0) for i, d in enumerate(nodules)]
    pair = make_pair(volume, lesions, np.random.default_rng(4), AFFINE_ONLY)
    result = register_affine(pair.baseline, pair.followup)
    errors = _errors(result, pair)
    assert errors.max() < 2.0, errors
    assert result.info["correlation"] > 0.9


@pytest.mark.shared_data
def test_real_ct_at_4mm_with_origin_zero_headers():
    """DeepLesion-like: both origins 0, a follow-up covering a short z range; the large nodule within 2 mm."""
    volume = read_volume(shared_file("ct/lidc_0001_4mm.nii.gz"))
    nodules = json.loads(shared_file("ct/lidc_0001_nodules.json").read_text(encoding="utf-8"))["nodules"]
    nodule = np.array(nodules[0]["centre_mm"])
    config = PairConfig(
        nonrigid_rms_mm=0.0, growth_factor_range=(1.0, 1.0), fov_z_fraction_range=(0.35, 0.45)
    )
    pair = make_pair(volume, [Lesion("N0", nodule, 12.0)], np.random.default_rng(11), config)
    base, follow = pair.baseline, pair.followup
    result = register_affine(
        *(Volume(v.array, np.zeros(3), v.spacing_mm, v.direction) for v in (base, follow))
    )
    found = result.baseline_to_followup.apply(nodule - base.origin_lps_mm) + follow.origin_lps_mm
    assert np.linalg.norm(found - pair.followup_lesions[0].center_lps_mm) < 2.0


def test_deterministic_and_round_trip(small_phantom):
    volume = small_phantom
    followup = _resampled_through(volume, AffineTransform(np.eye(3) * 0.98, np.array([5.0, 2.0, -7.0])))
    result = register_affine(volume, followup)
    again = register_affine(volume, followup)
    np.testing.assert_array_equal(
        again.baseline_to_followup.homogeneous(), result.baseline_to_followup.homogeneous()
    )
    loaded = RegistrationResult.from_dict(json.loads(json.dumps(result.to_dict())))
    np.testing.assert_allclose(
        loaded.baseline_to_followup.homogeneous(), result.baseline_to_followup.homogeneous()
    )
    assert loaded.metric_value == pytest.approx(result.metric_value)
    assert loaded.info["reused"] and loaded.seconds == 0.0
    assert loaded.info["seconds_when_computed"] == pytest.approx(result.seconds)
    assert loaded.info["correlation"] == pytest.approx(result.info["correlation"])


def test_from_dict_rejects_what_is_not_a_registration():
    with pytest.raises(InputError, match="not a saved registration"):
        RegistrationResult.from_dict({"matrix": [1, 2, 3]})
    with pytest.raises(InputError, match="singular"):
        RegistrationResult.from_dict({"baseline_to_followup": AffineTransform(np.zeros((3, 3))).to_dict()})


def test_progress_and_options(small_phantom):
    volume = small_phantom
    calls: list[float] = []
    result = register_affine(
        volume,
        volume,
        progress=lambda f, m: calls.append(f),
        levels_mm=(9.0, 6.0, 3.0),
        max_iterations=20,
        samples=3000,
        metric="mattes",
    )
    assert calls == sorted(calls) and calls[-1] > 0.9
    assert len(result.info["levels"]) == 3 and result.info["metric"] == "mattes"
    centre = volume.center_lps_mm()
    np.testing.assert_allclose(result.baseline_to_followup.apply(centre), centre, atol=0.5)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((20, 20, 20), np.int16), "constant"),
        (np.zeros((2, 50, 50), np.int16) + 40, "too small"),
        (
            np.random.default_rng(0).integers(-1024, -900, (20, 20, 20)).astype(np.int16),
            "no voxel above -500 HU",
        ),
    ],
)
def test_unusable_volume_is_a_clear_error(array, message, small_phantom):
    with pytest.raises(InputError, match=message):
        register_affine(Volume(array), small_phantom)
    with pytest.raises(InputError, match=message):
        register_affine(small_phantom, Volume(array))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"metric": "nmi"}, "unknown registration metric"),
        ({"levels_mm": (3.0, 6.0)}, "coarse to fine"),
        ({"max_iterations": (10, 10, 10)}, "one per level"),
    ],
)
def test_bad_options_are_clear_errors(options, message, small_phantom):
    with pytest.raises(InputError, match=message):
        register_affine(small_phantom, small_phantom, **options)


def test_poor_correlation_retries_with_the_fallback_metric_and_keeps_the_better(small_phantom, monkeypatch):
    """A result at or under POOR_CORRELATION is registered again with ``fallback_metric``; the better-correlated
    of the two is kept and both are reported (forced here by raising the threshold above any correlation)."""
    import TLTTrackerLib.registration as reg

    moved = Volume(small_phantom.array, small_phantom.origin_lps_mm + [0.0, 0.0, 9.0], small_phantom.spacing_mm,
                   small_phantom.direction)
    plain = register_affine(small_phantom, moved)
    assert plain.info["fallback"] is None  # a good registration is not repeated
    monkeypatch.setattr(reg, "POOR_CORRELATION", 1.01)
    retried = register_affine(small_phantom, moved)
    fb = retried.info["fallback"]
    assert fb["metric"] == "mattes" and np.isfinite(fb["correlation"])
    assert retried.info["correlation"] == pytest.approx(max(plain.info["correlation"], fb["correlation"]))
    assert retried.info["metric"] == ("mattes" if fb["kept"] else "meansquares")
    stages = retried.info["seconds_by_stage"]  # the second optimisation's time is a stage of its own
    assert "fallback" in stages and "fallback" not in plain.info["seconds_by_stage"]
    shift = retried.baseline_to_followup.apply(small_phantom.center_lps_mm()) - small_phantom.center_lps_mm()
    np.testing.assert_allclose(shift, [0, 0, 9], atol=1.0)
    none = register_affine(small_phantom, moved, fallback_metric=None)
    assert none.info["fallback"] is None
