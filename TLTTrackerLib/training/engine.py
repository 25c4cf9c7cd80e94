"""One optimisation step and one validation pass (plain functions, in the spirit of DETR's ``engine.py``).

``model.train()`` / ``model.eval()`` are set only here. Validation runs under ``torch.inference_mode()`` and
scores the global-regression centre in millimetres with the DLT definitions
(:func:`TLTTrackerLib.metrics.summarise`: CPM@10mm, CPM@Radius, MED), beside the same figures for the start
point alone (what registration gives without the network).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.dataset import to_device
from ..inference import autocast
from ..losses import tracking_loss
from ..preprocessing import normalized_to_lps


def train_step(
    model: nn.Module,
    batch: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
    precision: str = "auto",
    focal_weight: float = 1.0,
    l1_weight: float = 1.0,
    l1_space: str = "normalized",
    grad_clip_norm: float = 1.0,
) -> dict[str, float]:
    """Forward, loss, backward, clip, optimiser and scheduler step on one batch. Returns the loss parts,
    ``grad_norm`` (before clipping) and ``lr``. Raises FloatingPointError on a non-finite loss."""
    model.train()
    batch = to_device(batch, device, non_blocking=True)
    with autocast(device, precision):
        outputs = model(batch)
    loss, parts = tracking_loss(outputs, batch, focal_weight, l1_weight, l1_space)
    if not math.isfinite(parts["loss"]):
        raise FloatingPointError(f"loss is {parts['loss']} ({parts}); stopping (lower the learning rate?)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    max_norm = grad_clip_norm if grad_clip_norm > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return {
        **parts,
        "grad_norm": grad_norm,
        "lr": float(optimizer.param_groups[0]["lr"]),
        "samples": int(batch["search_image"].shape[0]),
    }


def predictions_mm(outputs: dict[str, torch.Tensor], metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-sample records: predicted LPS centre, error and start error in mm, radius, confidence."""
    centers = outputs["center"].detach().float().cpu().numpy()
    confidence = torch.sigmoid(outputs["logits"].detach().float()).amax(dim=1).cpu().numpy()
    out = []
    for u, conf, meta in zip(centers, confidence, metas):
        pred = normalized_to_lps(u, meta)
        truth = np.asarray(meta["target_lps_mm"])
        out.append(
            {
                "key": meta.get("key"),
                "item": meta.get("item"),
                "sample": meta.get("sample"),
                "pred_lps_mm": pred.tolist(),
                "error_mm": float(np.linalg.norm(pred - truth)),
                "axis_error_mm": np.abs(pred - truth).tolist(),
                "start_error_mm": float(np.linalg.norm(np.asarray(meta["start_lps_mm"]) - truth)),
                "radius_mm": float(meta["target_radius_mm"]),
                "confidence": float(conf),
            }
        )
    return out


def validate(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    device: torch.device,
    precision: str = "auto",
    l1_space: str = "normalized",
    max_samples: int = 0,
) -> tuple[list[dict[str, Any]], float]:
    """Run the model over ``batches`` in eval mode; returns (per-sample records, summed loss) for this process
    (combine ranks with :func:`summarise_records`)."""
    model.eval()
    records: list[dict[str, Any]] = []
    loss_sum = 0.0
    with torch.inference_mode():
        for batch in batches:
            metas = batch["meta"]
            batch = to_device(batch, device, non_blocking=True)
            with autocast(device, precision):
                outputs = model(batch)
            _, parts = tracking_loss(outputs, batch, l1_space=l1_space)
            loss_sum += parts["loss"] * len(metas)
            records += predictions_mm(outputs, metas)
            if max_samples and len(records) >= max_samples:
                break
    return records, loss_sum


def summarise_records(records: list[dict[str, Any]], loss_sum: float = float("nan")) -> dict[str, Any]:
    """DLT-definition metrics of the network and of the start point, from (deduplicated) records."""
    from ..metrics import summarise

    unique = {(r["key"], r["item"], r["sample"]): r for r in records}
    recs = list(unique.values())
    if not recs:
        return {"n": 0}
    errors = np.array([r["error_mm"] for r in recs])
    radii = np.array([r["radius_mm"] for r in recs])
    out = summarise(errors, radii, np.array([r["axis_error_mm"] for r in recs]))
    start = summarise(np.array([r["start_error_mm"] for r in recs]), radii)
    out.update({f"start_{k}": v for k, v in start.items() if k != "n"})
    out["loss"] = float(loss_sum / len(records)) if records else float("nan")
    out["mean_confidence"] = float(np.mean([r["confidence"] for r in recs]))
    return out
