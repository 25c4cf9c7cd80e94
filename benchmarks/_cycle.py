"""Truth-free cycle check on the real HCC-011 contrast phases: track acq1 -> acq2 -> acq3 -> acq1.

The three phases are one session (same frame, separate breath-holds, real contrast change and breathing), so
there is no correspondence truth, but a consistent tracker must come back to where it started: cycle error =
|final acq1 point − start point| (mm). Lesions: the scenario suite's abdomen targets on acq1 (organ points,
soft-tissue blobs, the HCC). A lesion whose point leaves a phase's volume is dropped and counted.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from TLTTrackerLib.lesions import Lesion
from TLTTrackerLib.scenarios import case_lesions
from TLTTrackerLib.tracker import LesionTracker

PHASES = ("hcc011_acq1", "hcc011_acq2", "hcc011_acq3", "hcc011_acq1")


def cycle_rows(methods: list[str], shared_dir=None) -> list[dict]:
    """One row per (method, lesion): ``cycle_error_mm`` (NaN when dropped), ``steps`` (per-step flags)."""
    from TLTTrackerLib.io import read_volume
    from TLTTrackerLib.scenarios import default_shared_dir

    ct = Path(shared_dir or default_shared_dir()) / "ct"
    volumes = {p: read_volume(ct / f"{p}.nii.gz") for p in set(PHASES)}
    _, lesions = case_lesions("hcc011_acq1", "abdomen", shared_dir)
    rows = []
    for method in methods:
        t0 = time.perf_counter()
        current = {les.id: les for les in lesions}
        flags: dict[str, list] = {les.id: [] for les in lesions}
        for a, b in zip(PHASES[:-1], PHASES[1:]):
            tracker = LesionTracker(method=method)
            tracker.set_pair(volumes[a], volumes[b])
            inside = [les for les in current.values() if volumes[a].contains_lps(les.center_lps_mm)]
            results = tracker.track(inside)
            current = {r.id: Lesion(r.id, r.followup_center_lps_mm, r.radius_mm) for r in results}
            for r in results:
                flags[r.id].append(list(r.flags))
        seconds = time.perf_counter() - t0
        for les in lesions:
            end = current.get(les.id)
            err = float(np.linalg.norm(end.center_lps_mm - les.center_lps_mm)) if end is not None and len(
                flags[les.id]) == 3 else float("nan")
            rows.append({"method": method, "id": les.id, "radius_mm": les.radius_mm, "cycle_error_mm": err,
                         "steps": flags[les.id], "seconds_cycle": seconds})
    return rows


def cycle_table(rows: list[dict], methods: list[str]) -> str:
    lines = ["| method | lesions | cycle error median (mm) | mean | max | ≤ 2 mm | dropped | s/cycle (3 pairs) |",
             "|---|---|---|---|---|---|---|---|"]
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        e = np.array([r["cycle_error_mm"] for r in sel])
        ok = e[np.isfinite(e)]
        if not sel:
            continue
        lines.append(f"| {m} | {len(sel)} | {np.median(ok):.2f} | {ok.mean():.2f} | {ok.max():.2f} | "
                     f"{np.mean(ok <= 2.0):.2f} | {int((~np.isfinite(e)).sum())} | {sel[0]['seconds_cycle']:.1f} |")
    per = ", ".join(f"{r['id']} {r['cycle_error_mm']:.1f}" for r in rows if r["method"] == methods[-1])
    return "\n".join(lines) + f"\n\nper lesion ({methods[-1]}, mm): {per}"
