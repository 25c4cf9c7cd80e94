"""`tlt-tracker track`: the tracking contract (JSON/CSV in and out, frames, reuse of registration, errors)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from TLTTrackerLib.cli import main
from TLTTrackerLib.io import write_volume
from TLTTrackerLib.geometry import lps_to_ras
from TLTTrackerLib.lesions import write_lesions
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.synthetic import make_pair


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(5)
    volume, lesions = make_phantom(rng)
    pair = make_pair(volume, lesions, rng)
    write_volume(pair.baseline, d / "baseline.nii.gz")
    write_volume(pair.followup, d / "followup.nrrd")
    write_lesions(pair.baseline_lesions, d / "lesions.json")
    write_lesions(pair.baseline_lesions, d / "lesions_ras.json", frame="RAS")
    return d, pair


def test_track_json_contract(files, capsys):
    d, pair = files
    out = d / "results.json"
    rc = main(["track", str(d / "baseline.nii.gz"), str(d / "followup.nrrd"), "--lesions", str(d / "lesions.json"),
               "--out", str(out), "--method", "affine", "--registration-out", str(d / "reg.json")])
    assert rc == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["coordinate_system"] == "LPS"
    assert [les["id"] for les in res["lesions"]] == [les.id for les in pair.baseline_lesions]
    first = res["lesions"][0]
    assert set(first) >= {"id", "baseline_center", "followup_center", "method", "confidence"}
    np.testing.assert_allclose(first["baseline_center"], pair.baseline_lesions[0].center_lps_mm, atol=1e-3)
    assert {"registration", "timing_s"} <= set(res)
    assert "baseline_to_followup" in res["registration"]
    assert res["timing_s"]["total"] > 0
    assert "lesion" in capsys.readouterr().out  # table printed


def test_track_ras_in_ras_out_and_reused_registration(files):
    d, pair = files
    out = d / "results_ras.json"
    rc = main(["track", str(d / "baseline.nii.gz"), str(d / "followup.nrrd"), "--lesions",
               str(d / "lesions_ras.json"), "--out", str(out), "--method", "affine",
               "--registration-in", str(d / "reg.json")])
    assert rc == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    lps = json.loads((d / "results.json").read_text(encoding="utf-8"))
    assert res["coordinate_system"] == "RAS"
    np.testing.assert_allclose(res["lesions"][0]["followup_center"],
                               lps_to_ras(np.array(lps["lesions"][0]["followup_center"])), atol=1e-2)
    assert res["timing_s"]["registration"] < 0.5  # reused, not recomputed


def test_track_lesion_args_csv_out_and_progress_json(files, capsys):
    d, pair = files
    c = pair.baseline_lesions[0].center_lps_mm
    out = d / "results.csv"
    rc = main(["track", str(d / "baseline.nii.gz"), str(d / "followup.nrrd"), "--lesion",
               f"{c[0]},{c[1]},{c[2]},6", "--out", str(out), "--method", "refine", "--progress-json"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert lines[-1]["progress"] == 1.0 and all(0 <= x["progress"] <= 1 for x in lines)
    text = out.read_text(encoding="utf-8").splitlines()
    assert text[0].startswith("id,baseline_x") and text[1].startswith("L1,")


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--lesions", "missing.json"], "lesion file not found"),
        ([], "no lesions given"),
        (["--lesion", "1,2"], "expected X,Y,Z"),
        (["--lesion", "9999,9999,9999"], "outside the baseline"),
    ],
)
def test_track_bad_input_exits_2_with_one_line(files, capsys, argv_tail, message):
    d, _ = files
    rc = main(["track", str(d / "baseline.nii.gz"), str(d / "followup.nrrd"), "--out", str(d / "x.json"),
               "--method", "affine", *argv_tail])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not (d / "x.json").exists()


def test_track_missing_volume_and_refuses_to_overwrite_input(files, capsys):
    d, _ = files
    assert main(["track", str(d / "nope.nii.gz"), str(d / "followup.nrrd"), "--lesion", "0,0,0",
                 "--out", str(d / "y.json")]) == 2
    assert "file not found" in capsys.readouterr().err
    before = (d / "lesions.json").read_bytes()
    assert main(["track", str(d / "baseline.nii.gz"), str(d / "followup.nrrd"), "--lesions",
                 str(d / "lesions.json"), "--out", str(d / "lesions.json")]) == 2
    assert (d / "lesions.json").read_bytes() == before
