"""DeepLesion PNG slice folders -> volumes indexed exactly like the DLS annotations.

DeepLesion (Yan et al., NIH Clinical Center) ships CT slices as 16-bit PNGs (``Images_png/PPPPPP_SS_SS/NNN.png``,
value − 32768 = HU) and ``DL_info.csv`` (one row per lesion: ``Patient_index``, ``Study_index``, ``Series_ID``,
``Slice_range`` "a, b", ``Spacing_mm_px_`` "sx, sy, sz", ...). DeepLesion's own ``DL_save_nifti.py`` (re-implemented
here, not copied) takes every PNG of a series folder, splits the slice numbers into contiguous runs, and writes each
run as ``PPPPPP_SS_SS_aaa-bbb.nii.gz`` (first and last slice) with the spacing of the first DL_info row of that
series. DLS ``source``/``target`` names are those file names.

Orientation (method-notes §5.2): NIfTI voxel (i, j, k) = (PNG row, PNG column, slice); in ITK/LPS terms spacing
(sx, sy, sz) along (i, j, k), direction columns i -> +y (posterior), j -> +x (left), k -> −z, origin 0, so
``Volume.array`` is ``(slice, column, row)``. A DLS centre ``[x, y, z]`` (x = column, y = row, z = slice − first
slice) is ITK index (y, x, z) and array element ``array[z, x, y]``. Scans share no physical frame (origin always
0): registration must do the whole alignment.
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
HU_OFFSET = 32768
_SERIES_DIR = re.compile(r"^(\d+)_(\d+)_(\d+)$")
_SLICE_PNG = re.compile(r"^(\d+)\.png$", re.IGNORECASE)
_VOLUME_NAME = re.compile(r"^(\d{6}_\d{2}_\d{2})_(\d{3,})-(\d{3,})\.nii\.gz$")


# ----------------------------------------------------------------------------------- DLS centres <-> LPS
def _xyz_to_ijk(center_xyz: np.ndarray) -> np.ndarray:
    return np.asarray(center_xyz, dtype=float)[..., [1, 0, 2]]


def dls_center_to_lps(center_xyz: np.ndarray, volume_or_spacing: Volume | np.ndarray) -> np.ndarray:
    """DLS ``[x, y, z]`` voxels ``(..., 3)`` -> LPS mm ``(..., 3)``.

    Args:
        center_xyz: x = PNG column, y = PNG row, z = slice index in the sub-volume (continuous).
        volume_or_spacing: the sub-volume (its geometry is used: ITK index = (y, x, z)), or its DL_info spacing
            ``(sx, sy, sz)`` mm, which implies the DL_save_nifti geometry (origin 0, :data:`DL_DIRECTION`).
    """
    index_ijk = _xyz_to_ijk(center_xyz)
    if isinstance(volume_or_spacing, Volume):
        return volume_or_spacing.index_ijk_to_lps(index_ijk)
    spacing = np.asarray(volume_or_spacing, dtype=float)
    return (index_ijk * spacing) @ DL_DIRECTION.T


def lps_to_dls_center(point_lps_mm: np.ndarray, volume_or_spacing: Volume | np.ndarray) -> np.ndarray:
    """Inverse of :func:`dls_center_to_lps`: LPS mm ``(..., 3)`` -> DLS ``[x, y, z]`` voxels ``(..., 3)``."""
    if isinstance(volume_or_spacing, Volume):
        index_ijk = volume_or_spacing.lps_to_index_ijk(point_lps_mm)
    else:
        index_ijk = (np.asarray(point_lps_mm, dtype=float) @ DL_DIRECTION) / np.asarray(volume_or_spacing, float)
    return index_ijk[..., [1, 0, 2]]


# ----------------------------------------------------------------------------------- naming and planning
@dataclass(frozen=True)
class SubVolume:
    """One output volume: series folder ``PPPPPP_SS_SS``, first and last slice numbers, spacing (sx, sy, sz) mm."""

    series: str
    first: int
    last: int
    spacing_mm: tuple[float, float, float]

    @property
    def name(self) -> str:
        """``PPPPPP_SS_SS_aaa-bbb.nii.gz``, as DL_save_nifti names it and DLS refers to it."""
        return f"{self.series}_{self.first:03d}-{self.last:03d}.nii.gz"

    @property
    def slices(self) -> range:
        return range(self.first, self.last + 1)


def parse_volume_name(name: str) -> tuple[str, int, int]:
    """``"000016_01_01_002-014.nii.gz"`` -> ``("000016_01_01", 2, 14)``; InputError for other names."""
    match = _VOLUME_NAME.match(Path(name).name)
    if not match:
        raise InputError(f"{name!r} is not a DeepLesion sub-volume name PPPPPP_SS_SS_aaa-bbb.nii.gz")
    return match.group(1), int(match.group(2)), int(match.group(3))


@dataclass(frozen=True)
class SeriesInfo:
    """What DL_info.csv says about one series: spacing (sx, sy, sz) mm of its first row, and every slice range."""

    spacing_mm: tuple[float, float, float]
    slice_ranges: tuple[tuple[int, int], ...]


def _numbers(text: str, n: int, what: str, row: int) -> list[float]:
    try:
        values = [float(v) for v in str(text).replace('"', "").split(",")]
    except ValueError:
        values = []
    if len(values) != n or not all(np.isfinite(values)):
        raise InputError(f"DL_info.csv row {row}: {what} {text!r} should be {n} comma-separated numbers")
    return values


def read_dl_info(dl_info_csv: str | os.PathLike[str]) -> dict[str, SeriesInfo]:
    """DL_info.csv -> ``{"PPPPPP_SS_SS": SeriesInfo}`` (series from Patient_index, Study_index, Series_ID)."""
    path = Path(dl_info_csv)
    if not path.is_file():
        raise InputError(f"DL_info.csv not found: {path}; give DeepLesion's DL_info.csv")
    need = ("Patient_index", "Study_index", "Series_ID", "Slice_range", "Spacing_mm_px_")
    spacing: dict[str, tuple[float, float, float]] = {}
    ranges: dict[str, list[tuple[int, int]]] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = [c for c in need if c not in fields]
        if missing:
            raise InputError(f"{path} lacks columns {missing}; is it DeepLesion's DL_info.csv?")
        for n, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): v for k, v in raw.items()}
            try:
                ids = [int(str(row[c]).strip()) for c in need[:3]]
            except ValueError as exc:
                raise InputError(f"DL_info.csv row {n}: non-integer patient/study/series index") from exc
            series = f"{ids[0]:06d}_{ids[1]:02d}_{ids[2]:02d}"
            a, b = (int(v) for v in _numbers(row["Slice_range"], 2, "Slice_range", n))
            sx, sy, sz = _numbers(row["Spacing_mm_px_"], 3, "Spacing_mm_px_", n)
            if min(sx, sy, sz) <= 0:
                raise InputError(
                    f"DL_info.csv row {n}: Spacing_mm_px_ must be positive, got {row['Spacing_mm_px_']!r}"
                )
            first = spacing.setdefault(series, (sx, sy, sz))
            if not np.allclose(first, (sx, sy, sz)):
                logger.warning("DL_info.csv row %d: %s spacing %s differs from an earlier row's %s; "
                               "using the first", n, series, (sx, sy, sz), first)
            ranges.setdefault(series, []).append((a, b))
    return {s: SeriesInfo(spacing[s], tuple(sorted(set(ranges[s])))) for s in spacing}


def _runs(numbers: Iterable[int]) -> Iterator[list[int]]:
    """Sorted integers -> maximal runs of consecutive values."""
    run: list[int] = []
    for v in sorted(numbers):
        if run and v != run[-1] + 1:
            yield run
            run = []
        run.append(v)
    if run:
        yield run


def _series_slices(folder: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _SLICE_PNG.match(p.name)))


def plan_subvolumes(
    png_root: str | os.PathLike[str], dl_info: str | os.PathLike[str] | dict[str, SeriesInfo]
) -> list[SubVolume]:
    """The sub-volumes DL_save_nifti writes: every PNG of each series folder, split into contiguous runs.

    Folders without a DL_info row are skipped with a warning (DL_save_nifti would stop there). A DL_info
    ``Slice_range`` that is not fully present in its folder is logged: such a series is split differently
    from the published data, and DLS names will not match.
    """
    root = Path(png_root)
    if not root.is_dir():
        raise InputError(f"PNG folder not found: {root}; give DeepLesion's Images_png folder")
    info = dl_info if isinstance(dl_info, dict) else read_dl_info(dl_info)
    out: list[SubVolume] = []
    unknown = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _SERIES_DIR.match(p.name)):
        ids = [int(v) for v in _SERIES_DIR.match(folder.name).groups()]  # type: ignore[union-attr]
        series = f"{ids[0]:06d}_{ids[1]:02d}_{ids[2]:02d}"
        if series not in info:
            unknown.append(folder.name)
            continue
        slices = _series_slices(folder)
        present = set(slices)
        for a, b in info[series].slice_ranges:
            absent = [s for s in range(a, b + 1) if s not in present]
            if absent:
                logger.warning("%s: %d slices of DL_info Slice_range %d-%d are missing (e.g. %03d.png)",
                               folder.name, len(absent), a, b, absent[0])
        out += [SubVolume(folder.name, run[0], run[-1], info[series].spacing_mm) for run in _runs(slices)]
    if unknown:
        logger.warning("%d PNG folders have no DL_info.csv row and are skipped (e.g. %s)",
                       len(unknown), unknown[0])
    return sorted(out, key=lambda s: s.name)


# ----------------------------------------------------------------------------------- reading and writing
def volume_from_slices(slices: list[np.ndarray], spacing_mm: np.ndarray) -> Volume:
    """PNG slices (each ``(rows, cols)``, value − 32768 = HU) -> int16 HU Volume in the DL_save_nifti geometry.

    ``array`` is ``(slice, column, row)``; ``spacing_mm`` is DL_info's ``(sx, sy, sz)``.
    """
    stack = np.stack([np.asarray(s, dtype=np.int32) - HU_OFFSET for s in slices])  # (slice, row, col)
    array = np.ascontiguousarray(stack.transpose(0, 2, 1)).astype(np.int16)  # (slice, col, row) = (k, j, i)
    return Volume(array, np.zeros(3), np.asarray(spacing_mm, dtype=float), DL_DIRECTION)


def read_subvolume(png_root: str | os.PathLike[str], sub: SubVolume) -> Volume:
    """Read one sub-volume's 16-bit PNG slices (SimpleITK) into a Volume in the DL_save_nifti geometry."""
    import SimpleITK as sitk

    slices = []
    for s in sub.slices:
        path = Path(png_root) / sub.series / f"{s:03d}.png"
        try:
            img = sitk.ReadImage(str(path))
        except RuntimeError as exc:
            raise InputError(f"cannot read {path}: {str(exc).strip().splitlines()[-1]}") from exc
        grey16 = img.GetNumberOfComponentsPerPixel() == 1 and img.GetPixelID() == sitk.sitkUInt16
        if img.GetDimension() != 2 or not grey16:
            raise InputError(f"{path} is not a 16-bit grey-level PNG ({img.GetPixelIDTypeAsString()}); "
                             "give DeepLesion's original Images_png files")
        arr = sitk.GetArrayFromImage(img)
        if slices and arr.shape != slices[0].shape:
            raise InputError(f"{path} is {arr.shape[1]}x{arr.shape[0]} pixels, unlike the series' first slice")
        slices.append(arr)
    return volume_from_slices(slices, np.array(sub.spacing_mm))


@dataclass(frozen=True)
class ConversionResult:
    """One sub-volume handled by :func:`prepare_deeplesion`: ``status`` is "written" or "skipped" (existed)."""

    name: str
    path: Path
    status: str
    n_slices: int


def prepare_deeplesion(
    png_root: str | os.PathLike[str],
    dl_info_csv: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    only: Iterable[str] | None = None,
    progress: Callable[[int, int, ConversionResult], None] | None = None,
) -> list[ConversionResult]:
    """Convert DeepLesion PNG folders to ``.nii.gz`` volumes named and oriented like DL_save_nifti's.

    Args:
        png_root: DeepLesion's ``Images_png`` folder (series folders ``PPPPPP_SS_SS``).
        dl_info_csv: DeepLesion's ``DL_info.csv``.
        out_dir: output folder (created; must not lie inside ``png_root``).
        only: restrict to these volume names (e.g. every source/target of DLS files); names without PNGs are
            logged and left out.
        progress: called as ``progress(done, total, result)`` after each volume.

    Existing outputs are skipped (a run can be restarted); writes are atomic; inputs are only read.
    """
    from .io import write_volume

    root, out = Path(png_root).resolve(), Path(out_dir).resolve()
    if out == root or root in out.parents:
        raise InputError(f"output folder {out_dir} lies inside the PNG folder {png_root}; choose another folder")
    subs = plan_subvolumes(png_root, dl_info_csv)
    if only is not None:
        wanted = set(only)
        subs = [s for s in subs if s.name in wanted]
        missing = sorted(wanted - {s.name for s in subs})
        if missing:
            logger.warning("%d of %d requested volumes have no PNG slices under %s (e.g. %s)",
                           len(missing), len(wanted), png_root, missing[0])
    results = []
    for n, sub in enumerate(subs, start=1):
        target = out / sub.name
        status = "skipped"
        if not target.exists():
            write_volume(read_subvolume(root, sub), target)
            status = "written"
        result = ConversionResult(sub.name, target, status, len(sub.slices))
        logger.debug("%s %s", status, target)
        results.append(result)
        if progress:
            progress(n, len(subs), result)
    return results
