"""DeepLesion PNG -> volume conversion: DL_save_nifti orientation, naming, DLS centre mapping, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from TLTTrackerLib.cli import main
from TLTTrackerLib.deeplesion import dls_center_to_lps, lps_to_dls_center, plan_subvolumes, volume_from_slices
from TLTTrackerLib.errors import InputError
from TLTTrackerLib.io import read_volume

ROWS, COLS = 24, 32


def _write_png(path, array_uint16):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array_uint16.astype(np.uint16)), str(path))


@pytest.fixture
def deeplesion(tmp_path):
    root = tmp_path / "Images_png"
    for s in list(range(10, 16)) + [17, 18]:  # slice 16 missing: two contiguous runs
        img = np.full((ROWS, COLS), 32768 - 1000, np.uint16)  # -1000 HU
        if s == 12:
            img[5, 20] = 32768 + 300  # bright voxel at PNG row 5, column 20 of slice 12
        _write_png(root / "000001_01_01" / f"{s:03d}.png", img)
    info = tmp_path / "DL_info.csv"
    info.write_text(
        "File_name,Patient_index,Study_index,Series_ID,Key_slice_index,Measurement_coordinates,Bounding_boxes,"
        "Lesion_diameters_Pixel_,Normalized_lesion_location,Coarse_lesion_type,Possibly_noisy,Slice_range,"
        "Spacing_mm_px_,Image_size,DICOM_windows,Patient_gender,Patient_age,Train_Val_Test\n"
        '000001_01_01_012.png,1,1,1,12,"1,2,3,4","1,2,3,4","5,3","0.5,0.5,0.5",-1,0,"10, 18",'
        '"0.8, 0.8, 5",'
        '"32, 24","-1000, 400",M,50,3\n'
    )
    return root, info, tmp_path


def test_plan_splits_runs_and_names_like_dl_save_nifti(deeplesion):
    root, info, _ = deeplesion
    names = [s.name for s in plan_subvolumes(root, info)]
    assert names == ["000001_01_01_010-015.nii.gz", "000001_01_01_017-018.nii.gz"]


def test_orientation_matches_dls_indexing(deeplesion):
    root, info, tmp = deeplesion
    out = tmp / "nifti"
    assert main(["prepare-deeplesion", str(root), str(info), str(out)]) == 0
    vol = read_volume(out / "000001_01_01_010-015.nii.gz")
    assert vol.shape_kji == (6, COLS, ROWS)  # (slice, column, row)
    np.testing.assert_allclose(vol.origin_lps_mm, 0)
    np.testing.assert_allclose(vol.direction, [[0, 1, 0], [1, 0, 0], [0, 0, -1]])
    x, y, z = 20, 5, 12 - 10  # DLS centre of the bright voxel: column, row, slice - first
    assert vol.array[z, x, y] == 300
    assert vol.array.min() == -1000
    lps = dls_center_to_lps([x, y, z], [0.8, 0.8, 5.0])
    np.testing.assert_allclose(vol.lps_to_index_kji(lps), [z, x, y], atol=1e-9)
    np.testing.assert_allclose(lps_to_dls_center(lps, [0.8, 0.8, 5.0]), [x, y, z])


def test_rerun_skips_existing(deeplesion):
    root, info, tmp = deeplesion
    out = tmp / "nifti2"
    assert main(["prepare-deeplesion", str(root), str(info), str(out)]) == 0
    first = (out / "000001_01_01_017-018.nii.gz").stat().st_mtime_ns
    assert main(["prepare-deeplesion", str(root), str(info), str(out)]) == 0
    assert (out / "000001_01_01_017-018.nii.gz").stat().st_mtime_ns == first


def test_bad_inputs_are_clear(tmp_path, deeplesion):
    root, info, _ = deeplesion
    with pytest.raises(InputError, match="PNG folder not found"):
        plan_subvolumes(tmp_path / "nope", info)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="lacks columns"):
        plan_subvolumes(root, bad)


def test_volume_from_slices_shifts_intensity():
    vol = volume_from_slices([np.full((3, 4), 32768, np.uint16)] * 2, np.array([0.7, 0.7, 2.5]))
    assert vol.array.dtype == np.int16 and np.all(vol.array == 0) and vol.shape_kji == (2, 4, 3)
