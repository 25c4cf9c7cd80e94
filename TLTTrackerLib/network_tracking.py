"""The TLT network's results as :class:`~.tracked_lesion.TrackedLesion`: ``tlt`` (the network, its point snapped
onto the lesion's own template) and the network's view in ``tlt+refine`` (:class:`~.tracker.LesionTracker`).

    results = track_with_network(models.predictor, "cpu", baseline, followup, forward, prior, lesions,
                                 with_heatmap=False, progress=None, snap_mm=TLT_SNAP_MM)

Every point is LPS mm; ``forward`` maps baseline to follow-up LPS points (the affine), ``prior`` is where the
network's search window starts (the pair's deformable field, else the affine: the paper's registration prior).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np

from .confidence import cap_at_edge, nearest_edge_mm
from .geometry import Volume
from .lesions import Lesion
from .multistart_config import MultiStartConfig
from .tracked_lesion import TrackedLesion
from .transforms import AffineTransform

logger = logging.getLogger(__name__)

# the network's point snaps onto the lesion's own template within this distance (mm): the network places a lesion
# to about 4-5 mm (16 mm tokens at 2 mm), the template to a voxel; tuning seeds 0-3, `tlt` hits on large-motion
# 8 -> 17 of 28, standard 11 -> 18, abdomen 43 -> 54 of 68 (4 mm: 16, 18, 52; 8 mm: 18, 17, 54; docs/benchmarks.md §14)
TLT_SNAP_MM = 6.0
# ... but within refine's 2.5 mm when either scan is coarser than 3 mm along an axis (the template's match is then
# locked along it and finds false peaks across the others: tuning thick-slice MED 5.04 -> 5.77 mm at 6 mm, 5.05 here)
TLT_SNAP_COARSE_MM = 2.5


def track_with_network(
    predictor: Callable[[str], Any],
    device: str,
    baseline: Volume,
    followup: Volume,
    forward: AffineTransform,
    prior: Any,
    lesions: Sequence[Lesion],
    with_heatmap: bool,
    progress: Callable[[float, str], None] | None,
    snap_mm: float,
) -> list[TrackedLesion]:
    """All lesions in one batched pass of ``predictor(device)`` (a :class:`~.inference.TLTPredictor`), each
    started at ``prior.apply(centre)`` (``extra["network_start_lps_mm"]``); on CUDA out-of-memory, warn and run
    on the CPU. Each point inside the follow-up then snaps onto the lesion's own template's best match within
    ``snap_mm`` (0: off; :func:`~.lesion_template.snap_to_lesion`; ``extra["network_center_lps_mm"]`` keeps the
    network's own point), and that match (weighted NCC, clipped to [0, 1]) is the confidence: the network's
    token probability did not separate hits from misses (ROC AUC 0.47 against the match's 0.60 on the tuning
    seeds, docs/benchmarks.md §14)."""
    from .lesion_template import coarse_grid_mm, snap_to_lesion
    from .matching import axis_resolution_mm

    def predict(on: str) -> list:
        return predictor(on).predict(baseline, followup, lesions, prior, with_heatmap=with_heatmap,
                                     progress=progress)

    try:
        predictions = predict(device)
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if "out of memory" not in str(exc).lower() or device == "cpu":
            raise
        logger.warning("GPU out of memory: tracking on the CPU instead (slower)")
        predictions = predict("cpu")
    out = []
    margin = MultiStartConfig.edge_margin_mm
    linear_inv = np.linalg.inv(forward.matrix)
    res = (axis_resolution_mm(baseline), axis_resolution_mm(followup))
    for les, pred in zip(lesions, predictions):
        affine_c = forward.apply(les.center_lps_mm)
        center = np.asarray(pred.center_lps_mm, float)
        extra = {**pred.info, "network_start_lps_mm": np.round(pred.start_lps_mm, 3).tolist(),
                 "network_center_lps_mm": np.round(center, 3).tolist(),
                 "network_confidence": float(pred.confidence) if np.isfinite(pred.confidence) else None}
        confidence = float(pred.confidence)
        if snap_mm > 0 and followup.contains_lps(center):
            center, ncc = snap_to_lesion(baseline, followup, les.center_lps_mm, center, les.radius_mm, linear_inv,
                                         res, search_mm=snap_mm, locked_search_mm=TLT_SNAP_COARSE_MM,
                                         spacing_mm=coarse_grid_mm(les.radius_mm))
            extra["lesion_ncc"] = round(ncc, 4)
            if np.isfinite(confidence):  # NaN: an untrained model says nothing (flag untrained_model)
                confidence = float(np.clip(ncc, 0.0, 1.0))
        # as refine's: a start or point at, or beyond, the follow-up's edge is a guess (outside_followup)
        edge = nearest_edge_mm(followup, pred.start_lps_mm, center)
        flags = tuple(pred.info.get("flags", ())) + (("outside_followup",) if edge < margin else ())
        confidence = cap_at_edge(confidence, edge, margin)
        out.append(TrackedLesion(les.id, les.center_lps_mm, center, les.radius_mm, "tlt",
                                 confidence if followup.contains_lps(center) else 0.0, affine_c,
                                 flags, pred.heatmap, extra))
    return out


def with_network_view(refined: TrackedLesion, network: TrackedLesion | None) -> TrackedLesion:
    """``refine``'s result as ``tlt+refine``'s: the confidence halved when the network ran (``network`` is its
    result, else None) and the kept point lies more than max(radius, 10 mm) from the network's (the two views
    disagree); ``extra`` keeps the network's point and confidence (None where it did not run)."""
    r = refined
    confidence, extra = r.confidence, {**r.extra, "network_center_lps_mm": None, "network_confidence": None}
    if network is not None:
        apart = float(np.linalg.norm(r.followup_center_lps_mm - network.followup_center_lps_mm))
        confidence = r.confidence if apart <= max(r.radius_mm, 10.0) else 0.5 * r.confidence
        extra.update(network_center_lps_mm=np.round(network.followup_center_lps_mm, 3).tolist(),
                     network_confidence=network.confidence if np.isfinite(network.confidence) else None,
                     network_result_apart_mm=round(apart, 3))
    return TrackedLesion(r.id, r.baseline_center_lps_mm, r.followup_center_lps_mm, r.radius_mm, "tlt+refine",
                         float(confidence), r.affine_center_lps_mm, r.flags, r.heatmap, extra)
