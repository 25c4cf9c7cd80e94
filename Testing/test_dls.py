"""DLS records: typed parsing, prediction files, ground-truth matching (hand-made always; real files when present)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TLTTrackerLib.dls import DLSPair, load_dls, load_predictions, match_ground_truth
from TLTTrackerLib.errors import InputError

from conftest import shared_file


def record(src_c=(10, 10, 1), tgt_c=(100, 100, 5), pred=(104, 103, 5), source="000001_01_01_001-010.nii.gz",
           target="000001_02_01_005-020.nii.gz", spacing=(0.5, 0.5, 2.0), diam=(20.0, 10.0)):
    return {
        "source": source, "target": target,
        "source center": list(src_c), "target center": list(tgt_c), "source box": [0, 0, 0, 10, 10, 2],
        "target box": [0, 0, 0, 30, 40, 0], "source spacing": list(spacing), "target spacing": list(spacing),
        "source recist diameter": list(diam), "target recist diameter": list(diam),
        "source recist coordinate": [0, 0, 20, 0, 10, -5, 10, 5], "source recist slice": "000001_01_01/002.png",
        "predict target center": list(pred), "lesion pair id": 7.0,
    }


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_records_are_typed(tmp_path):
    path = _write(tmp_path, "a.json", {"0002": record(src_c=(1, 2, 3)), "0001": record()})
    pairs = load_dls(path)
    assert [p.key for p in pairs] == ["0001", "0002"]  # sorted by key
    p = pairs[0]
    assert isinstance(p, DLSPair) and p.source == "000001_01_01_001-010.nii.gz"
    np.testing.assert_array_equal(p.source_center_xyz, [10, 10, 1])
    assert p.source_box.shape == (6,) and p.target_spacing_mm.tolist() == [0.5, 0.5, 2.0]
    assert p.source_recist_coordinate_px.shape == (8,) and p.target_recist_coordinate_px is None
    np.testing.assert_array_equal(p.predict_target_center_xyz, [104, 103, 5])
    np.testing.assert_array_equal(p.prediction(), [104, 103, 5])
    assert p.extra == {"source recist slice": "000001_01_01/002.png", "lesion pair id": 7.0}
    assert p.target_radius_mm == pytest.approx(20.0 / 2 * 0.5)  # max diameter px / 2 × x-spacing
    assert p.target_box_diagonal == pytest.approx(50.0)  # sqrt(30² + 40² + 0²)
    with pytest.raises(InputError, match="no field"):
        p.prediction("nope")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"0001": {"source": "a"}}, "lacks"),
        ({"0001": dict(record(), **{"target center": [1, 2]})}, "'target center' should be 3 finite numbers"),
        ({"0001": dict(record(), **{"target spacing": [1, "x", 1]})}, "'target spacing' should be 3"),
        ({"0001": dict(record(), **{"predict target center": [1, None, 2]})}, "predict target center"),
        ({}, "no DLS records"),
        ("just a string", "expected a dict"),
    ],
)
def test_bad_records_name_the_problem(tmp_path, data, message):
    with pytest.raises(InputError, match=message):
        load_dls(_write(tmp_path, "bad.json", data))


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_dls(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        load_dls(bad)


def test_results_list_files_are_positional(tmp_path):
    path = _write(tmp_path, "r.json", {"results": [record(src_c=(5, 5, 5)), record()], "iso_radius": -1})
    preds = load_predictions(path)
    assert [(p.key, p.keyed) for p in preds] == [("0001", False), ("0002", False)]
    assert preds[0].pair is not None and preds[0].source_center_xyz.tolist() == [5, 5, 5]
    with pytest.raises(InputError, match="no field 'initial center'"):
        load_predictions(path, field="initial center")


def test_prediction_only_file_matches_by_key(tmp_path):
    truth = load_dls(_write(tmp_path, "t.json", {"0001": record(), "0002": record(src_c=(50, 50, 2))}))
    preds = load_predictions(_write(tmp_path, "p.json", {"0002": {"predict target center": [1, 2, 3]}}))
    assert preds[0].keyed and preds[0].pair is None and preds[0].source is None
    assert [t.key for t in match_ground_truth(preds, truth)] == ["0002"]
    unknown = load_predictions(_write(tmp_path, "u.json", {"0009": {"predict target center": [1, 2, 3]}}))
    with pytest.raises(InputError, match="no ground truth record"):
        match_ground_truth(unknown, truth)


def test_unkeyed_predictions_match_by_pair_identity(tmp_path):
    """Like DLTMix.json vs test.json: other order, full-precision centres vs 0.1 px rounding."""
    truth = load_dls(_write(tmp_path, "t.json", {
        "0001": record(src_c=(10.0, 10.0, 1)),
        "0002": record(src_c=(40.1, 12.3, 1)),  # same scans, another lesion
        "0003": record(src_c=(10.0, 10.0, 1), source="000002_01_01_001-010.nii.gz"),
    }))
    preds = load_predictions(_write(tmp_path, "p.json", {"results": [
        record(src_c=(40.1234, 12.2501, 1)), record(src_c=(9.96, 10.04, 1)),
        record(src_c=(10.0, 10.0, 1), source="000002_01_01_001-010.nii.gz")]}))
    assert [t.key for t in match_ground_truth(preds, truth)] == ["0002", "0001", "0003"]
    far = load_predictions(_write(tmp_path, "f.json", {"results": [record(src_c=(12, 10, 1))]}))
    with pytest.raises(InputError, match="no match"):
        match_ground_truth(far, truth)


def test_keyed_file_naming_another_pair_is_refused(tmp_path):
    truth = load_dls(_write(tmp_path, "t.json", {"0001": record()}))
    preds = load_predictions(_write(tmp_path, "p.json", {"0001": record(target="000009_01_01_001-009.nii.gz")}))
    with pytest.raises(InputError, match="same DLS split"):
        match_ground_truth(preds, truth)


@pytest.mark.shared_data
def test_real_files_parse_and_dltmix_matches_test_split():
    test = load_dls(shared_file("dls/test.json"))
    valid = load_dls(shared_file("dls/valid.json"))
    assert len(test) == 960 and len(valid) == 906
    assert all(p.target_radius_mm > 0 and p.predict_target_center_xyz is not None for p in test + valid)
    assert all(p.source_recist_coordinate_px is not None for p in test)
    preds = load_predictions(shared_file("dls/DLTMix.json"))
    matched = match_ground_truth(preds, test)
    assert len({t.key for t in matched}) == 960  # one-to-one although order and precision differ
    for p, t in zip(preds, matched):
        np.testing.assert_allclose(p.pair.target_center_xyz, t.target_center_xyz, atol=0.06)
