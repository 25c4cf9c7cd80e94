"""Tables and the plot of the scenario suite (``benchmarks/accuracy.py``), from per-lesion rows.

A row (dict): ``scenario``, ``case``, ``seed``, ``method``, ``id``, ``radius_mm`` (follow-up radius),
``error_mm`` (to the exact follow-up centre), ``start_error_mm`` (the affine estimate's error),
``confidence`` (NaN for peers), ``flags``, ``outside_truth`` (the exact centre lies outside the follow-up's
coverage), ``seconds_pair``, ``peer_pair`` (one of the pairs the peers ran on).

Target kinds (:func:`target_kind`, from the id's prefix): ``N`` LIDC nodules (real lesions), ``L`` / ``S``
painted nodules and soft-tissue lesions (:mod:`TLTTrackerLib.painted_lesions`), ``P`` anatomical points (DoG blob
points of POPI and TotalSegmentator: mostly featureless tissue or an organ's edge, not lesions), and the
``abdomen`` scenario's ``O`` organ interiors, ``B`` soft-tissue blobs and the HCC. ``--lesions-only`` tables leave
the anatomical points out.

Lesions outside the follow-up's coverage are not scored for error (there is no right point); they are counted
in ``outside flagged`` (share flagged ``outside_followup``) and ``outside conf≥0.5`` (reported anyway with
confidence ≥ 0.5). ``worse≥0.5``: inside lesions placed more than 2 mm further from the truth than the affine
estimate while reporting confidence ≥ 0.5 (the issue's "never" criterion).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from TLTTrackerLib.metrics import summarise

HEAD = ("scenario", "method", "pairs", "n", "CPM@10mm", "CPM@Radius", "MED mm", "median", "p90", "max", "s/pair",
        "worse≥0.5", "AUC", "outside flagged", "outside conf≥0.5")


KINDS = {"N": "LIDC nodule", "L": "painted nodule", "S": "painted soft tissue", "P": "anatomical point",
         "O": "organ interior", "B": "soft-tissue blob", "H": "HCC"}


def target_kind(row: dict) -> str:
    """The target's kind (:data:`KINDS`) from its id's first letter."""
    return KINDS.get(str(row["id"])[:1], "other")


def kind_table(rows: list[dict], scenarios: list[str], method: str) -> str:
    """Markdown: per scenario and target kind, ``method``'s inside lesions: n, CPM@10mm, MED, worse≥0.5."""
    lines = ["| scenario | kind | n | CPM@10mm | MED mm | median | worse≥0.5 |", "|---|---|---|---|---|---|---|"]
    for sc in scenarios:
        sel = [r for r in rows if r["scenario"] == sc and r["method"] == method and not r["outside_truth"]]
        for kind in dict.fromkeys(target_kind(r) for r in sel):
            part = [r for r in sel if target_kind(r) == kind]
            e = np.array([r["error_mm"] for r in part])
            worse = sum(map(worse_confident, part))
            lines.append(f"| {sc} | {kind} | {len(part)} | {np.mean([hit(r) for r in part]):.3f} | {e.mean():.2f} | "
                         f"{np.median(e):.2f} | {worse} |")
    return "\n".join(lines)


def hit(row: dict) -> bool:
    return row["error_mm"] <= min(row["radius_mm"], 10.0)


def worse_confident(row: dict) -> bool:
    """The issue's "never": more than 2 mm further from the truth than the affine estimate, confidence ≥ 0.5."""
    return row["error_mm"] > row["start_error_mm"] + 2.0 and row["confidence"] >= 0.5


def auc(rows: list[dict]) -> float:
    """ROC AUC of the confidence for hits vs misses (ties count half); NaN without both or without confidences."""
    sel = [r for r in rows if not r["outside_truth"] and np.isfinite(r["confidence"])]
    h = np.array([hit(r) for r in sel], bool)
    c = np.array([r["confidence"] for r in sel], float)
    if h.all() or not h.any():
        return float("nan")
    return float((c[h][:, None] > c[~h][None, :]).mean() + 0.5 * (c[h][:, None] == c[~h][None, :]).mean())


def summary_row(scenario: str, method: str, rows: list[dict]) -> dict:
    inside = [r for r in rows if not r["outside_truth"]]
    outside = [r for r in rows if r["outside_truth"]]
    s = summarise(np.array([r["error_mm"] for r in inside]), np.array([r["radius_mm"] for r in inside]))
    pairs = {(r["case"], r["seed"]): r["seconds_pair"] for r in rows}
    worse = sum(map(worse_confident, inside))
    out = {"scenario": scenario, "method": method, "pairs": len(pairs), **s,
           "seconds_pair": float(np.mean(list(pairs.values()))) if pairs else float("nan"),
           "worse_conf05": int(worse), "auc": auc(rows), "n_outside": len(outside)}
    if outside:
        out["outside_flagged"] = float(np.mean(["outside_followup" in r["flags"] for r in outside]))
        out["outside_conf05"] = int(sum(r["confidence"] >= 0.5 and "outside_followup" not in r["flags"]
                                        for r in outside))
    return out


def summaries(rows: list[dict], scenarios: list[str], methods: list[str], peer_subset: bool = False) -> list[dict]:
    """One summary per (scenario, method) present; with ``peer_subset`` only the peers' pairs, every method."""
    out = []
    for sc in scenarios:
        for m in methods:
            sel = [r for r in rows if r["scenario"] == sc and r["method"] == m and (r["peer_pair"] or not peer_subset)]
            if sel:
                out.append(summary_row(sc, m, sel))
    return out


def _cells(s: dict) -> list[str]:
    if s.get("n", 0) == 0:
        return [s["scenario"], s["method"], str(s["pairs"]), "0"] + ["–"] * (len(HEAD) - 4)
    fmt = lambda v, f: "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, f)  # noqa: E731
    outside = (f"{s['outside_flagged']:.2f} of {s['n_outside']}" if s.get("n_outside") else "–")
    return [s["scenario"], s["method"], str(s["pairs"]), str(s["n"]), fmt(s["cpm_10mm"], ".3f"),
            fmt(s["cpm_radius"], ".3f"), f"{s['med_mm']:.2f} ± {s['med_std_mm']:.2f}", fmt(s["median_mm"], ".2f"),
            fmt(s["p90_mm"], ".2f"), fmt(s["max_mm"], ".1f"), fmt(s["seconds_pair"], ".1f"),
            str(s["worse_conf05"]), fmt(s["auc"], ".2f"), outside,
            str(s["outside_conf05"]) if s.get("n_outside") else "–"]


def text_table(summ: list[dict]) -> str:
    rows = [list(HEAD)] + [_cells(s) for s in summ]
    width = [max(len(r[c]) for r in rows) for c in range(len(HEAD))]
    return "\n".join("  ".join(v.rjust(w) if c > 1 else v.ljust(w) for c, (v, w) in enumerate(zip(r, width)))
                     for r in rows)


def markdown_table(summ: list[dict]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(_cells(s)) + " |" for s in summ]
    return "\n".join(lines)


def pooled_auc(rows: list[dict], methods: list[str]) -> dict[str, float]:
    return {m: auc([r for r in rows if r["method"] == m]) for m in methods}


def pooled_auc_line(rows: list[dict], methods: list[str], label: str = "") -> str:
    """One line: every method's pooled AUC (:func:`pooled_auc`), NaN ones left out."""
    return f"pooled confidence ROC AUC{label}: " + ", ".join(
        f"{m} {v:.2f}" for m, v in pooled_auc(rows, methods).items() if np.isfinite(v))


def plot(rows: list[dict], scenarios: list[str], methods: list[str], path: str | Path) -> None:
    """One PNG: per scenario, the empirical CDF of the centre error for each method (inside lesions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(scenarios)
    cols = min(3, n)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.3 * ((n + cols - 1) // cols)),
                             squeeze=False)
    for ax, sc in zip(axes.ravel(), scenarios):
        for m in methods:
            e = np.sort([r["error_mm"] for r in rows if r["scenario"] == sc and r["method"] == m
                         and not r["outside_truth"]])
            if e.size:
                ax.step(np.clip(e, 0.05, 80), np.arange(1, e.size + 1) / e.size, where="post",
                        label=f"{m} ({e.size})")
        ax.axvline(10, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlim(0.05, 80)
        ax.set_title(sc)
        ax.set_xlabel("centre error (mm)")
        ax.set_ylabel("fraction of lesions ≤")
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("Scenario suite: real CT, synthetic motion (error CDF)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
