"""Track lesions from a baseline scan into a follow-up scan.

Lesions come from --lesions (LESIONS.json, a Slicer .mrk.json or a CSV with id,x,y,z[,radius_mm]) and/or repeated
--lesion X,Y,Z[,R]. Results go to --out as JSON (or CSV when the name ends in .csv), in the frame of the input
(LPS unless the lesion file says RAS). Example:

  tlt-tracker track baseline.nii.gz followup.nii.gz --lesions lesions.json --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError

NAME = "track"
HELP = "track lesions from a baseline CT into a follow-up CT"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..tracker import METHODS

    p.add_argument("baseline", help="baseline volume (NIfTI/NRRD/MHA file or DICOM folder)")
    p.add_argument("followup", help="follow-up volume (NIfTI/NRRD/MHA file or DICOM folder)")
    p.add_argument("--lesions", help="LESIONS.json, Slicer .mrk.json, or CSV (id,x,y,z[,radius_mm])")
    p.add_argument("--lesion", action="append", default=[], metavar="X,Y,Z[,R]", help="a lesion centre in mm (repeatable)")
    p.add_argument("--coordinate-system", default="LPS", choices=["LPS", "RAS"], help="frame of --lesion and CSV input")
    p.add_argument("--out", required=True, help="results file (.json, or .csv)")
    p.add_argument("--method", default="auto", choices=[*METHODS, "auto"], help="tracking method (default: auto)")
    p.add_argument("--model", help="model file or registry name (methods tlt/auto)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, default=0, help="lesions refined side by side (0: one per CPU core)")
    p.add_argument("--no-deformable", action="store_true",
                   help="start from the affine estimate only (refine and the TLT network), without the pair's "
                   "deformable registration (~1.4 s)")
    p.add_argument("--registration-in", help="reuse a registration saved by --registration-out")
    p.add_argument("--registration-out", help="save the registration (JSON) for reuse")
    p.add_argument("--heatmap-out", help="folder for per-lesion follow-up heatmaps (NIfTI), methods that make them")
    p.add_argument("--progress-json", action="store_true", help="print progress as JSON lines on stdout")


def _gather_lesions(args: argparse.Namespace) -> tuple[list, str]:
    from ..lesions import parse_lesion_arg, read_lesions

    lesions, frame = [], args.coordinate_system
    if args.lesions:
        lesions, frame = read_lesions(args.lesions, csv_frame=args.coordinate_system)
    taken = {les.id for les in lesions}
    for n, text in enumerate(args.lesion, start=1):
        les = parse_lesion_arg(text, len(lesions) + 1, args.coordinate_system)
        while les.id in taken:
            les = type(les)(f"{les.id}_{n}", les.center_lps_mm, les.radius_mm)
        taken.add(les.id)
        lesions.append(les)
    if not lesions:
        raise InputError("no lesions given; use --lesions FILE or --lesion X,Y,Z[,R]")
    return lesions, frame


def _progress_printer(as_json: bool, quiet: bool = False):
    """(report, close): JSON lines on stdout, a bar on stderr when it is a terminal, else nothing (-q)."""
    if as_json:

        def report(fraction: float, message: str) -> None:
            print(json.dumps({"progress": round(float(fraction), 4), "message": message}), flush=True)

        return report, lambda: None
    if quiet or not sys.stderr.isatty():
        return (lambda fraction, message: None), lambda: None
    from tqdm import tqdm

    bar = tqdm(total=100, desc="tracking", unit="%", file=sys.stderr, leave=False)

    def report(fraction: float, message: str) -> None:
        bar.n = int(round(100 * fraction))
        bar.set_postfix_str(message[:40])
        bar.refresh()

    return report, bar.close


def heatmap_path(folder: str | Path, lesion_id: str) -> Path:
    """Where ``--heatmap-out FOLDER`` puts the heatmap of one lesion."""
    return Path(folder) / f"{lesion_id}_heatmap.nii.gz"


def _check_paths(args: argparse.Namespace, lesions: list) -> None:
    """Refuse, before any work, an output that is an input, a duplicate, of the wrong kind or unwritable."""
    from ._outputs import Target, check_outputs

    if Path(args.out).suffix.lower() not in (".json", ".csv") and not args.out.endswith(("/", os.sep)):
        raise InputError(f"--out {args.out}: unknown file type {Path(args.out).suffix or '(none)'}; "
                         "name it .json or .csv")
    model = args.model if args.model and Path(args.model).exists() else None
    reads = {"the baseline": args.baseline, "the follow-up": args.followup, "the lesion file": args.lesions,
             "the --registration-in file": args.registration_in, "the model file": model}
    targets = [Target("--out", args.out)]
    if args.registration_out:
        targets.append(Target("--registration-out", args.registration_out))
    if args.heatmap_out:
        targets.append(Target("--heatmap-out", args.heatmap_out, "folder"))
        targets += [Target(f"--heatmap-out (lesion {les.id})", heatmap_path(args.heatmap_out, les.id))
                    for les in lesions]
    check_outputs(reads, targets)


def track_to_file(
    tracker: Any,
    baseline_path: str | Path,
    followup_path: str | Path,
    lesions: list,
    frame: str,
    out: Path,
    registration: Any = None,
    registration_out: Path | None = None,
    report: Callable[[float, str], None] | None = None,
    with_heatmap: bool = False,
    heatmap_dir: Path | None = None,
) -> tuple[dict, list]:
    """Read both scans, register (or reuse ``registration``), track ``lesions`` (LPS) with ``tracker`` and
    write the results to ``out`` in ``frame`` (atomically, last); the registration to ``registration_out``
    (JSON) first when given, then the heatmaps into ``heatmap_dir`` (:func:`heatmap_path`). Shared by
    ``track`` and ``track-batch``; the caller has checked every path (``_outputs.check_outputs``).
    Returns (payload, TrackedLesion list)."""
    from ..io import atomic_write, read_volume, write_volume
    from ..results import results_to_dict, write_results
    from ..validation import check_finite, check_inside, check_registration_pair

    report = report or (lambda fraction, message: None)
    t0 = time.perf_counter()
    report(0.0, "reading volumes")
    with ThreadPoolExecutor(max_workers=2) as pool:  # both files at once (SimpleITK releases the GIL)
        reads = [pool.submit(read_volume, path) for path in (baseline_path, followup_path)]
        baseline, followup = (r.result() for r in reads)  # the baseline's error first when both fail
    check_finite(baseline, f"baseline ({baseline_path})")
    check_finite(followup, f"follow-up ({followup_path})")
    read_s = time.perf_counter() - t0
    check_inside(baseline, lesions)  # before spending seconds on registration
    if registration is not None:
        check_registration_pair(registration.info, baseline, followup, registration.info.get("loaded_from", ""))
    tracker.timing_s.clear()
    report(0.05, "registering")
    registration = tracker.set_pair(
        baseline, followup, registration=registration, progress=lambda f, m: report(0.05 + 0.45 * f, m)
    )
    tracker.prepare(progress=lambda f, m: report(0.5, m))  # the pair field, while the model loads
    tracker.wait_for_model()  # a model that does not load fails before any output is written
    if registration_out:
        text = json.dumps(registration.to_dict(), indent=2)
        atomic_write(Path(registration_out), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    results = tracker.track(
        lesions, progress=lambda f, m: report(0.5 + 0.5 * f, m), with_heatmap=with_heatmap or bool(heatmap_dir)
    )
    if heatmap_dir:
        for r in results:
            if r.heatmap is not None:
                write_volume(r.heatmap, heatmap_path(heatmap_dir, r.id))
    timing = {"read": read_s, **tracker.timing_s, "total": time.perf_counter() - t0}
    payload = results_to_dict(results, registration, timing, frame)
    payload["inputs"] = {"baseline": str(baseline_path), "followup": str(followup_path)}
    write_results(payload, out)
    return payload, results


def _read_registration(path: str) -> "Any":
    """A registration saved by --registration-out; InputError naming the file when it is not one."""
    from ..registration import RegistrationResult

    p = Path(path)
    if not p.is_file():
        raise InputError(f"--registration-in {p}: file not found; check the path")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        registration = RegistrationResult.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot reuse registration {p}: {' '.join(str(exc).split())}") from exc
    registration.info["loaded_from"] = str(p)
    return registration


def run(args: argparse.Namespace) -> int:
    from ..tracker import LesionTracker

    out = Path(args.out)
    lesions, frame = _gather_lesions(args)
    _check_paths(args, lesions)
    tracker = LesionTracker(method=args.method, model=args.model, device=args.device, workers=args.workers,
                            deformable=not args.no_deformable)
    tracker.check_model()  # a missing model fails here; it loads in the background, beside the registration
    registration = None
    if args.registration_in:
        registration = _read_registration(args.registration_in)
    report, close = _progress_printer(args.progress_json, getattr(args, "quiet", False))
    try:
        payload, results = track_to_file(
            tracker, args.baseline, args.followup, lesions, frame, out, registration=registration,
            registration_out=args.registration_out, report=report,
            heatmap_dir=Path(args.heatmap_out) if args.heatmap_out else None,
        )
        report(1.0, "done")
    finally:
        close()
    if not args.progress_json:
        from ..results import format_table

        print(format_table(payload))
    return 0
