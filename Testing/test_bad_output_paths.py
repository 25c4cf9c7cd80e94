"""Output paths are checked against every input and each other before any work (issue 9): subprocess CLI."""

from __future__ import annotations

import os

import pytest
from bad_input import assert_refused, write_ct, write_pair_inputs

from TLTTrackerLib.errors import InputError

TRACK = ["track", "bl.nii.gz", "fu.nii.gz", "--lesions", "les.json", "--method", "affine"]


@pytest.fixture()
def case(tmp_path):
    write_pair_inputs(tmp_path)
    (tmp_path / "reg.json").write_text("{}")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    os.symlink(tmp_path / "bl.nii.gz", tmp_path / "link.nii.gz")
    return tmp_path


@pytest.mark.parametrize("extra, names, problem", [
    (["--out", "r.json", "--registration-out", "bl.nii.gz"], "--registration-out bl.nii.gz", "overwrite the baseline"),
    (["--out", "r.json", "--registration-out", "les.json"], "--registration-out les.json", "overwrite the lesion"),
    (["--out", "reg.json", "--registration-in", "reg.json"], "--out reg.json", "overwrite the --registration-in"),
    (["--out", "link.nii.gz"], "--out link.nii.gz", "unknown file type"),
    (["--out", "r.json", "--registration-out", "link.nii.gz"], "link.nii.gz", "overwrite the baseline"),
    (["--out", "r.json", "--registration-out", "r.json"], "r.json", "name the same file"),
    (["--out", "adir"], "--out adir", "unknown file type"),
    (["--out", "adir.json/"], "adir.json/", "names a folder"),
    (["--out", "newdir/"], "newdir/", "names a folder"),
    (["--out", "r.txt"], "r.txt", "unknown file type"),
    (["--out", "r.json", "--heatmap-out", "afile"], "--heatmap-out afile", "existing file"),
    (["--out", "afile/r.json"], "afile/r.json", "is a file"),
])
def test_bad_output_paths_are_refused_before_any_work(case, extra, names, problem, capsys):
    assert_refused([*TRACK, *extra], case, names=names, problem=problem, capsys=capsys)


def test_output_onto_an_input_through_a_subprocess(case):
    """The issue's example, as a user runs it: the baseline CT must survive."""
    assert_refused([*TRACK, "--out", "r.json", "--registration-out", "bl.nii.gz"], case,
                   names="--registration-out bl.nii.gz", problem="overwrite the baseline")


def test_existing_folder_as_out_is_refused(case, capsys):
    (case / "res.json").mkdir()
    assert_refused([*TRACK, "--out", "res.json"], case, names="res.json", problem="existing folder", capsys=capsys)


def test_heatmap_file_of_a_lesion_may_not_be_an_input(case, capsys):
    (case / "hm").mkdir()
    write_ct(case / "hm" / "L1_heatmap.nii.gz")
    args = ["track", "bl.nii.gz", "hm/L1_heatmap.nii.gz", "--lesions", "les.json", "--out", "r.json",
            "--heatmap-out", "hm"]
    assert_refused(args, case, names="L1_heatmap.nii.gz", problem="overwrite the follow-up", capsys=capsys)


def test_read_only_folder_is_refused_up_front(case, monkeypatch):
    """os.access says "not writable" (root can write anywhere, so this is simulated in-process)."""
    from TLTTrackerLib.cli._outputs import Target, check_outputs

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("adir") else real(p, mode))
    with pytest.raises(InputError, match="not writable"):
        check_outputs({"the baseline": case / "bl.nii.gz"}, [Target("--out", case / "adir" / "r.json")])


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_folder_through_the_cli(case):
    (case / "ro").mkdir()
    os.chmod(case / "ro", 0o555)
    try:
        assert_refused([*TRACK, "--out", "ro/r.json"], case, names="ro/r.json", problem="not writable")
    finally:
        os.chmod(case / "ro", 0o755)


def test_other_commands_check_their_output_folders(case, capsys):
    """demo, prepare-deeplesion and train refuse an output folder that is a file / an input, before any work."""
    assert_refused(["demo", "--out", "afile"], case, names="--out afile", problem="existing file", capsys=capsys)
    (case / "DL_info.csv").write_text("File_name\n")
    assert_refused(["prepare-deeplesion", "adir", "DL_info.csv", "DL_info.csv"], case, names="DL_info.csv",
                   problem="would overwrite the DL_info.csv file", capsys=capsys)
    from bad_input import ROOT

    recipes = sorted((ROOT / "configs").glob("*.json"))
    if recipes:
        assert_refused(["train", "--config", str(recipes[0]), "--output", "afile"], case, names="afile",
                       problem="existing file", capsys=capsys)
