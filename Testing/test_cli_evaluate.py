"""`tlt-tracker evaluate`: hand-computed fixtures always; DLT's published figures when ../shared/data is there."""

from __future__ import annotations

import json

import pytest

from TLTTrackerLib.cli import main

from conftest import shared_file
from test_dls import record

# Spacing 0.5 x 0.5 x 2 mm, max RECIST diameter 20 px -> r = 5 mm for every pair.
CASES = {
    "0001": record(src_c=(10, 10, 1), tgt_c=(100, 100, 5), pred=(104, 103, 5)),  # (2, 1.5, 0) mm -> 2.5 mm
    "0002": record(src_c=(20, 20, 2), tgt_c=(50, 60, 3), pred=(50, 60, 9)),  # (0, 0, 12) mm -> 12 mm
    "0003": record(src_c=(30, 30, 3), tgt_c=(70, 70, 4), pred=(70, 70, 4)),  # exact
    "0004": record(src_c=(40, 40, 4), tgt_c=(70, 70, 4), pred=(78, 76, 4)),  # (4, 3, 0) mm -> 5 mm = r
}
ERRORS = [2.5, 12.0, 0.0, 5.0]


@pytest.fixture
def cases_file(tmp_path):
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(CASES), encoding="utf-8")
    return path


def _json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_figures_by_hand(cases_file, capsys):
    s = _json(capsys, ["evaluate", str(cases_file)])
    assert s["n"] == 4
    assert s["cpm_10mm"] == pytest.approx(3 / 4)  # 2.5, 0 and 5 <= min(5, 10)
    assert s["cpm_radius"] == pytest.approx(2 / 4)  # 5 is not < 5
    mean = sum(ERRORS) / 4
    assert s["med_mm"] == pytest.approx(mean)
    assert s["med_std_mm"] == pytest.approx((sum((e - mean) ** 2 for e in ERRORS) / 4) ** 0.5)
    assert s["med_z_mm"] == pytest.approx(12.0 / 4) and s["med_x_mm"] == pytest.approx(6.0 / 4)
    # TLT code: box diagonal 50 voxels -> flat e < 10 and e < 50
    assert s["secondary_tlt_code"]["cpm_10mm"] == pytest.approx(3 / 4)
    assert s["secondary_tlt_code"]["cpm_radius"] == pytest.approx(1.0)


def test_table_output(cases_file, capsys):
    assert main(["evaluate", str(cases_file)]) == 0
    out = capsys.readouterr().out
    assert "CPM@10mm" in out and "CPM@Radius" in out and "MEDz" in out
    assert "75.00" in out and "50.00" in out  # percentages in the table
    assert "Secondary" in out and "TLT code" in out


def test_separate_ground_truth_and_other_field(cases_file, tmp_path, capsys):
    preds = {"0001": {"my center": [100, 100, 5]}, "0002": {"my center": [50, 60, 4]}}
    p = tmp_path / "mine.json"
    p.write_text(json.dumps(preds), encoding="utf-8")
    s = _json(capsys, ["evaluate", str(p), "--field", "my center", "--ground-truth", str(cases_file)])
    assert s["n"] == 2 and s["n_ground_truth"] == 4
    assert s["med_mm"] == pytest.approx((0.0 + 2.0) / 2)
    assert main(["evaluate", str(p), "--field", "my center", "--ground-truth", str(cases_file)]) == 0
    assert "predicts 2 of 4" in capsys.readouterr().out
    assert main(["evaluate", str(p), "--field", "my center"]) == 2  # no truth in the file itself
    assert "pass --ground-truth" in capsys.readouterr().err


def test_compare_runs_paired_t_test(cases_file, tmp_path, capsys):
    worse = {k: dict(v, **{"predict target center": [c + 2 * (i + 1) for c in v["target center"][:2]]
                          + [v["target center"][2]]}) for i, (k, v) in enumerate(CASES.items())}
    other = tmp_path / "worse.json"
    other.write_text(json.dumps({"results": list(worse.values())[::-1]}), encoding="utf-8")  # unkeyed, reversed
    s = _json(capsys, ["evaluate", str(cases_file), "--compare", str(other)])
    t = s["paired_t_test"]
    worse_errors = [2 ** 0.5 * (i + 1) for i in range(4)]  # (2k, 2k) px × 0.5 mm
    assert t["n"] == 4 and t["mean_difference_mm"] == pytest.approx((sum(ERRORS) - sum(worse_errors)) / 4)
    assert s["compare"]["n"] == 4
    assert main(["evaluate", str(cases_file), "--compare", str(other)]) == 0
    assert "Paired t-test" in capsys.readouterr().out


def test_compare_with_other_pairs_is_refused(cases_file, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"0001": record(source="000777_01_01_001-009.nii.gz")}), encoding="utf-8")
    assert main(["evaluate", str(cases_file), "--compare", str(other)]) == 2
    assert "does not score the same pairs" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON"), (None, "not found")])
def test_bad_files_exit_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.shared_data
def test_reproduces_published_dlt_mix_figures(capsys):
    s = _json(capsys, ["evaluate", str(shared_file("dls/DLTMix.json"))])
    assert s["n"] == 960
    assert round(s["cpm_10mm"], 4) == 0.7885 and round(s["cpm_radius"], 4) == 0.8688
    assert round(s["med_mm"], 2) == 6.98 and round(s["med_std_mm"], 2) == 8.95
    assert round(s["secondary_tlt_code"]["cpm_10mm"], 4) == 0.8667  # method-notes §4.3
    assert round(s["secondary_tlt_code"]["cpm_radius"], 4) == 0.9979


@pytest.mark.shared_data
def test_reproduces_dlt_affine_start_figures(capsys):
    s = _json(capsys, ["evaluate", str(shared_file("dls/test.json")), "--field", "predict target center"])
    assert s["n"] == 960
    assert round(s["cpm_10mm"], 4) == 0.4833 and round(s["cpm_radius"], 4) == 0.6510
    assert round(s["med_mm"], 2) == 11.23 and round(s["med_std_mm"], 2) == 9.88  # population std (ddof=1: 9.89)


@pytest.mark.shared_data
def test_dltmix_against_test_json_and_paired_test(capsys):
    dltmix, test = str(shared_file("dls/DLTMix.json")), str(shared_file("dls/test.json"))
    s = _json(capsys, ["evaluate", dltmix, "--ground-truth", test, "--compare", test])
    assert s["n"] == 960 and s["n_ground_truth"] == 960
    assert round(s["cpm_10mm"], 4) == 0.7885 and round(s["med_mm"], 2) == 6.98  # test.json's 0.1 px rounding
    t = s["paired_t_test"]
    assert t["n"] == 960 and t["mean_difference_mm"] < -4 and t["p"] < 1e-20  # DLT-Mix beats its affine start


@pytest.mark.parametrize("change, problem", [
    ({"target spacing": [0.0, 0.5, 2.0]}, "'target spacing' must be > 0"),
    ({"target spacing": [-0.5, 0.5, 2.0]}, "'target spacing' must be > 0"),
    ({"target recist diameter": [-20, 10]}, "'target recist diameter' must be ≥ 0"),
    ({"target recist diameter": [0, 0]}, "positive long diameter"),
])
def test_impossible_geometry_is_refused_not_scored(tmp_path, capsys, change, problem):
    """Zero/negative spacing or diameters used to score 100 %; now one error line naming the record."""
    bad = {k: dict(v) for k, v in CASES.items()}
    bad["0002"].update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "0002" in err and problem in err


def test_malformed_records_are_refused_not_dropped(tmp_path, capsys):
    bad = dict(CASES, **{"0005": [1, 2, 3]})
    (tmp_path / "a.json").write_text(json.dumps(bad))
    assert main(["evaluate", str(tmp_path / "a.json")]) == 2
    assert "record '0005' is not an object" in capsys.readouterr().err
    half = {k: dict(v) for k, v in CASES.items()}
    del half["0003"]["target spacing"]  # some ground-truth fields but not all
    (tmp_path / "b.json").write_text(json.dumps(half))
    assert main(["evaluate", str(tmp_path / "b.json"), "--ground-truth", str(tmp_path / "b.json")]) == 2
    assert "0003" in capsys.readouterr().err


def test_compare_of_identical_files_is_exactly_no_difference(cases_file, tmp_path, capsys):
    twin = tmp_path / "twin.json"
    twin.write_bytes(cases_file.read_bytes())
    s = _json(capsys, ["evaluate", str(cases_file), "--compare", str(twin)])
    p = s["paired_t_test"]
    assert p["mean_difference_mm"] == 0.0 and p["t"] == 0.0 and p["p"] == 1.0 and p["note"] == "identical errors"
    assert main(["evaluate", str(cases_file), "--compare", str(twin)]) == 0
    assert "+0.00 mm, t = 0.000, p = 1 (identical errors)" in capsys.readouterr().out
