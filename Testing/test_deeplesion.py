"""DeepLesion PNG -> volume conversion: DL_save_nifti orientation and naming, DLS centre mapping, the CLI."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import SimpleITK as sitk

from TLTTrackerLib.cli import main
from TLTTrackerLib.deeplesion import (
    DL_DIRECTION,
    SubVolume,
    dls_center_to_lps,
    lps_to_dls_center,
    parse_volume_name,
    plan_subvolumes,
    prepare_deeplesion,
    read_dl_info,
    volume_from_slices,
)
from TLTTrackerLib.dls import load_dls
from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.io import read_volume

from conftest import shared_file
from test_dls import record

ROWS, COLS = 24, 32
SPACING = (0.8, 0.8, 5.0)
HEADER = ("File_name,Patient_index,Study_index,Series_ID,Key_slice_index,Measurement_coordinates,Bounding_boxes,"
          "Lesion_diameters_Pixel_,Normalized_lesion_location,Coarse_lesion_type,Possibly_noisy,Slice_range,"
          "Spacing_mm_px_,Image_size,DICOM_windows,Patient_gender,Patient_age,Train_Val_Test\n")
# (series, slice with the bright voxel, PNG column x, PNG row y) -> see the fixture
BRIGHT = [("000001_01_01", 12, 20, 5), ("000001_01_01", 18, 3, 17), ("000002_03_02", 101, 30, 1)]


def _row(series, key_slice, slice_range, spacing):
    p, s, n = (int(v) for v in series.split("_"))
    return (f'{series}_{key_slice:03d}.png,{p},{s},{n},{key_slice},"1, 2, 3, 4","1, 2, 3, 4","5, 3","0.5, 0.5, 0.5",'
            f'-1,0,"{slice_range[0]}, {slice_range[1]}","{", ".join(str(v) for v in spacing)}",'
            f'"{COLS}, {ROWS}","-1000, 400",M,50,3\n')


def _write_png(path, array_uint16):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array_uint16.astype(np.uint16)), str(path))


@pytest.fixture
def deeplesion(tmp_path):
    """Series 000001_01_01: slices 10-15 and 17-19 (16 missing -> two sub-volumes) from two overlapping lesion
    ranges; series 000002_03_02: slices 100-102; series 000009_01_01 has no DL_info row."""
    root = tmp_path / "Images_png"
    slices = {"000001_01_01": list(range(10, 16)) + [17, 18, 19], "000002_03_02": [100, 101, 102],
              "000009_01_01": [1, 2]}
    for series, numbers in slices.items():
        for s in numbers:
            img = np.full((ROWS, COLS), 32768 - 1000, np.uint16)  # -1000 HU
            img[0, 0] = 32768 + s  # slice marker: HU = slice number at row 0, column 0
            for b_series, b_slice, x, y in BRIGHT:
                if (b_series, b_slice) == (series, s):
                    img[y, x] = 32768 + 300  # PNG row y, column x
            _write_png(root / series / f"{s:03d}.png", img)
    (root / "000001_01_01" / "notes.txt").write_text("not a slice", encoding="utf-8")
    info = tmp_path / "DL_info.csv"
    info.write_text(HEADER + _row("000001_01_01", 12, (10, 15), SPACING) + _row("000001_01_01", 18, (13, 19), SPACING)
                    + _row("000002_03_02", 101, (100, 102), (0.6, 0.6, 2.5)), encoding="utf-8")
    return root, info, tmp_path


def test_dl_info_rows_group_by_series(deeplesion):
    _, info, _ = deeplesion
    series = read_dl_info(info)
    assert sorted(series) == ["000001_01_01", "000002_03_02"]
    assert series["000001_01_01"].spacing_mm == SPACING
    assert series["000001_01_01"].slice_ranges == ((10, 15), (13, 19))


def test_plan_splits_runs_and_names_like_dl_save_nifti(deeplesion, caplog):
    root, info, _ = deeplesion
    with caplog.at_level(logging.WARNING, logger="TLTTrackerLib.deeplesion"):
        subs = plan_subvolumes(root, info)
    assert [s.name for s in subs] == [
        "000001_01_01_010-015.nii.gz", "000001_01_01_017-019.nii.gz", "000002_03_02_100-102.nii.gz"]
    assert subs[2].spacing_mm == (0.6, 0.6, 2.5)
    assert "missing" in caplog.text and "016.png" in caplog.text  # Slice_range 13-19 lacks slice 16
    assert "no DL_info.csv row" in caplog.text and "000009_01_01" in caplog.text


@pytest.mark.parametrize("series, slice_number, x, y", BRIGHT)
def test_orientation_matches_dls_indexing(deeplesion, series, slice_number, x, y):
    root, info, tmp = deeplesion
    results = prepare_deeplesion(root, info, tmp / "nifti")
    subs = [SubVolume(*parse_volume_name(r.name), SPACING) for r in results]
    sub = next(s for s in subs if s.series == series and slice_number in s.slices)
    vol = read_volume(tmp / "nifti" / sub.name)
    z = slice_number - sub.first  # DLS z: slice index within the sub-volume
    assert vol.shape_kji == (len(sub.slices), COLS, ROWS)  # (slice, column, row)
    np.testing.assert_allclose(vol.origin_lps_mm, 0)
    np.testing.assert_allclose(vol.direction, DL_DIRECTION)
    assert vol.array[z, x, y] == 300 and vol.array[z, 0, 0] == slice_number
    assert np.count_nonzero(vol.array == 300) == 1
    point = dls_center_to_lps([x, y, z], vol)
    assert vol.index_kji_to_lps(np.argwhere(vol.array == 300)[0]) == pytest.approx(point)
    np.testing.assert_allclose(dls_center_to_lps([x, y, z], vol.spacing_mm), point, atol=1e-6)  # spacing-only form
    np.testing.assert_allclose(lps_to_dls_center(point, vol), [x, y, z], atol=1e-9)


def test_sitk_agrees_on_the_mapping(deeplesion):
    root, info, tmp = deeplesion
    prepare_deeplesion(root, info, tmp / "nifti")
    image = sitk.ReadImage(str(tmp / "nifti" / "000001_01_01_010-015.nii.gz"))
    x, y, z = 20, 5, 2
    assert image.GetPixel(y, x, z) == 300  # ITK index (y, x, z)
    np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((y, x, z)), dls_center_to_lps([x, y, z], SPACING),
                               atol=1e-4)


@pytest.mark.parametrize(
    "spacing, direction, origin",
    [(SPACING, DL_DIRECTION, np.zeros(3)), ((0.7, 0.7, 1.0), DL_DIRECTION, np.zeros(3)),
     ((0.5, 0.6, 2.0), -DL_DIRECTION, np.array([10.0, -20.0, 30.0]))],
)
def test_centre_mapping_round_trip(spacing, direction, origin, rng):
    vol = Volume(np.zeros((7, 9, 11), np.int16), origin, spacing, direction)
    xyz = rng.uniform(0, 8, size=(10, 3))
    lps = dls_center_to_lps(xyz, vol)
    np.testing.assert_allclose(lps_to_dls_center(lps, vol), xyz, atol=1e-9)
    np.testing.assert_allclose(vol.lps_to_index_kji(lps), xyz[:, [2, 0, 1]], atol=1e-9)  # arr[z, x, y]
    if np.allclose(direction, DL_DIRECTION) and not origin.any():
        np.testing.assert_allclose(dls_center_to_lps(xyz, np.array(spacing)), lps, atol=1e-9)
        np.testing.assert_allclose(lps_to_dls_center(lps, np.array(spacing)), xyz, atol=1e-9)


def test_rerun_skips_existing_and_only_filters(deeplesion, tmp_path, capsys):
    root, info, tmp = deeplesion
    out = tmp / "nifti2"
    dls = tmp_path / "dls.json"
    dls.write_text(json.dumps({"0001": record(source="000001_01_01_017-019.nii.gz",
                                              target="000005_01_01_001-003.nii.gz")}), encoding="utf-8")
    assert main(["prepare-deeplesion", str(root), str(info), str(out), "--only-dls", str(dls)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000001_01_01_017-019.nii.gz"]
    captured = capsys.readouterr()
    assert "1 volumes written" in captured.out and "1 of 2 volumes named in the DLS files" in captured.err
    first = (out / "000001_01_01_017-019.nii.gz").stat().st_mtime_ns
    seen = []
    results = prepare_deeplesion(root, info, out, progress=lambda n, total, r: seen.append((n, total, r.status)))
    assert [r.status for r in results] == ["written", "skipped", "written"]
    assert seen == [(1, 3, "written"), (2, 3, "skipped"), (3, 3, "written")]
    assert (out / "000001_01_01_017-019.nii.gz").stat().st_mtime_ns == first
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert sorted(p.name for p in (root / "000001_01_01").iterdir())[-1] == "notes.txt"  # inputs untouched


def test_bad_inputs_are_clear(tmp_path, deeplesion):
    root, info, _ = deeplesion
    with pytest.raises(InputError, match="PNG folder not found"):
        plan_subvolumes(tmp_path / "nope", info)
    with pytest.raises(InputError, match="DL_info.csv not found"):
        plan_subvolumes(root, tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="lacks columns"):
        plan_subvolumes(root, bad)
    bad.write_text(HEADER + _row("000001_01_01", 12, (10, 15), SPACING).replace('"0.8, 0.8, 5.0"', '"0.8, 0.8"'),
                   encoding="utf-8")
    with pytest.raises(InputError, match="Spacing_mm_px_"):
        read_dl_info(bad)
    with pytest.raises(InputError, match="inside the PNG folder"):
        prepare_deeplesion(root, info, root / "out")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((ROWS, COLS), np.uint8)), str(root / "000002_03_02" / "103.png"))
    with pytest.raises(InputError, match="16-bit"):
        prepare_deeplesion(root, info, tmp_path / "o8", only=["000002_03_02_100-103.nii.gz"])
    with pytest.raises(InputError, match="not a DeepLesion sub-volume name"):
        parse_volume_name("scan.nii.gz")


def test_volume_from_slices_shifts_intensity_and_transposes():
    rows = np.arange(12, dtype=np.uint16).reshape(3, 4) + 32768  # (row, column)
    vol = volume_from_slices([rows, rows + 100], np.array([0.7, 0.7, 2.5]))
    assert vol.array.dtype == np.int16 and vol.shape_kji == (2, 4, 3)  # (slice, column, row)
    assert vol.array[1, 3, 2] == rows[2, 3] - 32768 + 100


@pytest.mark.shared_data
@pytest.mark.parametrize("split", ["test.json", "valid.json"])
def test_dls_names_follow_the_dl_save_nifti_pattern(split):
    for pair in load_dls(shared_file(f"dls/{split}")):
        for name, center in ((pair.source, pair.source_center_xyz), (pair.target, pair.target_center_xyz)):
            series, first, last = parse_volume_name(name)
            assert SubVolume(series, first, last, (1.0, 1.0, 1.0)).name == name
            assert 0 <= center[2] <= last - first  # z indexes the sub-volume
