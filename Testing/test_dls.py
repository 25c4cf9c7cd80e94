"""DLS records and `tlt-tracker evaluate`: hand-made fixtures always; the published figures when ../shared is there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TLTTrackerLib.cli import main
from TLTTrackerLib.dls import load_dls, match_ground_truth
from TLTTrackerLib.errors import InputError

from conftest import shared_file


def _record(src_c, tgt_c, pred, spacing=(0.5, 0.5, 2.0), diam=(20.0, 10.0)):
    return {
        "source": "000001_01_01_001-010.nii.gz", "target": "000001_02_01_005-020.nii.gz",
        "source center": list(src_c), "target center": list(tgt_c), "source box": [0, 0, 0, 10, 10, 2],
        "target box": [0, 0, 0, 30, 40, 0], "source spacing": list(spacing), "target spacing": list(spacing),
        "source recist diameter": list(diam), "target recist diameter": list(diam),
        "predict target center": list(pred),
    }


@pytest.fixture
def fixture_file(tmp_path):
    data = {
        "0001": _record([10, 10, 1], [100, 100, 5], [104, 103, 5]),  # 2.5 mm error, r = 5 mm
        "0002": _record([20, 20, 2], [50, 60, 3], [50, 60, 9]),  # 12 mm error
        "0003": _record([30, 30, 3], [70, 70, 4], [70, 70, 4]),  # exact
    }
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(data))
    return path


def test_records_are_typed_and_radius_is_dlt(fixture_file):
    pairs = load_dls(fixture_file)
    assert [p.key for p in pairs] == ["0001", "0002", "0003"]
    assert pairs[0].target_radius_mm == pytest.approx(5.0)
    assert pairs[0].target_box_diagonal == pytest.approx(50.0)
    np.testing.assert_allclose(pairs[0].prediction("predict target center"), [104, 103, 5])
    with pytest.raises(InputError, match="no field"):
        pairs[0].prediction("nope")


def test_evaluate_json_on_fixture(fixture_file, capsys):
    assert main(["evaluate", str(fixture_file), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n"] == 3
    assert s["cpm_10mm"] == pytest.approx(2 / 3) and s["cpm_radius"] == pytest.approx(2 / 3)
    assert s["med_mm"] == pytest.approx((2.5 + 12.0 + 0.0) / 3)


def test_evaluate_with_separate_ground_truth_and_bad_files(fixture_file, tmp_path, capsys):
    truth = json.loads(fixture_file.read_text(encoding="utf-8"))
    preds = {"results": [dict(v, **{"target center": [0, 0, 0]}) for v in truth.values()]}
    p = tmp_path / "preds.json"
    p.write_text(json.dumps(preds))
    matched = match_ground_truth(load_dls(p), load_dls(fixture_file))
    assert [m.key for m in matched] == ["0001", "0002", "0003"]
    assert main(["evaluate", str(p), "--ground-truth", str(fixture_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["med_mm"] == pytest.approx((2.5 + 12.0) / 3)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["evaluate", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.json")]) == 2


@pytest.mark.shared_data
def test_reproduces_published_dlt_mix_figures(capsys):
    assert main(["evaluate", str(shared_file("dls/DLTMix.json")), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n"] == 960
    assert round(s["cpm_10mm"], 4) == 0.7885 and round(s["cpm_radius"], 4) == 0.8688
    assert round(s["med_mm"], 2) == 6.98 and round(s["med_std_mm"], 2) == 8.95
    assert round(s["secondary_tlt_code"]["cpm_10mm"], 4) == 0.8667  # method-notes §4.3


@pytest.mark.shared_data
def test_reproduces_dlt_affine_start_figures(capsys):
    assert main(["evaluate", str(shared_file("dls/test.json")), "--field", "predict target center", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n"] == 960
    assert round(s["cpm_10mm"], 4) == 0.4833 and round(s["cpm_radius"], 4) == 0.6510
    assert round(s["med_mm"], 2) == 11.23 and round(s["med_std_mm"], 2) == 9.88


@pytest.mark.shared_data
def test_valid_split_parses():
    pairs = load_dls(shared_file("dls/valid.json"))
    assert len(pairs) == 906 and all(p.target_radius_mm > 0 for p in pairs)
