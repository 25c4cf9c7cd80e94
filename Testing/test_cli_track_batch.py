"""`tlt-tracker track-batch`: PAIRS.csv in, one results folder per pair, resume, failures, sharding, summary.csv."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from TLTTrackerLib.batch import read_pairs, shard
from TLTTrackerLib.cli import main
from TLTTrackerLib.errors import InputError
from TLTTrackerLib.io import write_volume
from TLTTrackerLib.lesions import write_lesions
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.synthetic import make_pair

HEADER = "pair_id,baseline,followup,lesions,coordinate_system\n"


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two phantom pairs on disk (relative paths from the CSV folder); pair 2 has its lesions as an RAS CSV."""
    d = tmp_path_factory.mktemp("cohort")
    pairs = []
    for n, seed in enumerate((5, 6), start=1):
        rng = np.random.default_rng(seed)
        volume, lesions = make_phantom(rng)
        pair = make_pair(volume, lesions, rng)
        write_volume(pair.baseline, d / "scans" / f"p{n}_t0.nii.gz")
        write_volume(pair.followup, d / "scans" / f"p{n}_t1.nrrd")
        pairs.append(pair)
    write_lesions(pairs[0].baseline_lesions, d / "p1_lesions.json")
    with (d / "p2_lesions.csv").open("w", encoding="utf-8", newline="") as fh:
        fh.write("id,x,y,z,radius_mm\n")
        for les in pairs[1].baseline_lesions:
            x, y, z = les.center_lps_mm
            fh.write(f"{les.id},{-x},{-y},{z},{les.radius_mm}\n")  # RAS
    return d, pairs


def _csv(folder, rows: str, name: str = "pairs.csv"):
    path = folder / name
    path.write_text(rows, encoding="utf-8")
    return path


def _two_pairs(d, baseline1: str = "scans/p1_t0.nii.gz"):
    return _csv(d, HEADER + f"p1,{baseline1},scans/p1_t1.nrrd,p1_lesions.json,\n"
                "p2,scans/p2_t0.nii.gz,scans/p2_t1.nrrd,p2_lesions.csv,RAS\n")


def _batch(pairs_csv, out, *extra: str) -> int:
    return main(["track-batch", str(pairs_csv), "--out", str(out), "--method", "affine", *extra])


@pytest.fixture(scope="module")
def done_run(scans, tmp_path_factory):
    d, pairs = scans
    out = tmp_path_factory.mktemp("runs")
    assert _batch(_two_pairs(d), out) == 0
    return out


def test_happy_path_writes_results_registration_and_summary(scans, done_run):
    d, pairs = scans
    for pid in ("p1", "p2"):
        assert {p.name for p in (done_run / pid).iterdir()} == {"results.json", "registration.json"}
        reg = json.loads((done_run / pid / "registration.json").read_text(encoding="utf-8"))
        assert "baseline_to_followup" in reg
    res1 = json.loads((done_run / "p1" / "results.json").read_text(encoding="utf-8"))
    res2 = json.loads((done_run / "p2" / "results.json").read_text(encoding="utf-8"))
    assert res1["coordinate_system"] == "LPS" and res2["coordinate_system"] == "RAS"
    assert {"registration", "timing_s", "inputs", "version"} <= set(res1)
    assert res1["registration"] == json.loads((done_run / "p1" / "registration.json").read_text(encoding="utf-8"))
    with (done_run / "summary.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    expected = [(f"p{n}", les.id) for n, pair in enumerate(pairs, start=1) for les in pair.baseline_lesions]
    assert [(r["pair_id"], r["lesion_id"]) for r in rows] == expected
    first_p2 = next(r for r in rows if r["pair_id"] == "p2")
    c = pairs[1].baseline_lesions[0].center_lps_mm
    np.testing.assert_allclose([float(first_p2[k]) for k in ("baseline_x", "baseline_y", "baseline_z")],
                               [-c[0], -c[1], c[2]], atol=1e-3)  # the frame of that pair's results (RAS)
    assert first_p2["coordinate_system"] == "RAS" and first_p2["method"] == "affine"
    assert {"followup_x", "followup_y", "followup_z", "confidence", "flags"} <= set(rows[0])


def test_same_output_as_track(scans, done_run, tmp_path):
    d, _ = scans
    single = tmp_path / "single.json"
    assert main(["track", str(d / "scans" / "p1_t0.nii.gz"), str(d / "scans" / "p1_t1.nrrd"), "--lesions",
                 str(d / "p1_lesions.json"), "--out", str(single), "--method", "affine"]) == 0
    a = json.loads(single.read_text(encoding="utf-8"))
    b = json.loads((done_run / "p1" / "results.json").read_text(encoding="utf-8"))
    assert a["lesions"] == b["lesions"] and set(a["timing_s"]) == set(b["timing_s"])


def test_resume_skips_done_pairs_and_overwrite_redoes(scans, done_run, tmp_path, capsys):
    d, _ = scans
    out = tmp_path / "runs"
    shutil.copytree(done_run, out)
    results = out / "p1" / "results.json"
    results.write_text(results.read_text(encoding="utf-8").replace('"version"', '"marker": 1, "version"'),
                       encoding="utf-8")
    (out / "summary.csv").unlink()
    capsys.readouterr()
    assert _batch(_two_pairs(d), out) == 0
    assert '"marker"' in results.read_text(encoding="utf-8")  # not redone
    assert "2 pairs: 0 done, 2 skipped, 0 failed" in capsys.readouterr().out
    assert (out / "summary.csv").is_file()  # a rerun collects the summary
    assert _batch(_two_pairs(d), out, "--overwrite") == 0
    assert '"marker"' not in results.read_text(encoding="utf-8")
    assert "2 done, 0 skipped" in capsys.readouterr().out


def test_failing_pair_writes_error_and_the_others_go_on(scans, tmp_path, capsys):
    d, _ = scans
    out = tmp_path / "runs"
    pairs_csv = _two_pairs(d, baseline1="scans/missing.nii.gz")
    assert _batch(pairs_csv, out) == 1
    error = (out / "p1" / "error.txt").read_text(encoding="utf-8")
    assert "file not found" in error and "missing.nii.gz" in error and error.count("\n") == 1
    assert not (out / "p1" / "results.json").exists()
    assert (out / "p2" / "results.json").is_file()
    assert not (out / "summary.csv").exists()  # not every pair has results
    captured = capsys.readouterr()
    assert "1 done, 0 skipped, 1 failed" in captured.out and "p1 failed" in captured.err
    # fixed input: the rerun does the failed pair only, clears its error.txt and writes the summary
    assert _batch(_two_pairs(d), out) == 0
    assert not (out / "p1" / "error.txt").exists() and (out / "summary.csv").is_file()


def test_torchrun_shard_rank1_does_second_pair_only(scans, tmp_path, monkeypatch, capsys):
    d, _ = scans
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    out = tmp_path / "runs"
    assert _batch(_two_pairs(d), out) == 0
    assert not (out / "p1").exists() and (out / "p2" / "results.json").is_file()
    assert not (out / "summary.csv").exists()
    assert "rank 1/2: 1 pairs: 1 done" in capsys.readouterr().out
    assert [p.pair_id for p in shard(read_pairs(_two_pairs(d)), 0, 2)] == ["p1"]


def test_torchrun_rank_with_failed_pair_exits_0(scans, tmp_path, monkeypatch, capsys):
    d, _ = scans  # exit 1 would make torchrun stop the other ranks; the single-process rerun reports it
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "runs"
    assert _batch(_two_pairs(d, baseline1="scans/missing.nii.gz"), out) == 0
    assert (out / "p1" / "error.txt").is_file() and not (out / "p2").exists()
    assert "1 failed" in capsys.readouterr().out


def test_default_method_runs(scans, tmp_path):
    d, _ = scans
    pairs_csv = _csv(d, HEADER + "only,scans/p1_t0.nii.gz,scans/p1_t1.nrrd,p1_lesions.json,LPS\n", "one.csv")
    out = tmp_path / "runs"
    assert main(["track-batch", str(pairs_csv), "--out", str(out), "--device", "cpu"]) == 0
    res = json.loads((out / "only" / "results.json").read_text(encoding="utf-8"))
    assert {les["method"] for les in res["lesions"]} == {"refine"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("pair_id,baseline,followup\np1,a,b\n", "missing column(s) lesions"),
        (HEADER + "p1,a,b,l.json,\np1,c,d,l.json,\n", "duplicate pair_id 'p1'"),
        (HEADER + "../up,a,b,l.json,\n", "cannot be a folder name"),
        (HEADER + "p1,a,b,l.json,XYZ\n", "unknown coordinate_system"),
        (HEADER + "p1,,b,l.json,\n", "empty baseline"),
    ],
)
def test_bad_pairs_csv_exits_2_with_one_line(tmp_path, capsys, text, message):
    pairs_csv = _csv(tmp_path, text)
    assert _batch(pairs_csv, tmp_path / "runs") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "runs").exists()


def test_missing_pairs_file_and_bad_torchrun_env(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="pairs file not found"):
        read_pairs(tmp_path / "nope.csv")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    pairs_csv = _csv(tmp_path, HEADER + "p1,a,b,l.json,\n")
    assert _batch(pairs_csv, tmp_path / "runs") == 2
