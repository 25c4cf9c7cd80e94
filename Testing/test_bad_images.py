"""Bad image inputs through the CLI (subprocess) and read_volume: each refused with one clear line (issue 9)."""

from __future__ import annotations

import numpy as np
import pytest
from bad_input import assert_refused, write_ct, write_pair_inputs

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.io import read_volume

SHEARED = (1.0, 0.0, 0.0, 0.3, 0.954, 0.0, 0.0, 0.0, 1.0)  # columns not orthogonal


def _cut(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.fixture()
def case(tmp_path):
    write_pair_inputs(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", ["fu.nii.gz", "fu.nii"])
def test_truncated_nifti_is_refused(case, name, capsys):
    """SimpleITK reads a short NIfTI file as zero-filled slices; we refuse it (CLI and read_volume)."""
    path = write_ct(case / name, seed=1)
    _cut(path)
    with pytest.raises(InputError, match="truncated"):
        read_volume(path)
    assert_refused(["track", "bl.nii.gz", name, "--lesions", "les.json", "--out", "r.json", "--method", "affine"],
                   case, names=name, problem="truncated", capsys=None if name.endswith(".gz") else capsys)


def test_complete_nifti_files_pass_the_check(case):
    from TLTTrackerLib.validation import check_nifti_complete

    for name in ("a.nii.gz", "a.nii"):
        check_nifti_complete(write_ct(case / name))  # no error
    assert read_volume(case / "a.nii").shape_kji == (24, 40, 40)


def test_truncated_multi_member_gzip_is_checked_by_stream(case):
    """The ISIZE trailer of a 2-member gzip is not the total size: the slow path decompresses and decides."""
    import gzip

    raw = (write_ct(case / "raw.nii")).read_bytes()
    half = len(raw) // 2
    (case / "two.nii.gz").write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    assert read_volume(case / "two.nii.gz").shape_kji == (24, 40, 40)
    (case / "short.nii.gz").write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:-1000]))
    with pytest.raises(InputError, match="truncated"):
        read_volume(case / "short.nii.gz")


def test_sheared_direction_is_refused(case, capsys):
    write_ct(case / "sheared.mha", direction=SHEARED)
    with pytest.raises(InputError, match="not orthogonal"):
        read_volume(case / "sheared.mha")
    assert_refused(["track", "sheared.mha", "fu.nii.gz", "--lesions", "les.json", "--out", "r.json"],
                   case, names="sheared.mha", problem="not orthogonal", capsys=capsys)


def test_multi_component_error_names_the_input(case, capsys):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.zeros((8, 8, 8, 3), np.uint8), isVector=True)
    sitk.WriteImage(image, str(case / "rgb.nrrd"))
    assert_refused(["track", "bl.nii.gz", "rgb.nrrd", "--lesions", "les.json", "--out", "r.json"],
                   case, names="rgb.nrrd", problem="multi-component", capsys=capsys)


def test_nan_voxels_are_reported_not_called_constant(case, capsys):
    write_ct(case / "nan.nrrd", dtype=np.float32)
    import SimpleITK as sitk

    image = sitk.ReadImage(str(case / "nan.nrrd"))
    array = sitk.GetArrayFromImage(image)
    array[:] = np.nan
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(case / "nan.nrrd"))
    line = assert_refused(["track", "nan.nrrd", "fu.nii.gz", "--lesions", "les.json", "--out", "r.json",
                           "--method", "affine"], case, names="nan.nrrd", problem="NaN or infinite", capsys=capsys)
    assert "constant" not in line


def test_short_mha_gives_the_informative_itk_line(case, capsys):
    _cut(write_ct(case / "short.mha"))
    line = assert_refused(["track", "short.mha", "fu.nii.gz", "--lesions", "les.json", "--out", "r.json"],
                          case, names="short.mha", problem="cannot read image", capsys=capsys)
    assert "No such file" not in line
