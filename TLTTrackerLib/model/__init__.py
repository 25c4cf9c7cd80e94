"""The TLT network in PyTorch (imported only when used: ``import TLTTrackerLib`` never imports torch).

    from TLTTrackerLib.config import ModelConfig
    from TLTTrackerLib.model import build_tracker
    net = build_tracker(ModelConfig())          # 5,989,689 parameters with GroupNorm (5,987,641 without)

Files: ``backbone`` (3D residual feature extractor), ``position_encoding`` (3D sine encoding), ``fusion``
(cross-attention transformer + RAAM), ``heads`` (centre predictor), ``tracker`` (the assembled network and the
two volume↔token layout functions).
"""

from __future__ import annotations

from torch import nn

from ..config import ModelConfig
from .backbone import Backbone3d
from .fusion import FeatureFusion
from .heads import CenterHead
from .tracker import TransformerLesionTracker, select_template_tokens, tokens_to_volume, volume_to_tokens


def build_tracker(config: ModelConfig | None = None) -> TransformerLesionTracker:
    """A freshly initialised :class:`TransformerLesionTracker` for ``config`` (default: ModelConfig())."""
    c = config or ModelConfig()
    backbone = Backbone3d(tuple(c.backbone_channels), c.norm, c.norm_groups)
    fusion = FeatureFusion(c.d_model, c.n_heads, c.ffn_dim, c.dropout, c.fusion_layers)
    return TransformerLesionTracker(
        backbone,
        fusion,
        CenterHead(c.d_model, c.head_mode),
        d_model=c.d_model,
        sss_threshold=c.sss_threshold,
        sss_min_tokens=c.sss_min_tokens,
        raam_mode=c.raam_mode,
        pe_temperature=c.pe_temperature,
        match_prior=c.match_prior,
    )


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "TransformerLesionTracker",
    "build_tracker",
    "count_parameters",
    "select_template_tokens",
    "tokens_to_volume",
    "volume_to_tokens",
]
