"""Tracking accuracy on real CT with known synthetic motion: the scenario suite (issue 11).

Each scenario of ``TLTTrackerLib.scenarios`` (``standard``, ``large-motion``, ``extreme``, ``abdomen``,
``thick-slice``, ``fov-edge``) is a seeded setting of ``TLTTrackerLib.synthetic.make_pair`` on the real CTs of
``../shared/data/ct``: real images, synthetic motion, exact truth. Methods: the tracker's (``affine``,
``refine``, ``auto``, ...) on every pair, and optionally the peers of ``benchmarks/peers.py`` (elastix affine,
elastix affine + B-spline, ANTs SyN; benchmark-only extras: ``pip install -e .[bench]``) on the first pair of
the first ``--peer-pairs`` cases of each scenario (they take 25–100 s a pair); the table then repeats every
method on exactly those pairs ("peer pairs") for a like-for-like comparison.

Scored as DLT scores: error = distance to the exact follow-up centre (mm), CPM@10mm counts error ≤ min(r, 10),
CPM@Radius counts error < r (r = follow-up radius), MED = mean ± std. Columns: ``benchmarks/_scenario_tables.py``.
Seeds: ``--seeds report`` (100–109, default) or ``tuning`` (0–9) or a list/range (``0-4``, ``3,7``).

    python benchmarks/accuracy.py --all --methods affine,auto [--seeds report] [--peers elastix,ants]
        [--png docs/images/scenarios.png] [--json rows.json] [--markdown table.md] [--cycle] [--lesions-only]
    python benchmarks/accuracy.py --scenario standard --scenario fov-edge --seeds 0-3
    python benchmarks/accuracy.py --pairs 20 --methods affine,refine,auto   (section 3 of docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = Path(os.environ.get("TLT_SHARED_DATA", ROOT.parent / "shared" / "data"))

import _scenario_tables as tables  # noqa: E402
from _calibrate_motion import parse_seeds  # noqa: E402

from TLTTrackerLib import scenarios  # noqa: E402
from TLTTrackerLib.tracker import LesionTracker  # noqa: E402

PEER_GROUPS = {"elastix": ("elastix-affine", "elastix-bspline"), "ants": ("ants-syn",)}


def scenarios_peers() -> set[str]:
    return {n for group in PEER_GROUPS.values() for n in group}


def seeds_from(text: str) -> list[int]:
    named = {"report": scenarios.REPORT_SEEDS, "tuning": scenarios.TUNING_SEEDS}
    return list(named[text]) if text in named else parse_seeds(text)


def peer_names(text: str) -> list[str]:
    out: list[str] = []
    for name in filter(None, text.split(",")):
        out.extend(PEER_GROUPS.get(name, (name,)))
    return out


def run_pair(sc: str, case: str, pair, methods: list[str], peers: list[str], peer_pair: bool, rows: list,
             model: str | None = None, deformable: bool = True) -> None:
    truth = {les.id: les for les in pair.followup_lesions}
    outside = set(pair.outside_followup_ids())
    seed = pair.info["seed"]
    tracker = LesionTracker(method="affine", model=model, deformable=deformable)
    t0 = time.perf_counter()
    tracker.set_pair(pair.baseline, pair.followup)
    reg_s = time.perf_counter() - t0
    start = {les.id: tracker.registration.baseline_to_followup.apply(les.center_lps_mm) for les in pair.baseline_lesions}

    def add(method, les_id, point, confidence, flags, seconds, extra=None):
        t = truth[les_id]
        err = np.asarray(point, float) - t.center_lps_mm
        rows.append({"scenario": sc, "case": case, "seed": seed, "method": method, "id": les_id,
                     "radius_mm": t.radius_mm, "error_mm": float(np.linalg.norm(err)), "error_xyz_mm": err.tolist(),
                     "point_lps_mm": np.asarray(point, float).tolist(), "truth_lps_mm": t.center_lps_mm.tolist(),
                     "start_error_mm": float(np.linalg.norm(start[les_id] - t.center_lps_mm)),
                     "confidence": float(confidence), "flags": list(flags), "outside_truth": les_id in outside,
                     "seconds_pair": seconds, "peer_pair": peer_pair, "extra": extra or {}})

    for method in methods:
        tracker.method = method
        t1 = time.perf_counter()
        results = tracker.track(pair.baseline_lesions)
        seconds = reg_s + time.perf_counter() - t1
        for r in results:
            add(method, r.id, r.followup_center_lps_mm, r.confidence, r.flags, seconds,
                {k: v for k, v in r.extra.items() if isinstance(v, (int, float, str, list))})
    if peer_pair:
        import peers as peer_mod

        centres = np.array([les.center_lps_mm for les in pair.baseline_lesions])
        for name in peers:
            t1 = time.perf_counter()
            mapped = peer_mod.PEERS[name](pair.baseline, pair.followup, centres)
            seconds = time.perf_counter() - t1
            for les, p in zip(pair.baseline_lesions, mapped):
                flags = () if pair.followup.contains_lps(p) else ("outside_followup",)
                add(name, les.id, p, float("nan"), flags, seconds)
    sel = [x for x in rows if x["scenario"] == sc and x["case"] == case and x["seed"] == seed]
    print(f"  {sc} {case} seed {seed}: " + "  ".join(
        f"{m} {np.median([x['error_mm'] for x in sel if x['method'] == m and not x['outside_truth']] or [np.nan]):.2f}"
        for m in [*methods, *(peers if peer_pair else [])]) + " mm (median)", flush=True)


def peer_case(args, case: str) -> bool:
    """Whether the peers may run on ``case`` (``--peer-cases``, default every case)."""
    return not args.peer_cases or case in args.peer_cases.split(",")


def skip_after(args, seen_cases: list[str]):
    """With ``--only-peer-pairs``: a ``skip(case, seed)`` that keeps only the peers' pairs."""
    if not args.only_peer_pairs:
        return None
    return lambda case, seed: not peer_case(args, case) or case in seen_cases or len(seen_cases) >= args.peer_pairs


def case_filter(args, seen_cases: list[str]):
    """``skip(case, seed)`` for ``--cases`` and ``--only-peer-pairs`` (None: keep every pair)."""
    peer_skip = skip_after(args, seen_cases)
    wanted = set(args.cases.split(",")) if args.cases else None
    if wanted is None:
        return peer_skip
    return lambda case, seed: case not in wanted or (peer_skip is not None and peer_skip(case, seed))


def load_rows(paths: list[str]) -> tuple[list[dict], list[dict]]:
    """Rows and cycle rows of earlier ``--json`` outputs (``--merge``)."""
    rows, cycle = [], []
    for path in paths:
        d = json.loads(Path(path).read_text())
        rows += d["rows"]
        cycle += d.get("cycle", [])
    return rows, cycle


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", action="append", default=[], choices=list(scenarios.SCENARIOS),
                    help="a scenario (repeatable); default standard")
    ap.add_argument("--all", action="store_true", help="every scenario")
    ap.add_argument("--methods", default="affine,auto")
    ap.add_argument("--seeds", default="report", help="report (100-109), tuning (0-9), or e.g. 0-4 / 3,7")
    ap.add_argument("--pairs", type=int, default=None, help="old form: seeds FIRST_SEED..FIRST_SEED+PAIRS-1")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--other-cts", action="store_true", help="old flag, no effect: standard includes POPI, TotalSeg")
    ap.add_argument("--peers", default="", help="elastix, ants or elastix-affine,elastix-bspline,ants-syn")
    ap.add_argument("--peer-pairs", type=int, default=2, help="peers run on the first pair of this many cases")
    ap.add_argument("--peer-cases", default="", help="cases the peers may run on (default: any), e.g. popi_ct00_2mm")
    ap.add_argument("--model", default=None, help="checkpoint or registry name for tlt / tlt+refine (default: bundled)")
    ap.add_argument("--cases", default="", help="only these cases (volume names), e.g. lidc_0001 (the volume held out "
                    "from the TLT training data)")
    ap.add_argument("--merge", nargs="+", default=None, help="no run: tables from these --json files")
    ap.add_argument("--only-peer-pairs", action="store_true", help="skip the pairs the peers do not run on")
    ap.add_argument("--no-deformable", action="store_true",
                    help="refine without the pair's deformable field (the method before docs/benchmarks.md §9)")
    ap.add_argument("--lesions-only", action="store_true",
                    help="also the tables without the anatomical points (P1..P6 of POPI and TotalSegmentator)")
    ap.add_argument("--cycle", action="store_true", help="also the truth-free HCC-011 acq1->2->3->1 cycle check")
    ap.add_argument("--png", default=None, help="error-CDF plot, one panel per scenario (lesions only with "
                    "--lesions-only)")
    ap.add_argument("--json", default=None, help="per-lesion rows (and cycle rows)")
    ap.add_argument("--markdown", default=None, help="write the tables as Markdown here")
    args = ap.parse_args()
    if not (SHARED / "ct" / "lidc_0001.nii.gz").exists():
        print(f"shared data not found under {SHARED}; nothing to measure")
        return 0
    names = list(scenarios.SCENARIOS) if args.all else (args.scenario or ["standard"])
    methods = args.methods.split(",")
    peers = peer_names(args.peers)
    seeds = list(range(args.first_seed, args.first_seed + args.pairs)) if args.pairs else seeds_from(args.seeds)
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {load[0]:.1f}; seeds {seeds[0]}..{seeds[-1]} ({len(seeds)})", flush=True)
    rows: list[dict] = []
    t_all = time.perf_counter()
    if args.merge:
        rows, cycle = load_rows(args.merge)
        names = [n for n in scenarios.SCENARIOS if any(r["scenario"] == n for r in rows)]
        methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] not in scenarios_peers()))
        peers = list(dict.fromkeys(r["method"] for r in rows if r["method"] in scenarios_peers()))
    for sc in names if not args.merge else []:
        seen_cases: list[str] = []  # cases the peers ran on
        for case, pair in scenarios.scenario_pairs(sc, seeds, SHARED, skip=case_filter(args, seen_cases)):
            peer_pair = (bool(peers) and peer_case(args, case) and case not in seen_cases
                         and len(seen_cases) < args.peer_pairs)
            if peer_pair:
                seen_cases.append(case)
            run_pair(sc, case, pair, methods, peers, peer_pair, rows, args.model, not args.no_deformable)
            if args.json:  # after every pair, so a stopped run keeps what it measured
                Path(args.json).write_text(json.dumps({"rows": rows, "cycle": []}))
    all_methods = [*methods, *peers]
    summ = tables.summaries(rows, names, all_methods)
    out = ["### All pairs", "", tables.markdown_table(summ)]
    print("\n" + tables.text_table(summ))
    if peers:
        sub = tables.summaries(rows, names, all_methods, peer_subset=True)
        print("\npeer pairs only (every method on the same pairs):\n" + tables.text_table(sub))
        out += ["", f"### Peer pairs only (first pair of the first {args.peer_pairs} cases per scenario)", "",
                tables.markdown_table(sub)]
    line = tables.pooled_auc_line(rows, methods, " (hit vs miss, inside lesions)")
    print(line)
    out += ["", line]
    for m in methods:
        if m != "affine":
            kinds = tables.kind_table(rows, names, m)
            print(f"\n{m} by target kind:\n{kinds}")
            out += ["", f"### `{m}` by target kind", "", kinds]
    # with --lesions-only, the tables after the full ones and the plot leave the anatomical points out
    lesions = [r for r in rows if tables.target_kind(r) != "anatomical point"] if args.lesions_only else rows
    if args.lesions_only:
        summ_l = tables.summaries(lesions, names, all_methods)
        line_l = tables.pooled_auc_line(lesions, methods, ", lesions only")
        print("\nlesions only (no anatomical points):\n" + tables.text_table(summ_l) + "\n" + line_l)
        out += ["", "### Lesions only (no anatomical points)", "", tables.markdown_table(summ_l), "", line_l]
    cycle = cycle if args.merge else []
    if args.merge and cycle:
        from _cycle import cycle_table

        text = cycle_table(cycle, list(dict.fromkeys(r["method"] for r in cycle)))
        print("\nHCC-011 cycle acq1 -> acq2 -> acq3 -> acq1\n" + text)
        out += ["", "### HCC-011 cycle acq1 → acq2 → acq3 → acq1", "", text]
    if args.cycle and not args.merge:
        from _cycle import cycle_rows, cycle_table

        cycle = cycle_rows(methods, SHARED)
        text = cycle_table(cycle, methods)
        print("\nHCC-011 cycle acq1 -> acq2 -> acq3 -> acq1 (no truth; cycle error = |end - start|)\n" + text)
        out += ["", "### HCC-011 cycle acq1 → acq2 → acq3 → acq1", "", text]
    end_load = os.getloadavg()
    note = (f"{len(rows)} lesion results merged from {len(args.merge)} runs" if args.merge else
            f"{len(rows)} lesion results in {time.perf_counter() - t_all:.0f} s; load average at start "
            f"{load[0]:.1f}, at end {end_load[0]:.1f}")
    print(note)
    if args.png:
        tables.plot(lesions, names, all_methods, args.png)
        print(f"wrote {args.png}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summ, "cycle": cycle}, indent=1))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(out + ["", note]) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
