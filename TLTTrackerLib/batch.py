"""Cohort runs: the PAIRS.csv input, per-rank sharding and the summary.csv output of ``tlt-tracker track-batch``.

PAIRS.csv (UTF-8, header row required; extra columns are ignored)::

    pair_id,baseline,followup,lesions[,coordinate_system]
    case001,scans/case001_t0.nii.gz,scans/case001_t1.nii.gz,lesions/case001.json,LPS

``baseline``/``followup`` are volumes as ``read_volume`` accepts them (NIfTI/NRRD/MHA file or DICOM folder),
``lesions`` a lesion file as ``read_lesions`` accepts it (LESIONS.json, ``.mrk.json`` or CSV); relative paths
are resolved against the folder of PAIRS.csv. ``coordinate_system`` (LPS by default, or RAS) is the frame of a
CSV lesion file; JSON lesion files name their own frame. ``pair_id`` names the pair's output folder.

summary.csv: one row per lesion with the columns of :data:`SUMMARY_COLUMNS`; centres are mm in the frame of
that pair's results (``coordinate_system`` column: the frame its lesions were given in, LPS unless RAS).

Nothing here imports torch.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from .errors import InputError
from .lesions import FRAMES

REQUIRED_COLUMNS = ("pair_id", "baseline", "followup", "lesions")
SUMMARY_NAME = "summary.csv"
SUMMARY_COLUMNS = (
    "pair_id", "lesion_id", "coordinate_system", "baseline_x", "baseline_y", "baseline_z",
    "followup_x", "followup_y", "followup_z", "confidence", "method", "flags",
)
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Pair:
    """One row of PAIRS.csv with its paths resolved.

    Attributes:
        pair_id: name of the output folder (letters, digits, ``.``, ``_``, ``-``; starts with a letter or digit).
        baseline, followup: volume paths (file or DICOM folder).
        lesions: lesion file path (LESIONS.json, ``.mrk.json`` or CSV).
        coordinate_system: "LPS" or "RAS", the frame of a CSV lesion file.
    """

    pair_id: str
    baseline: Path
    followup: Path
    lesions: Path
    coordinate_system: str = "LPS"


def _check_pair_id(pair_id: str, row: int, source: Path) -> None:
    if not _SAFE_ID.fullmatch(pair_id) or pair_id.lower() == SUMMARY_NAME:
        raise InputError(
            f"{source}: row {row}: pair_id {pair_id!r} cannot be a folder name; use up to 128 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """Read PAIRS.csv (see module docstring) in file order. Raises InputError for a missing file, a missing
    column or value, an unknown coordinate_system, or a duplicate or unsafe pair_id. Does not check that the
    listed scans exist: that is reported per pair."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"pairs file not found: {source}; check the path")
    root = source.resolve().parent
    with source.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in fields]
        if missing:
            raise InputError(
                f"{source}: missing column(s) {', '.join(missing)}; the header must be "
                f"{','.join(REQUIRED_COLUMNS)}[,coordinate_system]"
            )
        pairs: list[Pair] = []
        seen: dict[str, str] = {}
        for n, raw in enumerate(reader, start=2):  # row 1 is the header
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            if not any(row.values()):
                continue  # blank line
            empty = [c for c in REQUIRED_COLUMNS if not row.get(c)]
            if empty:
                raise InputError(f"{source}: row {n}: empty {', '.join(empty)}")
            pair_id = row["pair_id"]
            _check_pair_id(pair_id, n, source)
            if pair_id.lower() in seen:  # case-insensitive: folders collide on macOS/Windows
                raise InputError(f"{source}: row {n}: duplicate pair_id {pair_id!r} (also {seen[pair_id.lower()]!r})")
            seen[pair_id.lower()] = pair_id
            frame = (row.get("coordinate_system") or "LPS").upper()
            if frame not in FRAMES:
                raise InputError(f"{source}: row {n}: unknown coordinate_system {frame!r}; use LPS or RAS")
            pairs.append(Pair(pair_id, root / row["baseline"], root / row["followup"], root / row["lesions"], frame))
    if not pairs:
        raise InputError(f"{source}: no pairs; add one row per scan pair below the header")
    return pairs


def dist_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK) as set by ``torchrun``; (0, 1, 0) when not started by it."""
    env = os.environ if environ is None else environ
    try:
        rank, world, local = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
    except ValueError as exc:
        raise InputError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from exc
    if world < 1 or not 0 <= rank < world or local < 0:
        raise InputError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
    return rank, world, local


def shard(pairs: Sequence[Pair], rank: int, world_size: int) -> list[Pair]:
    """The pairs of one rank: those whose 0-based row index ``i`` has ``i % world_size == rank``."""
    return [p for i, p in enumerate(pairs) if i % world_size == rank]


_RESULT_KEYS = ("id", "baseline_center", "followup_center", "confidence", "method")


def read_results_file(path: Path) -> dict:
    """A pair's results.json, checked to be complete; InputError naming the file when it is damaged
    (not JSON, truncated, or lesions without their fields)."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is damaged ({type(exc).__name__}: {exc}); delete it or rerun with --overwrite")
    lesions = payload.get("lesions") if isinstance(payload, dict) else None
    if not isinstance(lesions, list) or not lesions:
        raise InputError(f"{path} is damaged (no 'lesions' list); delete it or rerun with --overwrite")
    for n, les in enumerate(lesions, start=1):
        missing = [k for k in _RESULT_KEYS if not isinstance(les, dict) or k not in les]
        if missing:
            raise InputError(f"{path} is damaged (lesion #{n} lacks {', '.join(missing)}); delete it or rerun "
                             "with --overwrite")
    return payload


def summary_text(pairs: Sequence[Pair], out_dir: Path, results_name: str = "results.json") -> str:
    """summary.csv text from ``out_dir/<pair_id>/results.json`` of every pair (all must exist)."""
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for pair in pairs:
        payload = read_results_file(out_dir / pair.pair_id / results_name)
        frame = payload.get("coordinate_system", "LPS")
        for les in payload["lesions"]:
            confidence = "" if les["confidence"] is None else les["confidence"]  # null: no confidence measure
            writer.writerow([pair.pair_id, les["id"], frame, *les["baseline_center"], *les["followup_center"],
                             confidence, les["method"], ";".join(les.get("flags", []))])
    return buf.getvalue()
