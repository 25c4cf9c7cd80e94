"""Saved registrations (--registration-in): a file of another pair or a broken file is refused (issue 9)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from bad_input import assert_refused, run_in_process, write_ct, write_pair_inputs

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.io import read_volume
from TLTTrackerLib.registration import RegistrationResult
from TLTTrackerLib.transforms import AffineTransform
from TLTTrackerLib.validation import check_registration_pair, pair_fingerprint


def _saved(path, baseline, followup):
    reg = RegistrationResult(AffineTransform(), 0.0, 1.0, {"pair": pair_fingerprint(baseline, followup)})
    path.write_text(json.dumps(reg.to_dict()))
    return path


@pytest.fixture()
def case(tmp_path):
    write_pair_inputs(tmp_path)
    write_ct(tmp_path / "other.nii.gz", seed=2)  # same geometry, other voxels
    write_ct(tmp_path / "bigger.nii.gz", shape_kji=(26, 40, 40), seed=1)
    _saved(tmp_path / "reg.json", read_volume(tmp_path / "bl.nii.gz"), read_volume(tmp_path / "fu.nii.gz"))
    return tmp_path


def _track(followup, reg="reg.json"):
    return ["track", "bl.nii.gz", followup, "--lesions", "les.json", "--out", "r.json", "--method", "affine",
            "--registration-in", reg]


def test_registration_of_another_pair_is_refused(case):
    assert_refused(_track("other.nii.gz"), case, names="reg.json", problem="another scan pair")


def test_registration_of_another_geometry_is_refused(case, capsys):
    line = assert_refused(_track("bigger.nii.gz"), case, names="reg.json", problem="another scan pair",
                          capsys=capsys)
    assert "size" in line


@pytest.mark.parametrize("text, problem", [
    ("not json", "cannot reuse registration"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"baseline_to_followup": {"matrix": [[0] * 3] * 3, "translation_mm": [0, 0, 0]}}), "singular"),
])
def test_broken_registration_files_are_refused(case, text, problem, capsys):
    (case / "bad.json").write_text(text)
    assert_refused(_track("fu.nii.gz", "bad.json"), case, names="bad.json", problem=problem, capsys=capsys)


def test_registration_of_this_pair_is_reused_and_affine_has_no_confidence(case, capsys):
    """The right pair passes; the affine method says it has no confidence measure (null, n/a, a flag)."""
    proc = run_in_process([*_track("fu.nii.gz"), "--registration-out", "again.json"], case, capsys)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads((case / "r.json").read_text())
    les = payload["lesions"][0]
    assert les["confidence"] is None and "no_confidence_measure" in les["flags"]
    assert " n/a " in proc.stdout
    again = json.loads((case / "again.json").read_text())
    assert again["info"]["pair"] == json.loads((case / "reg.json").read_text())["info"]["pair"]


def test_api_checks_the_pair_too(case):
    from TLTTrackerLib.tracker import LesionTracker

    bl, other = read_volume(case / "bl.nii.gz"), read_volume(case / "other.nii.gz")
    reg = RegistrationResult.from_dict(json.loads((case / "reg.json").read_text()))
    with pytest.raises(InputError, match="another scan pair"):
        LesionTracker(method="affine").set_pair(bl, other, registration=reg)
    with pytest.raises(InputError, match="origin_lps_mm"):
        moved = type(bl)(bl.array, bl.origin_lps_mm + 5.0, bl.spacing_mm, bl.direction)
        check_registration_pair(reg.info, moved, read_volume(case / "fu.nii.gz"))
    assert np.isfinite(reg.baseline_to_followup.matrix).all()
