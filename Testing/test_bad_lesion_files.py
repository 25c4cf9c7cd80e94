"""Bad lesion files through the CLI: one error line naming the file, the row/column and the fix (issue 9)."""

from __future__ import annotations

import json

import pytest
from bad_input import assert_refused, write_pair_inputs


@pytest.fixture()
def case(tmp_path):
    write_pair_inputs(tmp_path, lesions=False)
    return tmp_path


def _track(name):
    return ["track", "bl.nii.gz", "fu.nii.gz", "--lesions", name, "--out", "r.json", "--method", "affine"]


@pytest.mark.parametrize("name, text, problem", [
    ("bad.csv", "id,x,y,z\nA,1,two,3\n", "row 1, column y: 'two' is missing or non-numeric"),
    ("nan.csv", "id,x,y,z,radius_mm\nA,1,2,3,nan\n", "column radius_mm"),
    ("dup.csv", "id,x,y,z\nA,40,40,36\nA,40,40,30\n", "duplicate lesion ids"),
    ("neg.json", json.dumps({"lesions": [{"id": "L1", "center": [40, 40, 36], "radius_mm": -2}]}), "radius_mm"),
    ("nan.json", json.dumps({"lesions": [{"id": "L1", "center": [float("nan"), 0, -100]}]}), "[nan, 0.0, -100.0]"),
    ("broken.json", '{"lesions": [', "not valid JSON"),
    ("latin1.csv", "id,x,y,z\n\xe9,1,2,3\n", "not UTF-8"),
])
def test_bad_lesion_files_are_refused(case, name, text, problem, capsys):
    (case / name).write_bytes(text.encode("latin-1") if name == "latin1.csv" else text.encode())
    line = assert_refused(_track(name), case, names=name, problem=problem, capsys=capsys)
    assert "array(" not in line  # no numpy reprs reach users


def test_bad_lesion_file_through_a_subprocess(case):
    (case / "bad.csv").write_text("id,x,y,z\nA,1,2\n")
    assert_refused(_track("bad.csv"), case, names="bad.csv", problem="column z")
