"""track-batch output folders: damaged earlier results are detected by name and redone; outputs never land on
inputs (issue 9)."""

from __future__ import annotations


import pytest
from bad_input import assert_refused, run_in_process, write_pair_inputs

from TLTTrackerLib.batch import read_results_file
from TLTTrackerLib.errors import InputError


@pytest.fixture()
def case(tmp_path):
    write_pair_inputs(tmp_path)
    (tmp_path / "pairs.csv").write_text("pair_id,baseline,followup,lesions\np1,bl.nii.gz,fu.nii.gz,les.json\n")
    return tmp_path


def test_damaged_results_are_reported_and_redone(case, capsys, caplog):
    (case / "runs" / "p1").mkdir(parents=True)
    (case / "runs" / "p1" / "results.json").write_text('{"lesions": [{"id": "L1", "baseline_cen')  # cut short
    with caplog.at_level("WARNING"):
        proc = run_in_process(["track-batch", "pairs.csv", "--out", "runs", "--method", "affine"], case, capsys)
    assert proc.returncode == 0, proc.stderr
    assert any("results.json is damaged" in r.getMessage() and "p1" in r.getMessage() for r in caplog.records)
    assert "1 done, 0 skipped" in proc.stdout
    payload = read_results_file(case / "runs" / "p1" / "results.json")
    assert payload["lesions"][0]["confidence"] is None  # affine: no confidence measure
    summary = (case / "runs" / "summary.csv").read_text().splitlines()
    assert summary[1].split(",")[9] == "" and "no_confidence_measure" in summary[1]
    assert not [p.name for p in (case / "runs").rglob(".*")]  # no temporary files left


def test_summary_of_a_damaged_result_names_the_file(tmp_path):
    from TLTTrackerLib.batch import Pair, summary_text

    (tmp_path / "p1").mkdir()
    (tmp_path / "p1" / "results.json").write_text("{")
    with pytest.raises(InputError, match=r"p1/results.json is damaged"):
        summary_text([Pair("p1", tmp_path, tmp_path, tmp_path)], tmp_path)


def test_out_folder_that_is_a_file(case):
    (case / "runs").write_text("x")
    assert_refused(["track-batch", "pairs.csv", "--out", "runs"], case, names="runs", problem="is a file")


def test_outputs_may_not_land_on_inputs(case, capsys):
    """A pairs file called summary.csv inside --out would be replaced by the summary."""
    (case / "summary.csv").write_bytes((case / "pairs.csv").read_bytes())
    assert_refused(["track-batch", "summary.csv", "--out", "."], case, names="summary.csv",
                   problem="overwrite the pairs file", capsys=capsys)
