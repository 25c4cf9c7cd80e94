"""Could a fitted confidence separate hits from misses better than the shipped one? A study on scenario-suite rows.

    python benchmarks/accuracy.py --all --seeds 0-9 --methods auto --json tuning.json
    python benchmarks/confidence_study.py tuning.json [more.json ...]

For the ``auto`` rows of inside lesions (hit: error ≤ min(radius, 10 mm), as the suite scores), this prints the
ROC AUC of the shipped confidence (:func:`TLTTrackerLib.confidence.combined_confidence`, as run) and, for several
feature sets, of a logistic regression (L2, Newton's method) fitted with one seed left out at a time (LOSO: every
row is scored by a model that never saw its seed), then capped as the shipped confidence is (``low_similarity``
0.1, ``backtrack_mismatch`` 0.45, ``outside_followup`` 0.3). It also prints the hit rate by ``field_shift_mm``
(|D(c) − T(c)|, how far the pair's deformable field moved the lesion beyond the affine) and the AUC of the shipped
confidence times a shift term exp(−½ (shift / S)²).

Features come from each row's ``extra`` (:class:`TLTTrackerLib.multistart.PointResult`'s ``info``); distances are
divided by s = max(radius, 4 mm), the scale of the shipped back-tracking and agreement terms. docs/benchmarks.md §22
has the results on the tuning seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _scenario_tables import auc, hit

from TLTTrackerLib.confidence import (
    BACKTRACK_MIN_MM,
    EDGE_CAP,
    FELL_BACK_CONFIDENCE,
    LESION_MATCH_MAX_RADIUS_MM,
    LESION_MATCH_OFFSET,
    MISMATCH_CAP,
    SIMILARITY_OFFSET,
)

FEATURE_SETS = {
    "shipped terms": ("miss2", "multi", "agree2", "logsim", "logncc"),
    "shipped terms + shift": ("miss2", "multi", "agree2", "logsim", "logncc", "shift"),
    "shipped terms + field gap": ("miss2", "multi", "agree2", "logsim", "logncc", "fgap"),
    "shipped terms + chosen start": ("miss2", "multi", "agree2", "logsim", "logncc", "coarse", "snapped"),
    "linear distances": ("miss", "multi", "agree", "sim", "logncc"),
    "all": ("miss2", "miss", "multi", "agree2", "agree", "logsim", "logncc", "shift", "fgap", "coarse", "snapped",
            "first2", "logr"),
}


def features(row: dict) -> dict[str, float]:
    """The candidate features of one row (module docstring)."""
    e, radius = row["extra"], row["radius_mm"]
    s = max(radius, BACKTRACK_MIN_MM)
    sim = float(np.clip(np.mean(e.get("level_similarity", [0.0])), 0.0, 1.0))
    miss = e.get("backtrack_error_mm", float("nan"))
    miss = min(miss / s, 5.0) if np.isfinite(miss) else 5.0
    first = e.get("first_miss_mm", float("nan"))
    first = min(first / s, 5.0) if np.isfinite(first) else 5.0
    agree = min(e["agreement_mm"] / s, 5.0) if "agreement_mm" in e else 0.0
    ncc = e.get("lesion_ncc")
    return {"miss": miss, "miss2": miss**2, "first2": first**2, "multi": float(e.get("starts", 1) > 1),
            "agree": agree, "agree2": agree**2, "sim": sim,
            "logsim": float(np.log(np.clip(SIMILARITY_OFFSET + sim, 1e-3, 1.0))),
            "logncc": (float(np.log(np.clip(LESION_MATCH_OFFSET + ncc, 1e-3, 1.0)))
                       if ncc is not None and radius <= LESION_MATCH_MAX_RADIUS_MM else 0.0),
            "shift": e.get("field_shift_mm", 0.0) / 10.0, "fgap": min(e.get("field_gap_mm", 0.0) / s, 5.0),
            "coarse": float(e.get("chosen_kind") == "coarse"), "snapped": float(e.get("chosen_kind") == "field_snap"),
            "logr": float(np.log(radius))}


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> tuple[float, np.ndarray]:
    """Intercept and weights ``(F,)`` of an L2-penalised logistic regression of ``y`` ``(N,)`` on ``x`` ``(N, F)``
    (features standardised for the penalty, weights returned for the raw features)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.c_[np.ones(len(x)), (x - mu) / sd]
    w = np.zeros(z.shape[1])
    penalty = l2 * np.eye(z.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        hessian = z.T @ (z * (p * (1 - p))[:, None]) + penalty
        w -= np.linalg.solve(hessian, z.T @ (p - y) + penalty @ w)
    weights = w[1:] / sd
    return float(w[0] - mu @ weights), weights


def capped(row: dict, p: float) -> float:
    """``p`` under the shipped confidence's caps for the row's flags."""
    if "low_similarity" in row["flags"]:
        return FELL_BACK_CONFIDENCE
    if "backtrack_mismatch" in row["flags"]:
        p = min(p, MISMATCH_CAP)
    return min(p, EDGE_CAP) if "outside_followup" in row["flags"] else p


def loso_auc(rows: list[dict], names: tuple[str, ...], l2: float) -> float:
    """AUC of the capped logistic confidence, each seed's rows scored by a model fitted on the other seeds."""
    x = np.array([[features(r)[n] for n in names] for r in rows])
    y = np.array([hit(r) for r in rows], float)
    seeds = np.array([r["seed"] for r in rows])
    scored = [dict(r) for r in rows]
    for seed in np.unique(seeds):
        held = seeds == seed
        b, w = fit_logistic(x[~held], y[~held], l2)
        for i in np.flatnonzero(held):
            scored[i]["confidence"] = capped(rows[i], float(1.0 / (1.0 + np.exp(-(x[i] @ w + b)))))
    return auc(scored)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+", help="benchmarks/accuracy.py --json outputs (rows with extra)")
    args = ap.parse_args()
    rows = [r for p in args.json for r in json.loads(Path(p).read_text())["rows"]
            if r["method"] == "auto" and not r["outside_truth"]]
    hits = np.array([hit(r) for r in rows])
    print(f"{len(rows)} inside lesions, {hits.sum()} hits; shipped confidence AUC {auc(rows):.3f}")
    for l2 in (1.0, 10.0):
        for name, names in FEATURE_SETS.items():
            print(f"logistic, L2 {l2:g}, {name}: LOSO AUC {loso_auc(rows, names, l2):.3f}")
    shift = np.array([r["extra"].get("field_shift_mm", 0.0) for r in rows])
    for lo, hi in ((0, 5), (5, 10), (10, 15), (15, 20), (20, np.inf)):
        sel = (shift >= lo) & (shift < hi)
        print(f"field shift {lo}-{hi} mm: {sel.sum()} lesions, hit rate {hits[sel].mean():.3f}")
    for scale in (10, 20, 30, 60):
        term = [dict(r, confidence=r["confidence"] * float(np.exp(-0.5 * (s / scale) ** 2)))
                for r, s in zip(rows, shift)]
        print(f"shipped × shift term, S = {scale} mm: AUC {auc(term):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
