"""The library API validates what it is given as strictly as the CLI (issue 9): validation.py and its callers."""

from __future__ import annotations

import numpy as np
import pytest

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.lesions import Lesion
from TLTTrackerLib.registration import RegistrationResult
from TLTTrackerLib.tracker import LesionTracker
from TLTTrackerLib.transforms import AffineTransform
from TLTTrackerLib.validation import as_lesions, as_volume, pair_fingerprint, volume_fingerprint


def _volume(seed=0, dtype=np.int16):
    rng = np.random.default_rng(seed)
    return Volume(rng.normal(0, 100, (20, 30, 30)).astype(dtype), spacing_mm=(2.0, 2.0, 3.0))


@pytest.fixture()
def tracker():
    """An affine tracker on a pair with a given (identity) registration: no registration work in the tests."""
    bl, fu = _volume(), _volume(1)
    reg = RegistrationResult(AffineTransform(), 0.0, 0.0, {"pair": pair_fingerprint(bl, fu)})
    t = LesionTracker(method="affine")
    t.set_pair(bl, fu, registration=reg)
    return t


LESIONS = [Lesion("A", [20.0, 20.0, 20.0], 5.0), Lesion("B", [30.0, 30.0, 30.0], 5.0)]


def test_an_iterator_of_lesions_gives_results(tracker):
    results = tracker.track(les for les in LESIONS)  # a generator: used to return no results
    assert [r.id for r in results] == ["A", "B"]


def test_affine_says_it_has_no_confidence_measure(tracker):
    from TLTTrackerLib.results import _csv_text, format_table, results_from_dict, results_to_dict

    results = tracker.track(LESIONS)
    assert all(np.isnan(r.confidence) and "no_confidence_measure" in r.flags for r in results)
    payload = results_to_dict(results, tracker.registration, {"total": 1.0})
    assert [les["confidence"] for les in payload["lesions"]] == [None, None]
    assert " n/a " in format_table(payload)
    assert _csv_text(payload).splitlines()[1].split(",")[8] == ""
    assert np.isnan(results_from_dict(payload)[0].confidence)


@pytest.mark.parametrize("lesions, problem", [
    (LESIONS[0], "single Lesion"),
    ([], "no lesions"),
    ([LESIONS[0], LESIONS[0]], "duplicate lesion ids"),
    ([LESIONS[0], (1, 2, 3)], "lesion #2 is a tuple"),
    ("A", "got str"),
])
def test_bad_lesion_lists(tracker, lesions, problem):
    with pytest.raises(InputError, match=problem):
        tracker.track(lesions)


def test_a_path_where_a_volume_belongs(tmp_path):
    with pytest.raises(InputError, match="must be a TLTTrackerLib Volume, got PosixPath; read it first"):
        LesionTracker(method="affine").set_pair(tmp_path / "bl.nii.gz", _volume())
    with pytest.raises(InputError, match="follow-up must be a TLTTrackerLib Volume, got ndarray"):
        as_volume(np.zeros((4, 4, 4)), "follow-up")


def test_nan_voxels_are_refused():
    v = _volume(dtype=np.float32)
    v.array[0, 0, :5] = np.nan
    v.array[1, 0, 0] = np.inf
    with pytest.raises(InputError, match="6 NaN or infinite voxels"):
        LesionTracker(method="affine").set_pair(v, _volume())


def test_sheared_volume_is_an_input_error():
    sheared = np.array([[1.0, 0.3, 0.0], [0.0, 0.954, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(InputError, match="orthonormal.*resample"):
        Volume(np.zeros((4, 4, 4)), direction=sheared)


def test_lesion_messages_have_no_numpy_reprs():
    with pytest.raises(InputError) as info:
        Lesion("L1", np.array([np.nan, 0.0, -100.0]))
    assert "array(" not in str(info.value) and "[nan, 0.0, -100.0]" in str(info.value)
    with pytest.raises(InputError, match="got -1.0"):
        Lesion("L1", [0, 0, 0], np.float64(-1.0))


def test_fingerprint_sees_geometry_and_content():
    a = _volume()
    assert volume_fingerprint(a) == volume_fingerprint(Volume(a.array.copy(), a.origin_lps_mm, a.spacing_mm))
    b = a.with_array(a.array + 1)
    assert volume_fingerprint(a)["content_blake2b"] != volume_fingerprint(b)["content_blake2b"]


def test_registration_must_be_a_registration_result():
    with pytest.raises(InputError, match="RegistrationResult"):
        LesionTracker(method="affine").set_pair(_volume(), _volume(1), registration={"baseline_to_followup": 1})


def test_as_lesions_keeps_a_list():
    assert as_lesions(tuple(LESIONS)) == LESIONS


def test_write_results_refuses_unknown_suffixes(tmp_path, tracker):
    from TLTTrackerLib.results import results_to_dict, write_results

    payload = results_to_dict(tracker.track(LESIONS), tracker.registration, {})
    with pytest.raises(InputError, match="unknown file type .txt"):
        write_results(payload, tmp_path / "r.txt")
    assert not list(tmp_path.iterdir())
    assert write_results(payload, tmp_path / "r.CSV").read_text().startswith("id,")
