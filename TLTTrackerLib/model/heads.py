"""Centre predictor: per-token classification and centre regression, and the global regression.

TLT paper §3.3 and the official code (method-notes §1.7): a classification branch gives a logit ``s_i`` per
search token (trained with a focal loss on a Gaussian label), a regression MLP gives a per-token centre
estimate ``b_i``; the global regression sums ``softmax(s)_i · b_i`` over the search tokens, concatenates the
registration start point (normalised search coordinates) and maps it through Linear → sigmoid to the final
centre in normalised search coordinates (z, y, x) ∈ (0, 1). Only the centre is predicted (the official code's
untrained box-size outputs are dropped). The same logits feed the softmax and the focal loss.
"""

from __future__ import annotations

import torch
from torch import nn


class CenterHead(nn.Module):
    """``tokens (B, Ns, C)``, ``start (B, 3)`` -> ``logits (B, Ns)``, ``token_centers (B, Ns, 3)``,
    ``center (B, 3)`` (normalised search coordinates z, y, x)."""

    def __init__(self, d_model: int = 192) -> None:
        super().__init__()
        self.classify = nn.Linear(d_model, 1)
        self.regress = nn.Sequential(
            nn.Linear(d_model, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, 3)
        )
        self.global_regress = nn.Linear(3 + 3, 3)

    def forward(self, tokens: torch.Tensor, start: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classify(tokens).squeeze(-1).float()  # (B, Ns, 1) -> (B, Ns)
        token_centers = self.regress(tokens).float()  # (B, Ns, 3)
        with torch.autocast(tokens.device.type, enabled=False):  # the centre in float32 (sub-mm matters)
            weights = torch.softmax(logits, dim=-1)  # (B, Ns)
            pooled = torch.einsum("bn,bnc->bc", weights, token_centers)  # (B, 3)
            center = torch.sigmoid(self.global_regress(torch.cat([pooled, start.float()], dim=-1)))  # (B, 3)
        return {"logits": logits, "token_centers": token_centers, "center": center}
