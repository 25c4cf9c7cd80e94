"""Volume IO: NIfTI/NRRD/MHA round trips keep geometry, DICOM series folders, clear errors, atomic writes."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import SimpleITK as sitk

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.io import read_volume, volume_from_sitk, volume_to_sitk, write_volume

from conftest import oblique_direction


def _volume(rng, dtype=np.int16, direction=None, shape=(6, 7, 8)):
    arr = rng.integers(-1000, 1000, size=shape).astype(dtype)
    direction = oblique_direction(15) if direction is None else direction
    return Volume(arr, [10.5, -20.25, 33.0], [0.7, 0.8, 2.5], direction)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("direction", ["oblique", "identity"])
def test_round_trip_keeps_array_and_geometry(tmp_path, rng, suffix, dtype, direction):
    volume = _volume(rng, dtype, oblique_direction(15) if direction == "oblique" else np.eye(3))
    path = write_volume(volume, tmp_path / f"v{suffix}")
    back = read_volume(path)
    assert back.array.dtype == volume.array.dtype
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.same_geometry(volume, atol=1e-4), (back, volume)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("suffix, data_file", [(".mhd", "v.zraw"), (".nhdr", "v.raw.gz")])
def test_detached_header_formats_leave_no_temporary_data_file(tmp_path, rng, suffix, data_file):
    """Two-file formats (.mhd + .zraw, .nhdr + .raw.gz): SimpleITK names the data file after the header it
    writes, so writing through a temporary header name would leave a hidden temp-named data file behind
    (and a header pointing at it). Both files must end up under the final name, nothing else left over.
    """
    volume = _volume(rng)
    path = write_volume(volume, tmp_path / f"v{suffix}")
    np.testing.assert_array_equal(read_volume(path).array, volume.array)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert not leftovers, f"write_volume({suffix}) left temporary-named data files {leftovers} (io.atomic_write)"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"v{suffix}", data_file])


def test_sitk_conversion_round_trip(rng):
    volume = _volume(rng)
    back = volume_from_sitk(volume_to_sitk(volume))
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.same_geometry(volume, atol=1e-12)


def _write_dicom_series(folder, volume, series_uid):
    """One CT slice per file with the tags GDCM needs to sort and place it (position, orientation, spacing)."""
    folder.mkdir(parents=True, exist_ok=True)
    image = volume_to_sitk(volume)
    d = volume.direction
    orientation = "\\".join(f"{v:.6f}" for v in (*d[:, 0], *d[:, 1]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.shape_kji[0]):
        sl = image[:, :, k]
        origin = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = [("0008|0060", "CT"), ("0020|000e", series_uid), ("0020|000d", "1.2.3"),
                ("0008|0018", f"{series_uid}.{k + 1}"), ("0020|0032", "\\".join(f"{v:.4f}" for v in origin)),
                ("0020|0013", str(k + 1)), ("0020|0037", orientation),
                ("0028|0030", f"{volume.spacing_mm[1]}\\{volume.spacing_mm[0]}"),
                ("0018|0050", str(volume.spacing_mm[2]))]
        for tag, value in tags:
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-3:]}_{k:03d}.dcm"))
        writer.Execute(sl)


@pytest.mark.parametrize("direction", [np.eye(3), oblique_direction(20)], ids=["axial", "oblique"])
def test_dicom_series_folder(tmp_path, rng, direction):
    vol = Volume(rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16), [1.0, 2.0, 3.0], [0.5, 0.6, 2.0],
                 direction)
    files = list(rng.permutation(5))  # slices written in shuffled file order must still come back sorted
    _write_dicom_series(tmp_path / "dcm", vol, "1.2.826.0.1.111")
    for n, k in enumerate(files):
        (tmp_path / "dcm" / f"111_{k:03d}.dcm").rename(tmp_path / "dcm" / f"x{n}.dcm")
    back = read_volume(tmp_path / "dcm")
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.spacing_mm, vol.spacing_mm, atol=1e-4)
    np.testing.assert_allclose(back.origin_lps_mm, vol.origin_lps_mm, atol=1e-3)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-5)


def test_folder_with_two_series_names_both(tmp_path, rng):
    vol = Volume(rng.integers(-1000, 1000, size=(3, 4, 4)).astype(np.int16))
    _write_dicom_series(tmp_path / "mixed", vol, "1.2.826.0.1.111")
    _write_dicom_series(tmp_path / "mixed", vol, "1.2.826.0.1.222")
    with pytest.raises(InputError, match=r"2 DICOM series.*1\.2\.826\.0\.1\.111.*1\.2\.826\.0\.1\.222") as info:
        read_volume(tmp_path / "mixed")
    assert "\n" not in str(info.value)


def _make_bad(tmp_path, kind):
    if kind == "missing":
        return tmp_path / "missing.nii.gz"
    if kind == "empty folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if kind == "corrupt":
        (tmp_path / "corrupt.nii.gz").write_bytes(b"this is not an image")
        return tmp_path / "corrupt.nii.gz"
    if kind == "2D":
        sitk.WriteImage(sitk.Image(5, 5, sitk.sitkInt16), str(tmp_path / "flat.nrrd"))
        return tmp_path / "flat.nrrd"
    if kind == "4D":
        sitk.WriteImage(sitk.Image([4, 4, 4, 2], sitk.sitkInt16), str(tmp_path / "t.nii.gz"))
        return tmp_path / "t.nii.gz"
    if kind == "vector":
        sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3), str(tmp_path / "vec.mha"))
        return tmp_path / "vec.mha"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "file not found"),
        ("empty folder", "no DICOM series"),
        ("corrupt", "cannot read image"),
        ("2D", "2D image"),
        ("4D", "4D image"),
        ("vector", "multi-component"),
    ],
)
def test_bad_inputs_raise_one_line_input_error(tmp_path, kind, message):
    with pytest.raises(InputError, match=message) as info:
        read_volume(_make_bad(tmp_path, kind))
    assert "\n" not in str(info.value)


def test_4d_with_one_time_point_reads_as_3d(tmp_path):
    image = sitk.Image([4, 5, 6, 1], sitk.sitkInt16)
    image.SetPixel([1, 2, 3, 0], 7)
    sitk.WriteImage(image, str(tmp_path / "t1.nii.gz"))
    vol = read_volume(tmp_path / "t1.nii.gz")
    assert vol.shape_kji == (6, 5, 4) and vol.array[3, 2, 1] == 7


def test_write_replaces_an_existing_target_only_on_success(tmp_path, rng, monkeypatch):
    volume = _volume(rng)
    target = tmp_path / "out.nii.gz"
    target.write_bytes(b"previous content")
    real_write = sitk.WriteImage

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", boom)
    with pytest.raises(RuntimeError):
        write_volume(volume, target)
    assert target.read_bytes() == b"previous content"  # untouched on failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]  # temporary file removed
    monkeypatch.setattr(sitk, "WriteImage", real_write)
    write_volume(volume, target)
    np.testing.assert_array_equal(read_volume(target).array, volume.array)  # replaced on success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz"]


def test_write_creates_folders_and_rejects_unknown_suffix(tmp_path, rng):
    volume = _volume(rng)
    with pytest.raises(InputError, match="unsupported output"):
        write_volume(volume, tmp_path / "out.png")
    path = write_volume(volume, tmp_path / "a" / "b" / "v.nrrd")
    assert path.is_file()


def test_written_files_get_normal_permissions(tmp_path, rng):
    """Atomic writes go through mkstemp (mode 0600); the result should get the usual 0666 & ~umask.

    KNOWN BUG (io.atomic_write): the temporary file's 0600 mode is kept, so volumes (and lesion/result JSON
    written through atomic_write) are unreadable by other users. Fix: chmod the temporary file to
    ``0o666 & ~umask`` before ``os.replace``.
    """
    umask = os.umask(0)
    os.umask(umask)
    path = write_volume(_volume(rng), tmp_path / "v.nii.gz")
    mode = stat.S_IMODE(path.stat().st_mode)
    expected = 0o666 & ~umask
    assert mode == expected, f"written file has mode {oct(mode)}, expected {oct(expected)} (io.atomic_write)"
