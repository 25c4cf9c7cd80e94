"""Centre predictor: per-token classification and centre regression, and the global regression.

TLT paper §3.3 and the official code (method-notes §1.7): a classification branch gives a logit ``s_i`` per
search token (trained with a focal loss on a Gaussian label), a regression MLP gives a per-token centre
estimate ``b_i``; the global regression sums ``softmax(s)_i · b_i`` over the search tokens, concatenates the
registration start point (normalised search coordinates) and maps it through Linear → sigmoid to the final
centre in normalised search coordinates (z, y, x) ∈ (0, 1). Only the centre is predicted (the official code's
untrained box-size outputs are dropped). The same logits feed the softmax and the focal loss.

``mode`` chooses how ``b_i`` and the global step are parameterised:

- ``"official"``: ``b_i`` is an absolute centre from the MLP, ``center = σ(Linear([Σ softmax(s)_i b_i ; start]))``;
  the network must learn absolute position from the positional encoding, and the easiest first solution is
  to copy ``start`` (on a 2-core CPU, 640 steps learned nothing else: docs/benchmarks.md §7);
- ``"token_offset"`` (ours, the CPU recipe): ``b_i = token centre + tanh(MLP) × one token`` (a CenterNet-style
  offset, Zhou et al. 2019), ``center = clamp(Σ softmax(s)_i b_i + Linear([pooled ; start]), 0, 1)`` with the
  Linear zero-initialised. A uniform softmax gives the crop centre (= the start), and the L1 gradient reaches
  the token logits directly, so the matching itself is what gets trained. Offsets start at 0; the
  classification bias at −2.19 (prior 0.1, as RetinaNet) so the focal loss does not begin by pushing every
  token down.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import HEAD_MODES


def token_grid_centers(grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """Normalised search coordinates (z, y, x) of the token centres ``(d·h·w, 3)``, C order: token ``i`` covers
    crop voxels ``s·i … s·i + s - 1`` (stride ``s``), whose centre ``s·i + (s-1)/2`` is ``(i + 0.5) / d``."""
    axes = [(torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n for n in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


class CenterHead(nn.Module):
    """``tokens (B, Ns, C)``, ``start (B, 3)``, token ``grid (d, h, w)`` -> ``logits (B, Ns)``,
    ``token_centers (B, Ns, 3)``, ``center (B, 3)`` (normalised search coordinates z, y, x)."""

    def __init__(self, d_model: int = 192, mode: str = "official") -> None:
        super().__init__()
        if mode not in HEAD_MODES:
            raise ValueError(f"unknown head mode {mode!r}; use one of {HEAD_MODES}")
        self.mode = mode
        self.classify = nn.Linear(d_model, 1)
        self.regress = nn.Sequential(
            nn.Linear(d_model, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, 3)
        )
        self.global_regress = nn.Linear(3 + 3, 3)
        if mode == "token_offset":
            nn.init.constant_(self.classify.bias, -2.19)
            nn.init.zeros_(self.regress[-1].weight)  # offsets start at 0: b_i = token centre
            nn.init.zeros_(self.regress[-1].bias)
            nn.init.zeros_(self.global_regress.weight)
            nn.init.zeros_(self.global_regress.bias)

    def forward(
        self,
        tokens: torch.Tensor,
        start: torch.Tensor,
        grid: tuple[int, int, int],
        logit_bias: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``logit_bias (B, Ns)`` (optional) is added to the token logits before the softmax and the loss."""
        logits = self.classify(tokens).squeeze(-1).float()  # (B, Ns, 1) -> (B, Ns)
        if logit_bias is not None:
            logits = logits + logit_bias.float()
        raw = self.regress(tokens).float()  # (B, Ns, 3)
        with torch.autocast(tokens.device.type, enabled=False):  # the centre in float32 (sub-mm matters)
            if self.mode == "token_offset":
                one_token = 1.0 / torch.tensor(grid, device=raw.device, dtype=torch.float32)  # (3,)
                token_centers = token_grid_centers(grid, raw.device)[None] + torch.tanh(raw) * one_token
            else:
                token_centers = raw
            weights = torch.softmax(logits, dim=-1)  # (B, Ns)
            pooled = torch.einsum("bn,bnc->bc", weights, token_centers)  # (B, 3)
            step = self.global_regress(torch.cat([pooled, start.float()], dim=-1))  # (B, 3)
            center = (pooled + step).clamp(0.0, 1.0) if self.mode == "token_offset" else torch.sigmoid(step)
        return {"logits": logits, "token_centers": token_centers, "center": center}
