"""Track lesions from a baseline scan into a follow-up scan.

Lesions come from --lesions (LESIONS.json, a Slicer .mrk.json or a CSV with id,x,y,z[,radius_mm]) and/or repeated
--lesion X,Y,Z[,R]. Results go to --out as JSON (or CSV when the name ends in .csv), in the frame of the input
(LPS unless the lesion file says RAS). Example:

  tlt-tracker track baseline.nii.gz followup.nii.gz --lesions lesions.json --out results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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


def _progress_printer(as_json: bool):
    if as_json:

        def report(fraction: float, message: str) -> None:
            print(json.dumps({"progress": round(float(fraction), 4), "message": message}), flush=True)

        return report, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=100, desc="tracking", unit="%", file=sys.stderr, leave=False)

    def report(fraction: float, message: str) -> None:
        bar.n = int(round(100 * fraction))
        bar.set_postfix_str(message[:40])
        bar.refresh()

    return report, bar.close


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
) -> tuple[dict, list]:
    """Read both scans, register (or reuse ``registration``), track ``lesions`` (LPS) with ``tracker`` and
    write the results to ``out`` in ``frame`` (atomically, last); the registration to ``registration_out``
    (JSON) first when given. Shared by ``track`` and ``track-batch``. Returns (payload, TrackedLesion list)."""
    from ..io import atomic_write, read_volume
    from ..results import results_to_dict, write_results
    from ..tracker import check_inside

    report = report or (lambda fraction, message: None)
    t0 = time.perf_counter()
    report(0.0, "reading volumes")
    baseline = read_volume(baseline_path)
    followup = read_volume(followup_path)
    read_s = time.perf_counter() - t0
    check_inside(baseline, lesions)  # before spending seconds on registration
    tracker.timing_s.clear()
    report(0.05, "registering")
    registration = tracker.set_pair(
        baseline, followup, registration=registration, progress=lambda f, m: report(0.05 + 0.45 * f, m)
    )
    if registration_out:
        text = json.dumps(registration.to_dict(), indent=2)
        atomic_write(Path(registration_out), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    results = tracker.track(
        lesions, progress=lambda f, m: report(0.5 + 0.5 * f, m), with_heatmap=with_heatmap
    )
    timing = {"read": read_s, **tracker.timing_s, "total": time.perf_counter() - t0}
    payload = results_to_dict(results, registration, timing, frame)
    payload["inputs"] = {"baseline": str(baseline_path), "followup": str(followup_path)}
    write_results(payload, out)
    return payload, results


def run(args: argparse.Namespace) -> int:
    from ..registration import RegistrationResult
    from ..tracker import LesionTracker

    out = Path(args.out)
    for src in (args.baseline, args.followup, args.lesions):
        if src and Path(src).resolve() == out.resolve():
            raise InputError(f"--out {out} would overwrite an input; choose another file name")
    lesions, frame = _gather_lesions(args)
    report, close = _progress_printer(args.progress_json)
    try:
        tracker = LesionTracker(method=args.method, model=args.model, device=args.device)
        registration = None
        if args.registration_in:
            try:
                registration = RegistrationResult.from_dict(json.loads(Path(args.registration_in).read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError) as exc:
                raise InputError(f"cannot reuse registration {args.registration_in}: {exc}") from exc
        payload, results = track_to_file(
            tracker, args.baseline, args.followup, lesions, frame, out, registration=registration,
            registration_out=args.registration_out, report=report, with_heatmap=bool(args.heatmap_out),
        )
        if args.heatmap_out:
            from ..io import write_volume

            for r in results:
                if r.heatmap is not None:
                    write_volume(r.heatmap, Path(args.heatmap_out) / f"{r.id}_heatmap.nii.gz")
        report(1.0, "done")
    finally:
        close()
    if not args.progress_json:
        from ..results import format_table

        print(format_table(payload))
    return 0
