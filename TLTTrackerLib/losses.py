"""Training losses of the TLT network: focal loss on the token heatmap and L1 on the centre (torch).

Focal loss (TLT paper Eq. 5 with α = β = 2, in the official code's variant, method-notes §3): per search token
with logit ``s``, probability ``p = σ(s)`` and Gaussian label ``y`` (target heatmap on the token grid):

- positives are the token(s) equal to the sample's largest label (at least one, even when the peak is < 1);
- ``loss_i = (1 - p_t)^α · BCE(s_i, y_i) · w_i`` with ``p_t = p`` and ``w = y`` at positives,
  ``p_t = 1 - p`` and ``w = (1 - y)^β`` elsewhere (BCE against the soft label, so negatives near the peak are
  pulled toward the label rather than to 0);
- averaged over tokens, then over the batch (the code sums over the batch; the mean keeps the scale
  independent of the batch size).

Centre loss: L1 between the predicted and the true centre, per axis, in ``l1_space``:

- ``"normalized"`` (official): normalised crop coordinates, so on a 40×200×200 crop a z error weighs 5× an
  x error of the same millimetres;
- ``"isotropic"``: normalised by one length (the largest crop side) on every axis;
- ``"mm"``: millimetres.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from .model.tracker import volume_to_tokens


def focal_token_loss(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0, beta: float = 2.0
) -> torch.Tensor:
    """``logits (B, N)``, ``labels (B, N)`` in [0, 1] -> scalar (mean over tokens and batch)."""
    logits = logits.float()
    labels = labels.float()
    positive = labels >= labels.amax(dim=1, keepdim=True)  # (B, N)
    p = torch.sigmoid(logits)
    p_t = torch.where(positive, p, 1.0 - p)
    weight = torch.where(positive, labels, (1.0 - labels) ** beta)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return ((1.0 - p_t) ** alpha * bce * weight).mean(dim=1).mean()


def l1_scale(search_size_mm: torch.Tensor, space: str) -> torch.Tensor:
    """Per-axis factor turning normalised coordinate differences into ``space`` units, ``(B, 3)``."""
    size = search_size_mm.float()
    if space == "normalized":
        return torch.ones_like(size)
    if space == "isotropic":
        return size / size.amax(dim=-1, keepdim=True)
    if space == "mm":
        return size
    raise ValueError(f"unknown l1_space {space!r}; use normalized, isotropic or mm")


def center_l1_loss(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean absolute centre error: ``pred``, ``target`` ``(B, 3)`` normalised, ``scale`` ``(B, 3)``."""
    return ((pred.float() - target.float()).abs() * scale).mean()


def tracking_loss(
    outputs: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    focal_weight: float = 1.0,
    l1_weight: float = 1.0,
    l1_space: str = "normalized",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss ``focal_weight × focal + l1_weight × L1`` and its parts (floats, for logging).

    ``outputs``: the model's ``logits (B, Ns)`` and ``center (B, 3)``; ``batch``: ``target_heatmap
    (B, ds, hs, ws)``, ``target_center (B, 3)`` and ``search_size_mm (B, 3)``. The centre target is clamped to
    [0, 1] (a truth outside the window pulls toward the border).
    """
    labels = volume_to_tokens(batch["target_heatmap"][:, None])[..., 0]  # (B, ds, hs, ws) -> (B, Ns)
    focal = focal_token_loss(outputs["logits"], labels)
    target = batch["target_center"].clamp(0.0, 1.0)
    l1 = center_l1_loss(outputs["center"], target, l1_scale(batch["search_size_mm"], l1_space))
    total = focal_weight * focal + l1_weight * l1
    return total, {"loss": float(total.detach()), "focal": float(focal.detach()), "l1": float(l1.detach())}
