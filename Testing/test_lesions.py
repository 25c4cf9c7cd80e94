"""Lesion lists: LESIONS.json (LPS/RAS), Slicer .mrk.json, CSV, --lesion arguments, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.lesions import Lesion, parse_lesion_arg, read_lesions, write_lesions


def test_json_lps_and_ras_round_trip(tmp_path):
    lesions = [Lesion("A", [1.0, 2.0, 3.0], 4.0), Lesion("B", [-5.0, 6.0, -7.0], 8.0)]
    for frame in ("LPS", "RAS"):
        path = write_lesions(lesions, tmp_path / f"{frame}.json", frame=frame)
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["coordinate_system"] == frame
        back, got_frame = read_lesions(path)
        assert got_frame == frame
        np.testing.assert_allclose(back[0].center_lps_mm, [1, 2, 3])
        assert back[1].radius_mm == 8.0
    ras = json.loads((tmp_path / "RAS.json").read_text(encoding="utf-8"))["lesions"][0]["center"]
    assert ras == [-1.0, -2.0, 3.0]


def test_slicer_markups_file(tmp_path):
    mrk = {"markups": [{"type": "Fiducial", "coordinateSystem": "RAS", "controlPoints": [
        {"label": "Tumour", "position": [10.0, 20.0, 30.0]}, {"label": "", "position": [0, 0, 0]}]}]}
    path = tmp_path / "points.mrk.json"
    path.write_text(json.dumps(mrk))
    lesions, frame = read_lesions(path)
    assert frame == "RAS" and lesions[0].id == "Tumour" and lesions[1].id == "L2"
    np.testing.assert_allclose(lesions[0].center_lps_mm, [-10, -20, 30])


def test_csv_with_and_without_radius(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("id,x,y,z,radius_mm\nN1,1,2,3,5\nN2,4,5,6,\n")
    lesions, frame = read_lesions(path, csv_frame="RAS")
    assert frame == "RAS" and [les.id for les in lesions] == ["N1", "N2"]
    np.testing.assert_allclose(lesions[0].center_lps_mm, [-1, -2, 3])
    assert lesions[1].radius_mm == 10.0


def test_lesion_argument():
    les = parse_lesion_arg("-33.8,-54.8,-150,1.5", 2)
    assert les.id == "L2" and les.radius_mm == 1.5
    np.testing.assert_allclose(les.center_lps_mm, [-33.8, -54.8, -150])
    with pytest.raises(InputError, match="X,Y,Z"):
        parse_lesion_arg("1,2", 1)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"lesions": []}', "no lesions"),
        ('{"lesions": [{"id": "A", "center": [1, 2, 3]}, {"id": "A", "center": [1, 2, 3]}]}', "duplicate"),
        ('{"lesions": [{"id": "A"}]}', "needs 'center'"),
        ('{"coordinate_system": "XYZ", "lesions": [{"center": [1, 2, 3]}]}', "coordinate_system"),
        ('{"lesions": [{"center": [1, 2, 3], "radius_mm": -1}]}', "radius_mm"),
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected"),
    ],
)
def test_bad_lesion_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_lesions(path)


def test_missing_file_and_csv_without_columns(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_lesions(tmp_path / "none.json")
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="id,x,y,z"):
        read_lesions(path)
