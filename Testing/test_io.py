"""Volume IO: NIfTI/NRRD/MHA round trips keep geometry, DICOM series folders, clear errors, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.io import read_volume, write_volume

from conftest import oblique_direction


@pytest.fixture
def volume(rng):
    arr = rng.integers(-1000, 1000, size=(6, 7, 8)).astype(np.int16)
    return Volume(arr, [10.5, -20.25, 33.0], [0.7, 0.8, 2.5], oblique_direction(15))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_keeps_array_and_geometry(tmp_path, volume, suffix):
    path = write_volume(volume, tmp_path / f"v{suffix}")
    back = read_volume(path)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.same_geometry(volume, atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def _write_dicom_series(folder, volume, series_uid):
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(volume.array)
    image.SetSpacing(tuple(volume.spacing_mm))
    image.SetOrigin(tuple(volume.origin_lps_mm))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.shape_kji[0]):
        sl = image[:, :, k]
        origin = image.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in [("0008|0060", "CT"), ("0020|000e", series_uid), ("0020|000d", "1.2.3"),
                           ("0020|0032", "\\".join(f"{v:.4f}" for v in origin)), ("0020|0013", str(k + 1)),
                           ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0028|0030", f"{volume.spacing_mm[1]}\\{volume.spacing_mm[0]}"),
                           ("0018|0050", str(volume.spacing_mm[2]))]:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-3:]}_{k:03d}.dcm"))
        writer.Execute(sl)


def test_dicom_series_folder(tmp_path, rng):
    vol = Volume(rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16), [1.0, 2.0, 3.0], [0.5, 0.5, 2.0])
    _write_dicom_series(tmp_path / "dcm", vol, "1.2.826.0.1.111")
    back = read_volume(tmp_path / "dcm")
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.spacing_mm, vol.spacing_mm, atol=1e-4)
    np.testing.assert_allclose(back.origin_lps_mm, vol.origin_lps_mm, atol=1e-3)


def test_folder_with_two_series_names_both(tmp_path, rng):
    vol = Volume(rng.integers(-1000, 1000, size=(3, 4, 4)).astype(np.int16))
    _write_dicom_series(tmp_path / "mixed", vol, "1.2.826.0.1.111")
    _write_dicom_series(tmp_path / "mixed", vol, "1.2.826.0.1.222")
    with pytest.raises(InputError, match=r"2 DICOM series.*111.*222"):
        read_volume(tmp_path / "mixed")


def test_empty_folder_missing_file_corrupt_file_and_2d(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM series"):
        read_volume(tmp_path / "empty")
    with pytest.raises(InputError, match="file not found"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "corrupt.nii.gz").write_bytes(b"this is not an image")
    with pytest.raises(InputError, match="cannot read image"):
        read_volume(tmp_path / "corrupt.nii.gz")
    sitk.WriteImage(sitk.Image(5, 5, sitk.sitkInt16), str(tmp_path / "flat.nrrd"))
    with pytest.raises(InputError, match="2D image"):
        read_volume(tmp_path / "flat.nrrd")


def test_write_is_atomic_and_rejects_unknown_suffix(tmp_path, volume, monkeypatch):
    target = tmp_path / "out.nii.gz"
    target.write_bytes(b"previous content")
    with pytest.raises(InputError, match="unsupported output"):
        write_volume(volume, tmp_path / "out.png")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", boom)
    with pytest.raises(RuntimeError):
        write_volume(volume, target)
    assert target.read_bytes() == b"previous content"  # untouched on failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]
