"""Score lesion-tracking predictions on the DLS benchmark as DLT's evaluation.py does.

PREDICTIONS.json is a DLS-shaped file whose records carry a prediction field (default "predict target center":
[x, y, z] voxels of the target scan). Ground truth comes from the same records when they hold it (DLTMix.json
and test.json do), or from --ground-truth (matched by key, or by source, target and source centre for files
without keys such as DLTMix.json). Primary metrics follow DLT (Cai et al., CVPR 2021): CPM@10mm (error ≤ min(r,
10 mm)), CPM@Radius (error < r), MED ± std and per-axis MED in mm, with r = max target RECIST diameter / 2 ×
x-spacing. A secondary section gives the official TLT code's definitions, which are far more lenient; do not
compare the two. --compare adds a second prediction file and a paired t-test on the per-pair errors.

  tlt-tracker evaluate DLTMix.json
  tlt-tracker evaluate test.json --field "predict target center" --json
  tlt-tracker evaluate mine.json --ground-truth test.json --compare DLTMix.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

NAME = "evaluate"
HELP = "score DLS-format predictions (CPM@10mm, CPM@Radius, MED) as DLT does"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictions", help="DLS-format JSON with a prediction field per record")
    p.add_argument("--field", default="predict target center", help="prediction field (default: %(default)s)")
    p.add_argument("--ground-truth", metavar="DLS.json",
                   help="DLS annotation file with the true target centres (default: the predictions' own records)")
    p.add_argument("--compare", metavar="OTHER.json", help="second predictions file: paired t-test on the errors")
    p.add_argument("--compare-field", help="prediction field of --compare (default: --field)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (CPM as fractions) instead of a table")


def score(
    predictions_path: str, field: str, ground_truth: str | None = None
) -> tuple[dict[str, Any], list, np.ndarray]:
    """Score one prediction file.

    Returns (summary dict: DLT figures as fractions and mm plus ``secondary_tlt_code``, the matched
    ground-truth records ``list[DLSPair]``, per-pair errors ``(N,)`` mm).
    """
    from ..dls import load_dls, load_predictions, match_ground_truth
    from ..metrics import errors_mm, summarise, tlt_code_summary, tlt_lesion_size

    preds = load_predictions(predictions_path, field)
    extra: dict[str, Any] = {}
    if ground_truth:
        all_truth = load_dls(ground_truth)
        truth = match_ground_truth(preds, all_truth)
        seen: dict[int, str] = {}
        for p, t in zip(preds, truth):
            if id(t) in seen:
                raise InputError(
                    f"predictions {seen[id(t)]} and {p.key} are for the same ground-truth pair {t.key}"
                )
            seen[id(t)] = p.key
        extra["n_ground_truth"] = len(all_truth)
    else:
        lacking = [p.key for p in preds if p.pair is None]
        if lacking:
            raise InputError(
                f"{predictions_path}: record {lacking[0]} has no ground-truth fields; pass --ground-truth"
            )
        truth = [p.pair for p in preds]
    pred_xyz = np.stack([p.center_xyz for p in preds])
    err, axis_err = errors_mm(pred_xyz, np.stack([t.target_center_xyz for t in truth]),
                              np.stack([t.target_spacing_mm for t in truth]))
    summary = summarise(err, np.array([t.target_radius_mm for t in truth]), axis_err)
    # The TLT code measures errors in voxels of 1 mm crops, i.e. mm; its lesion_size stays in original voxels.
    summary["secondary_tlt_code"] = tlt_code_summary(err, tlt_lesion_size(np.stack([t.target_box for t in truth])))
    summary.update(extra, predictions=str(predictions_path), field=field, ground_truth=ground_truth)
    return summary, truth, err


def _paired(truth_a: list, err_a: np.ndarray, truth_b: list, err_b: np.ndarray, other: str) -> dict[str, Any]:
    """Paired t-test on the pairs both files scored (each A pair must appear in B)."""
    from ..dls import DLSPrediction, match_ground_truth
    from ..metrics import paired_t_test

    probes = [DLSPrediction(t.key, False, t.target_center_xyz, t.source, t.target, t.source_center_xyz)
              for t in truth_a]
    try:
        matched = match_ground_truth(probes, truth_b)
    except InputError as exc:
        raise InputError(f"--compare {other} does not score the same pairs: {exc}") from exc
    index_b = {id(t): i for i, t in enumerate(truth_b)}
    return paired_t_test(err_a, err_b[[index_b[id(t)] for t in matched]])


def _name(s: dict[str, Any]) -> str:
    return f"{Path(s['predictions']).name} ({s['field']})"


def _row(name: str, width: int, s: dict[str, Any]) -> str:
    return (f"  {name:<{width}} {s['n']:>5} {100 * s['cpm_10mm']:>9.2f} {100 * s['cpm_radius']:>11.2f} "
            f"{s['med_mm']:>7.2f} ± {s['med_std_mm']:<6.2f} {s['med_x_mm']:>6.2f} {s['med_y_mm']:>6.2f} "
            f"{s['med_z_mm']:>6.2f}")


def _print_table(summaries: list[dict[str, Any]]) -> None:
    first = summaries[0]
    truth = first["ground_truth"] or "each file's own records"
    print(f"DLS evaluation; ground truth: {truth}")
    for s in summaries:
        if "n_ground_truth" in s and s["n"] < s["n_ground_truth"]:
            print(f"  note: {Path(s['predictions']).name} predicts {s['n']} of {s['n_ground_truth']} "
                  "ground-truth pairs")
    width = max(len(_name(s)) for s in summaries)
    print("Primary: DLT evaluation.py definitions (CPM in %, errors in mm with target spacing)")
    print(f"  {'predictions (field)':<{width}} {'n':>5} {'CPM@10mm':>9} {'CPM@Radius':>11} {'MED ± std (mm)':>16} "
          f"{'MEDx':>6} {'MEDy':>6} {'MEDz':>6}")
    for s in summaries:
        print(_row(_name(s), width, s))
    print("Secondary: official TLT code test() definitions (threshold = target box diagonal in voxels, strict <;")
    print("           far more lenient, not comparable with the primary figures)")
    print(f"  {'predictions (field)':<{width}} {'n':>5} {'CPM@10mm':>9} {'CPM@R':>11}")
    for s in summaries:
        t = s["secondary_tlt_code"]
        print(f"  {_name(s):<{width}} {t['n']:>5} "
              f"{100 * t['cpm_10mm']:>9.2f} {100 * t['cpm_radius']:>11.2f}")
    if "paired_t_test" in first:
        p = first["paired_t_test"]
        t = "n/a" if p["t"] is None else f"{p['t']:.3f}"
        note = f" ({p['note']})" if p.get("note") else ""
        print(f"Paired t-test (scipy.stats.ttest_rel) on {p['n']} pairs: mean error difference "
              f"(first − second) {p['mean_difference_mm']:+.2f} mm, t = {t}, p = {p['p']:.3g}{note}")


def run(args: argparse.Namespace) -> int:
    summary, truth, err = score(args.predictions, args.field, args.ground_truth)
    summaries = [summary]
    if args.compare:
        other, truth_b, err_b = score(args.compare, args.compare_field or args.field, args.ground_truth)
        summary["paired_t_test"] = _paired(truth, err, truth_b, err_b, args.compare)
        summary["compare"] = other
        summaries.append(other)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summaries)
    return 0
