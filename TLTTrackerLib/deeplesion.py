"""DeepLesion PNG slice folders -> volumes indexed exactly like the DLS annotations.

DeepLesion (NIH Clinical Center) ships CT slices as 16-bit PNGs (``Images_png/PPPPPP_SS_SS/NNN.png``,
value − 32768 = HU) and ``DL_info.csv`` (one row per annotated lesion: ``File_name``, ``Slice_range``
"a, b", ``Spacing_mm_px_`` "sx, sy, sz", ...). DeepLesion's own ``DL_save_nifti.py`` stacks each row's
contiguous slices into ``PPPPPP_SS_SS_aaa-bbb.nii.gz``; DLS ``source``/``target`` names refer to those files.

Orientation, reproduced here (method-notes §5.2): NIfTI voxel (i, j, k) = (PNG row, PNG column, slice), so in
ITK/LPS terms: spacing (sx, sy, sz), direction columns i -> +y (posterior), j -> +x (left), k -> −z, origin 0;
``GetArrayFromImage`` order is (slice, column, row). A DLS centre ``[x, y, z]`` (x = column, y = row,
z = slice − first slice) is therefore ITK index (y, x, z) and array element ``array[z, x, y]``.
Different scans share no physical frame (origin always 0): registration must do the whole alignment.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import InputError
from .geometry import Volume

logger = logging.getLogger(__name__)

DL_DIRECTION = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # columns: i, j, k in LPS
_SERIES = re.compile(r"^(\d{6}_\d{2}_\d{2})_(\d{3,})\.png$")


def dls_center_to_lps(center_xyz: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """DLS ``[x, y, z]`` (voxels, ``(..., 3)``) -> LPS mm for a DeepLesion sub-volume with DL_info ``spacing_mm``
    ``(sx, sy, sz)``: ITK index (y, x, z) through the DL_save_nifti geometry."""
    c = np.asarray(center_xyz, dtype=float)
    s = np.asarray(spacing_mm, dtype=float)
    index_ijk = c[..., [1, 0, 2]]
    return (index_ijk * s) @ DL_DIRECTION.T


def lps_to_dls_center(point_lps_mm: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """Inverse of :func:`dls_center_to_lps`: LPS mm -> DLS ``[x, y, z]`` voxels."""
    p = np.asarray(point_lps_mm, dtype=float)
    index_ijk = (p @ DL_DIRECTION) / np.asarray(spacing_mm, dtype=float)
    return index_ijk[..., [1, 0, 2]]


def volume_from_slices(slices: list[np.ndarray], spacing_mm: np.ndarray) -> Volume:
    """PNG slices (each ``(rows, cols)`` uint16, value − 32768 = HU) -> Volume in the DL_save_nifti geometry."""
    stack = np.stack([np.asarray(s, dtype=np.int32) - 32768 for s in slices])  # (slice, row, col)
    array = np.ascontiguousarray(stack.transpose(0, 2, 1)).astype(np.int16)  # (slice, col, row) = (k, j, i)
    return Volume(array, np.zeros(3), np.asarray(spacing_mm, dtype=float), DL_DIRECTION)


@dataclass(frozen=True)
class SubVolume:
    """One output volume: series folder, first and last slice numbers, spacing (sx, sy, sz) mm."""

    series: str
    first: int
    last: int
    spacing_mm: tuple[float, float, float]

    @property
    def name(self) -> str:
        return f"{self.series}_{self.first:03d}-{self.last:03d}.nii.gz"


def _floats(text: str, n: int, what: str, row: int) -> list[float]:
    try:
        values = [float(v) for v in text.replace('"', "").split(",")]
    except ValueError:
        values = []
    if len(values) != n:
        raise InputError(f"DL_info.csv row {row}: {what} {text!r} should be {n} comma-separated numbers")
    return values


def plan_subvolumes(png_root: str | os.PathLike[str], dl_info_csv: str | os.PathLike[str]) -> list[SubVolume]:
    """The sub-volumes DL_save_nifti would write: for each DL_info row, the existing slices of its slice range,
    split into contiguous runs. Duplicates (several lesions on one series) appear once."""
    root, info = Path(png_root), Path(dl_info_csv)
    if not root.is_dir():
        raise InputError(f"PNG folder not found: {root}; give DeepLesion's Images_png folder")
    if not info.is_file():
        raise InputError(f"DL_info.csv not found: {info}")
    out: dict[str, SubVolume] = {}
    with info.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        need = {"File_name", "Slice_range", "Spacing_mm_px_"}
        if not need <= set(reader.fieldnames or []):
            raise InputError(f"{info} lacks columns {sorted(need - set(reader.fieldnames or []))}; is it DL_info.csv?")
        for n, row in enumerate(reader, start=2):
            match = _SERIES.match(row["File_name"].strip())
            if not match:
                raise InputError(f"DL_info.csv row {n}: unexpected File_name {row['File_name']!r}")
            series = match.group(1)
            a, b = (int(v) for v in _floats(row["Slice_range"], 2, "Slice_range", n))
            spacing = tuple(_floats(row["Spacing_mm_px_"], 3, "Spacing_mm_px_", n))
            present = [s for s in range(a, b + 1) if (root / series / f"{s:03d}.png").exists()]
            for run in _runs(present):
                sub = SubVolume(series, run[0], run[-1], spacing)  # type: ignore[arg-type]
                out.setdefault(sub.name, sub)
    return sorted(out.values(), key=lambda s: s.name)


def _runs(numbers: list[int]) -> Iterator[list[int]]:
    run: list[int] = []
    for v in numbers:
        if run and v != run[-1] + 1:
            yield run
            run = []
        run.append(v)
    if run:
        yield run


def read_subvolume(png_root: str | os.PathLike[str], sub: SubVolume) -> Volume:
    """Read one sub-volume's PNG slices into a Volume (DL_save_nifti geometry)."""
    import SimpleITK as sitk

    slices = []
    for s in range(sub.first, sub.last + 1):
        path = Path(png_root) / sub.series / f"{s:03d}.png"
        try:
            img = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise InputError(f"cannot read {path}: {str(exc).strip().splitlines()[-1]}") from exc
        arr = sitk.GetArrayFromImage(img)
        if arr.ndim != 2:
            raise InputError(f"{path} is not a single-channel 2D PNG (shape {arr.shape})")
        slices.append(arr)
    return volume_from_slices(slices, np.array(sub.spacing_mm))


def prepare_deeplesion(
    png_root: str | os.PathLike[str],
    dl_info_csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    only: Iterable[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Path]:
    """Convert DeepLesion PNG folders to NIfTI volumes named like DLS ``source``/``target`` files.

    Args:
        only: restrict to these volume names (e.g. every source/target of a DLS json).
        progress: called as ``progress(done, total, name)`` after each volume.

    Existing outputs are skipped (resumable); writes are atomic. Returns the written (or present) paths.
    """
    from .io import write_volume

    subs = plan_subvolumes(png_root, dl_info_csv)
    if only is not None:
        wanted = set(only)
        subs = [s for s in subs if s.name in wanted]
        missing = wanted - {s.name for s in subs}
        if missing:
            logger.warning("%d requested volumes have no PNG slices under %s (e.g. %s)", len(missing), png_root,
                           sorted(missing)[0])
    out = Path(out_dir)
    paths = []
    for n, sub in enumerate(subs, start=1):
        target = out / sub.name
        if not target.exists():
            write_volume(read_subvolume(png_root, sub), target)
        paths.append(target)
        if progress:
            progress(n, len(subs), sub.name)
    return paths
