"""Read and write CT volumes (NIfTI, NRRD, MHA/MHD, DICOM series folders) as :class:`~TLTTrackerLib.geometry.Volume`.

SimpleITK does the file work, so geometry is ITK's: origin/spacing/direction in LPS, ``GetArrayFromImage``
gives ``(z, y, x)``. Writing is atomic (a temporary file in the target folder, then ``os.replace``), and
never overwrites the input it was read from unless asked.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import InputError
from .geometry import Volume

logger = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def _sitk():  # imported lazily: keeps `import TLTTrackerLib` light
    import SimpleITK as sitk

    return sitk


def volume_from_sitk(image: "object", source: str = "") -> Volume:
    """SimpleITK image (3D, scalar, orthonormal direction) -> Volume; array is a copy in ``(z, y, x)`` order.
    ``source`` (a file name) is named in errors."""
    sitk = _sitk()
    what = f"{source}: " if source else ""
    if image.GetDimension() != 3:
        raise InputError(f"{what}expected a 3D image, got a {image.GetDimension()}D image; give one 3D CT volume")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{what}expected a scalar (grey-level) CT image, got a multi-component image "
                         f"({image.GetNumberOfComponentsPerPixel()} components per voxel); give a CT volume")
    direction = np.array(image.GetDirection()).reshape(3, 3)
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(f"{what}the voxel axes are not orthogonal (sheared direction cosines "
                         f"{np.round(direction, 4).tolist()}); resample the image onto an orthogonal grid first")
    array = sitk.GetArrayFromImage(image)
    return Volume(
        array=array,
        origin_lps_mm=np.array(image.GetOrigin()),
        spacing_mm=np.array(image.GetSpacing()),
        direction=direction,
    )


def volume_to_sitk(volume: Volume) -> "object":
    """Volume -> SimpleITK image with the same geometry (array is copied)."""
    sitk = _sitk()
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    image.SetOrigin(tuple(float(v) for v in volume.origin_lps_mm))
    image.SetSpacing(tuple(float(v) for v in volume.spacing_mm))
    image.SetDirection(tuple(float(v) for v in volume.direction.reshape(-1)))
    return image


def _dicom_series(folder: Path) -> list[str]:
    sitk = _sitk()
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    if not series_ids:
        raise InputError(f"no DICOM series found in folder {folder}; give a folder of DICOM slices or a volume file")
    if len(series_ids) > 1:
        listing = ", ".join(
            f"{sid} ({len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid))} files)" for sid in series_ids
        )
        raise InputError(
            f"folder {folder} holds {len(series_ids)} DICOM series: {listing}; put one series per folder"
        )
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0]))


def _itk_reason(message: str) -> str:
    """The informative line of an ITK exception text (not its "Reason: No such file" tail), one line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Reason:", "itk::ERROR", "Description:"))]
    picked = next((line for line in useful if "data not read" in line or "expected" in line), None)
    return (picked or (useful or lines or [""])[-1])[:200]


def read_volume(path: str | os.PathLike[str]) -> Volume:
    """Read a 3D CT volume from a file (NIfTI, NRRD, MHA, ...) or a DICOM series folder.

    Raises:
        InputError: the path is missing, unreadable, not 3D, or a folder with no or several DICOM series.
    """
    from .validation import check_nifti_complete

    sitk = _sitk()
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}; check the path")
    check_nifti_complete(p)  # SimpleITK reads a short NIfTI file as zero-filled slices without a word
    try:
        if p.is_dir():
            files = _dicom_series(p)
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(p))
    except InputError:
        raise
    except RuntimeError as exc:
        first = _itk_reason(str(exc)) or type(exc).__name__
        raise InputError(f"cannot read image {p}: {first}; is it a NIfTI/NRRD/MHA file or a DICOM folder?") from exc
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    volume = volume_from_sitk(image, str(p)) if image.GetDimension() == 3 else None
    if volume is None:
        raise InputError(f"{p} is a {image.GetDimension()}D image (size {image.GetSize()}); give a 3D CT volume")
    logger.debug("read %s: %r", p, volume)
    return volume


def atomic_write(path: Path, write: "object", suffix: str = "") -> None:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or "".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))  # type: ignore[operator]
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_volume(volume: Volume, path: str | os.PathLike[str], compress: bool = True) -> Path:
    """Write a Volume atomically to a NIfTI/NRRD/MHA file (format from the suffix). Returns the path."""
    sitk = _sitk()
    p = Path(path)
    name = p.name.lower()
    if not name.endswith(VOLUME_SUFFIXES):
        raise InputError(f"unsupported output file type {p.name}; use one of {', '.join(VOLUME_SUFFIXES)}")
    image = volume_to_sitk(volume)
    if name.endswith((".mhd", ".nhdr")):
        # Detached header + data file: write both under their final names in a private folder beside the
        # target, then move them into place (the header refers to the data file by name).
        p.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
        try:
            sitk.WriteImage(image, str(staging / p.name), compress)
            for f in sorted(staging.iterdir(), key=lambda f: f.name == p.name):  # header last
                os.replace(f, p.parent / f.name)
        finally:
            for f in staging.iterdir():
                f.unlink()
            staging.rmdir()
        return p
    atomic_write(p, lambda tmp: sitk.WriteImage(image, str(tmp), compress))
    return p
