"""Strict checks of what the library is given: image files, Volumes, lesion lists, registrations.

Every check raises :class:`~TLTTrackerLib.errors.InputError` with one line that names the input and the fix,
so the Python API refuses exactly what the CLI refuses:

- :func:`check_nifti_complete`: a ``.nii`` / ``.nii.gz`` file shorter than its header says (SimpleITK would
  read the missing voxels as zeros without a word);
- :func:`as_volume`: a :class:`~TLTTrackerLib.geometry.Volume` (not a path, array or image object) whose
  voxels are all finite;
- :func:`as_lesions`: a non-empty list of :class:`~TLTTrackerLib.lesions.Lesion` with unique ids (any
  iterable is materialised once, so a generator is not silently used up);
- :func:`check_inside`: every lesion centre lies inside the baseline;
- :func:`pair_fingerprint` / :func:`check_registration_pair`: recognise the scan pair a saved registration
  was computed for.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import InputError
from .geometry import Volume

logger = logging.getLogger(__name__)

FINGERPRINT_SAMPLES = 1 << 16  # voxels hashed per volume (a strided sample: microseconds, not a full read)
_GEOMETRY_ATOL = 1e-3  # mm / direction units when comparing a stored fingerprint


# ---------------------------------------------------------------------------------------------- NIfTI files
def _nifti_expected_bytes(header: bytes) -> int | None:
    """Bytes a NIfTI-1/2 file needs (``vox_offset`` + voxel data) from its header; None when not NIfTI."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:  # NIfTI-1
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:  # NIfTI-2
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = int(struct.unpack(endian + "q", header[168:176])[0])
            break
    else:
        return None
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    nvox = int(np.prod([max(1, int(d)) for d in dims[1 : ndim + 1]], dtype=np.int64))
    return max(offset, 348) + nvox * bitpix // 8


def _gzip_stream_size(path: Path) -> int:
    """Decompressed size of a gzip file, verifying every member's CRC (slow path; raises InputError)."""
    size = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                size += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"image file {path} is truncated or corrupt ({exc}); copy or export it again") from exc
    return size


def check_nifti_complete(path: str | os.PathLike[str]) -> None:
    """Refuse a ``.nii`` or ``.nii.gz`` file that holds fewer voxel bytes than its header promises.

    ``.nii``: file size against ``vox_offset + nvox * bitpix / 8``. ``.nii.gz``: the gzip trailer's ISIZE
    (decompressed size mod 2^32, 4 bytes read from the end) against that figure; only on a mismatch (a
    truncated file, or a multi-member gzip) is the whole file decompressed with CRC checks to decide. Other
    formats are not touched (SimpleITK already refuses short NRRD/MHA files).
    """
    p = Path(path)
    name = p.name.lower()
    if not name.endswith((".nii", ".nii.gz")) or not p.is_file():
        return
    gz = name.endswith(".gz")
    try:
        with (gzip.open(p, "rb") if gz else p.open("rb")) as fh:
            header = fh.read(540)
    except (EOFError, OSError, zlib.error):
        return  # not even a readable header: SimpleITK refuses it with its own message
    expected = _nifti_expected_bytes(header)
    if expected is None:
        return  # not a NIfTI header: SimpleITK gives its own error
    if not gz:
        actual = p.stat().st_size
    else:
        with p.open("rb") as fh:
            fh.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", fh.read(4))[0]
        if isize == expected % (1 << 32):
            return
        actual = _gzip_stream_size(p)
    if actual < expected:
        raise InputError(
            f"image file {p} is truncated: it holds {actual} of the {expected} bytes its header needs; "
            "copy or export it again"
        )


# ---------------------------------------------------------------------------------------------- API inputs
def as_volume(value: Any, name: str) -> Volume:
    """``value`` if it is a Volume with finite voxels; InputError naming ``name`` otherwise."""
    if not isinstance(value, Volume):
        hint = "; read it first with TLTTrackerLib.read_volume(path)" if isinstance(value, (str, os.PathLike)) else ""
        raise InputError(f"the {name} must be a TLTTrackerLib Volume, got {type(value).__name__}{hint}")
    check_finite(value, name)
    return value


def check_finite(volume: Volume, name: str) -> None:
    """InputError when ``volume`` holds NaN or infinite voxels (integer arrays are skipped: always finite)."""
    a = volume.array
    if not np.issubdtype(a.dtype, np.floating) or np.isfinite(np.sum(a, dtype=np.float64)):
        return  # a float64 sum is finite iff every voxel is (CT values cannot overflow it): one fast pass
    bad = int(a.size - np.count_nonzero(np.isfinite(a)))
    if bad:
        raise InputError(
            f"the {name} volume holds {bad} NaN or infinite voxels of {a.size}; "
            "replace them (e.g. by the air value -1000 HU) before tracking"
        )


def as_lesions(lesions: Any) -> list:
    """A list of Lesion from any iterable of Lesion; InputError for a single Lesion, other items, no lesions
    or duplicate ids."""
    from .lesions import Lesion

    if isinstance(lesions, Lesion):
        raise InputError("lesions must be a list of Lesion, got a single Lesion; pass [lesion]")
    if isinstance(lesions, (str, bytes, dict)) or not isinstance(lesions, Iterable):
        raise InputError(f"lesions must be a list of Lesion, got {type(lesions).__name__}")
    out = list(lesions)
    for n, les in enumerate(out, start=1):
        if not isinstance(les, Lesion):
            raise InputError(f"lesion #{n} is a {type(les).__name__}, not a Lesion; build it with Lesion(id, "
                             "center_lps_mm, radius_mm)")
    if not out:
        raise InputError("no lesions given; pass at least one Lesion")
    ids = [les.id for les in out]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"duplicate lesion ids {dupes}; give each lesion its own id")
    return out


def check_inside(baseline: Volume, lesions: Iterable[Any]) -> None:
    """InputError naming the first lesion whose centre lies outside ``baseline`` (check before registering)."""
    for les in lesions:
        if not baseline.contains_lps(les.center_lps_mm):
            raise InputError(
                f"lesion {les.id} at LPS {np.round(les.center_lps_mm, 1).tolist()} mm lies outside the "
                "baseline volume; place it on the baseline scan"
            )


# ---------------------------------------------------------------------------------------------- pair identity
def volume_fingerprint(volume: Volume) -> dict[str, Any]:
    """Geometry plus a BLAKE2 hash of ``FINGERPRINT_SAMPLES`` evenly strided voxels: JSON-friendly."""
    flat = volume.array.reshape(-1)
    step = max(1, flat.size // FINGERPRINT_SAMPLES)
    sample = np.ascontiguousarray(flat[::step], dtype=np.float64)
    return {
        "shape_kji": list(volume.shape_kji),
        "spacing_mm": np.round(volume.spacing_mm, 6).tolist(),
        "origin_lps_mm": np.round(volume.origin_lps_mm, 6).tolist(),
        "direction": np.round(volume.direction.reshape(-1), 6).tolist(),
        "content_blake2b": hashlib.blake2b(sample.tobytes(), digest_size=16).hexdigest(),
    }


def pair_fingerprint(baseline: Volume, followup: Volume) -> dict[str, Any]:
    """``{"baseline": ..., "followup": ...}`` of :func:`volume_fingerprint`."""
    return {"baseline": volume_fingerprint(baseline), "followup": volume_fingerprint(followup)}


def _differs(stored: dict[str, Any], now: dict[str, Any]) -> str | None:
    if list(stored.get("shape_kji", [])) != now["shape_kji"]:
        return f"size {stored.get('shape_kji')} vs {now['shape_kji']} (z, y, x)"
    for key in ("spacing_mm", "origin_lps_mm", "direction"):
        a, b = np.asarray(stored.get(key, []), float), np.asarray(now[key], float)
        if a.shape != b.shape or not np.allclose(a, b, atol=_GEOMETRY_ATOL):
            return f"{key} {np.round(a, 3).tolist()} vs {np.round(b, 3).tolist()}"
    if stored.get("content_blake2b") != now["content_blake2b"]:
        return "same geometry but other voxel values"
    return None


def check_registration_pair(info: dict[str, Any], baseline: Volume, followup: Volume, source: str = "") -> None:
    """InputError when a saved registration's ``info["pair"]`` fingerprint is not of this pair; a warning
    when it has none (a file from before fingerprints: cannot be checked)."""
    stored = info.get("pair")
    where = f"registration {source}" if source else "the saved registration"
    if not isinstance(stored, dict):
        logger.warning("%s records no scan-pair fingerprint: cannot check it belongs to these scans", where)
        return
    now = pair_fingerprint(baseline, followup)
    for role in ("baseline", "followup"):
        why = _differs(stored.get(role) or {}, now[role])
        if why:
            raise InputError(
                f"{where} was computed for another scan pair ({role}: {why}); "
                "register this pair again (drop --registration-in)"
            )
