"""3D sine positional encoding at continuous token coordinates (DETR-style, extended to three axes).

DETR (Carion et al., ECCV 2020, facebookresearch/detr ``models/position_encoding.py``, Apache-2.0) encodes a
normalised position per axis with sines and cosines of geometrically spaced frequencies; TLT uses it in 3D
with ``d_model / 3 = 64`` features per axis, positions normalised to (0, 2π] and temperature 10000
(method-notes §1.3). Our version takes explicit coordinates instead of a padding mask, so template tokens can
be placed in the search crop's frame (see :mod:`TLTTrackerLib.preprocessing`): coordinate ``c`` on an axis
with ``n`` search tokens maps to ``2π (c + 1) / n``, which for integer ``c`` equals DETR's cumulative-sum
normalisation.
"""

from __future__ import annotations

import math

import torch


def grid_coordinates(shape: tuple[int, int, int], device: torch.device | None = None) -> torch.Tensor:
    """Integer token coordinates of a ``(d, h, w)`` grid in C order, ``(d*h*w, 3)`` float (z, y, x)."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in shape]
    zz, yy, xx = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([zz, yy, xx], dim=-1).reshape(-1, 3)  # (d, h, w, 3) -> (N, 3)


def sine_encoding(
    coords: torch.Tensor,
    search_grid_shape: tuple[int, int, int],
    d_model: int,
    temperature: float = 10000.0,
) -> torch.Tensor:
    """Sine/cosine encoding of token coordinates.

    Args:
        coords: ``(..., 3)`` token coordinates (z, y, x) in search-grid units (fractional allowed).
        search_grid_shape: ``(d, h, w)`` of the search token grid (normalisation lengths).
        d_model: output width; ``d_model / 3`` features per axis (an even number).
        temperature: frequency base.

    Returns:
        ``(..., d_model)`` float32: [z features, y features, x features], each alternating sin, cos.
    """
    per_axis = d_model // 3
    lengths = torch.tensor(search_grid_shape, dtype=torch.float32, device=coords.device)
    pos = (coords.float() + 1.0) / lengths * (2.0 * math.pi)  # (..., 3) in (0, 2π] for in-grid tokens
    k = torch.arange(per_axis, dtype=torch.float32, device=coords.device)
    freq = temperature ** (2.0 * torch.div(k, 2, rounding_mode="floor") / per_axis)  # (per_axis,)
    angles = pos[..., None] / freq  # (..., 3, per_axis)
    enc = torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=-1)  # (..., 3, per_axis/2, 2)
    return enc.flatten(-3)  # (..., 3 * per_axis) = (..., d_model)
