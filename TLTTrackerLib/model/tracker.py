"""The Transformer Lesion Tracker network (TLT, Tang et al., MICCAI 2022): stateless ``nn.Module``.

Pipeline: a shared 3D residual feature extractor (stride 8) on the template (baseline) and search (follow-up)
crops, a 1×1×1 input projection, the Sparse Selection Strategy (SSS) on the template tokens, the Cross
Attention-based Transformer with RAAM (:mod:`.fusion`) and the centre predictor (:mod:`.heads`).

SSS: template tokens whose lesion prior is ≥ ``sss_threshold`` are kept; when fewer than ``sss_min_tokens``
pass, the ``sss_min_tokens`` highest-prior tokens are kept instead (the official code silently kept none for
small lesions). Kept counts differ per sample, so kept tokens are packed to the largest count in the batch and
the rest masked (``-inf`` logits as keys): any batch size works.

Match prior (``match_prior=True``, ours, off in the official configuration): the cosine similarity between each
search token's feature and the prior-weighted mean of the kept template tokens' features (before the fusion)
is added, times a learned scale, to the token logits: a Siamese correlation term (SiamFC, Bertinetto et al.
2016) that gives the classification a matching signal from the first step; the transformer learns the rest.

The two functions :func:`volume_to_tokens` and :func:`tokens_to_volume` own every volume↔token layout change.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .backbone import Backbone3d
from .fusion import FeatureFusion, build_attention_terms
from .heads import CenterHead
from .position_encoding import grid_coordinates, sine_encoding


def volume_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, D, H, W)`` -> ``(B, D*H*W, C)``, tokens in C order (z slowest, x fastest)."""
    return x.flatten(2).transpose(1, 2)  # (B, C, D, H, W) -> (B, C, N) -> (B, N, C)


def tokens_to_volume(tokens: torch.Tensor, grid_shape: tuple[int, int, int]) -> torch.Tensor:
    """``(B, D*H*W, C)`` -> ``(B, C, D, H, W)`` (inverse of :func:`volume_to_tokens`)."""
    b, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, *grid_shape)  # (B, N, C) -> (B, C, N) -> (B, C, D, H, W)


def select_template_tokens(
    prior: torch.Tensor, threshold: float, min_tokens: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse Selection Strategy with a minimum-token fallback.

    Args:
        prior: ``(B, N)`` lesion prior of every template token (Gaussian, peak 1).
        threshold: keep tokens with prior ≥ threshold (≤ 0: keep all).
        min_tokens: when fewer pass, keep the ``min(min_tokens, N)`` highest-prior tokens.

    Returns:
        ``index (B, L)`` long (kept tokens first, in token order, then filler), ``padding (B, L)`` bool (True
        where ``index`` is filler), ``counts (B,)`` kept per sample; ``L = max(counts)``.
    """
    n = prior.shape[1]
    keep = prior >= threshold if threshold > 0 else torch.ones_like(prior, dtype=torch.bool)
    k = min(int(min_tokens), n)
    short = keep.sum(dim=1) < k  # (B,)
    if bool(short.any()):
        top = torch.zeros_like(keep)
        top.scatter_(1, prior.topk(k, dim=1).indices, True)
        keep = torch.where(short[:, None], top, keep)
    counts = keep.sum(dim=1)
    length = int(counts.max())
    index = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :length]  # kept first, token order
    padding = torch.arange(length, device=prior.device)[None, :] >= counts[:, None]
    return index, padding, counts


def _gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x (B, N, C)``, ``index (B, L)`` -> ``(B, L, C)``."""
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


MATCH_INIT = 5.0  # initial weight of the match prior on the logits (a cosine of 0.2 more: logit +1)
MATCH_GAIN = 20.0


def match_similarity(t_kept: torch.Tensor, weights: torch.Tensor, s_tokens: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``(B, Ns)`` of every search token ``s_tokens (B, Ns, C)`` with the ``weights (B, L)``
    weighted mean of the kept template tokens ``t_kept (B, L, C)`` (zero weight for padding)."""
    w = weights.float()[..., None]  # (B, L, 1)
    template = (w * t_kept.float()).sum(dim=1) / w.sum(dim=1).clamp_min(1e-6)  # (B, C)
    return torch.nn.functional.cosine_similarity(s_tokens.float(), template[:, None, :], dim=-1)


class TransformerLesionTracker(nn.Module):
    """TLT network. Build it with :func:`TLTTrackerLib.model.build_tracker`.

    ``forward(sample)`` takes a mapping of tensors (batch ``B``; crops ``(D, H, W)`` voxels, z, y, x;
    token grids ``(d, h, w) = (D, H, W) / stride``):

    - ``template_image`` ``(B, 1, Dt, Ht, Wt)``, ``search_image`` ``(B, 1, Ds, Hs, Ws)``: windowed CT;
    - ``template_prior`` ``(B, dt, ht, wt)``: lesion Gaussian on the template token grid (peak 1);
    - ``search_prior`` ``(B, ds, hs, ws)``: registration-propagated Gaussian on the search token grid;
    - ``search_start`` ``(B, 3)``: the propagated point in normalised search coordinates;
    - ``template_origin`` ``(B, 3)``: search-crop voxel index of template voxel (0, 0, 0) (shared frame of the
      positional encoding).

    Returns a dict:

    - ``logits`` ``(B, Ns)`` per search token (``Ns = ds·hs·ws``, C order), the classification branch;
    - ``token_centers`` ``(B, Ns, 3)`` per-token centre estimates;
    - ``center`` ``(B, 3)`` global regression, normalised search coordinates (z, y, x) in (0, 1):
      crop voxel index = ``center × (Ds, Hs, Ws) - 0.5``;
    - ``template_token_count`` ``(B,)`` kept template tokens.
    """

    def __init__(
        self,
        backbone: Backbone3d,
        fusion: FeatureFusion,
        head: CenterHead,
        d_model: int = 192,
        sss_threshold: float = 0.7,
        sss_min_tokens: int = 8,
        raam_mode: str = "logit_bias",
        pe_temperature: float = 10000.0,
        match_prior: bool = False,
    ) -> None:
        super().__init__()
        # weight = MATCH_GAIN × parameter: Adam moves a parameter by about lr per step, so without the gain the
        # weight could change by only ~0.3 in 600 steps (measured: 1.0 -> 1.1)
        self.match_scale = nn.Parameter(torch.tensor(MATCH_INIT / MATCH_GAIN)) if match_prior else None
        self.backbone = backbone
        self.input_proj = nn.Conv3d(backbone.out_channels, d_model, kernel_size=1)
        self.fusion = fusion
        self.head = head
        self.d_model = d_model
        self.stride = backbone.stride
        self.sss_threshold = sss_threshold
        self.sss_min_tokens = sss_min_tokens
        self.raam_mode = raam_mode
        self.pe_temperature = pe_temperature

    def features(self, template: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected feature maps ``(B, C, dt, ht, wt)``, ``(B, C, ds, hs, ws)``; one backbone pass when the
        crops have the same shape."""
        if template.shape[2:] == search.shape[2:]:
            feats = self.input_proj(self.backbone(torch.cat([template, search])))  # (2B, C, d, h, w)
            return feats[: template.shape[0]], feats[template.shape[0] :]
        return self.input_proj(self.backbone(template)), self.input_proj(self.backbone(search))

    def forward(self, sample: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ft, fs = self.features(sample["template_image"], sample["search_image"])
        b = ft.shape[0]
        t_grid, s_grid = tuple(ft.shape[2:]), tuple(fs.shape[2:])
        for key, grid in (("template_prior", t_grid), ("search_prior", s_grid)):
            if tuple(sample[key].shape[1:]) != grid:
                raise ValueError(f"{key} has grid {tuple(sample[key].shape[1:])}, the features have {grid}")
        t_tokens, s_tokens = volume_to_tokens(ft), volume_to_tokens(fs)  # (B, Nt, C), (B, Ns, C)
        t_prior = volume_to_tokens(sample["template_prior"][:, None].float())[..., 0]  # (B, Nt)
        s_prior = volume_to_tokens(sample["search_prior"][:, None].float())[..., 0]  # (B, Ns)

        index, padding, counts = select_template_tokens(t_prior, self.sss_threshold, self.sss_min_tokens)
        t_kept = _gather_tokens(t_tokens, index)  # (B, L, C)
        prior_kept = t_prior.gather(1, index)  # (B, L)

        device = ft.device
        s_coords = grid_coordinates(s_grid, device)  # (Ns, 3)
        t_coords = (
            grid_coordinates(t_grid, device)[None]
            + sample["template_origin"].float()[:, None, :] / self.stride
        )
        pos_s = sine_encoding(s_coords, s_grid, self.d_model, self.pe_temperature)[None]  # (1, Ns, C)
        pos_t = sine_encoding(
            _gather_tokens(t_coords, index), s_grid, self.d_model, self.pe_temperature
        )  # (B, L, C)

        terms = build_attention_terms(self.raam_mode, prior_kept, padding, s_prior)
        fused = self.fusion(t_kept, s_tokens, pos_t, pos_s.expand(b, -1, -1), terms)  # (B, Ns, C)
        bias = None
        if self.match_scale is not None:
            similarity = match_similarity(t_kept, prior_kept.masked_fill(padding, 0.0), s_tokens)  # (B, Ns)
            bias = MATCH_GAIN * self.match_scale * similarity
        out = self.head(fused, sample["search_start"], s_grid, bias)
        out["template_token_count"] = counts
        return out
