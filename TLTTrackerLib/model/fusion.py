"""Cross Attention-based Transformer (CAT) with the Registration-based Anatomical Attention Module (RAAM).

Structure (TLT paper §3.2; official code, method-notes §1.5-1.6): ``N`` fusion layers, each with
self-attention per branch (template, search) then cross-attention both ways (template queries on search keys,
search queries on template keys) computed from the post-self-attention states, each followed by a feed-forward
network; post-norm (residual → LayerNorm) everywhere, dropout on attention weights and residual paths. A final
search-path cross-attention layer with its own feed-forward network and a closing LayerNorm gives the fused
search tokens. Positional encodings are added to queries and keys only. This is the feature-fusion design of
TransT (Chen et al., CVPR 2021) built on DETR's transformer layers (Carion et al., ECCV 2020); written anew
here (TransT is GPL-3.0, TLT unlicensed: nothing was copied).

RAAM: the registration-propagated Gaussian prior on the search grid (and the lesion prior on the kept template
tokens) biases attention. ``raam_mode``:

- ``"logit_bias"`` (official code, default): every attention adds its keys' prior to the logits,
  ``softmax(QKᵀ/√d + 1·gᵀ)V``, the same for all heads and layers;
- ``"paper_literal"`` (paper Eq. 2-3): ``(softmax(QKᵀ/√d) + M_A)V`` in the cross-attentions, with
  ``M_A = O ⊗ g_sᵀ`` for template queries on search keys and its transpose for search queries on template
  keys (rows stop summing to 1); the rank-1 term is computed as ``q_w ⊗ (k_wᵀ V)`` without an ``Nq × Nk``
  matrix;
- ``"off"``: no prior.

Padded template tokens (batches with different kept-token counts) get ``-inf`` logits and zero weight.
Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` with the bias as a float mask
``(B, 1, Nq, Nk)`` (expanded from ``(B, Nk)`` without copying).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class AttnTerm(NamedTuple):
    """Extra terms of one attention call.

    Attributes:
        bias: ``(B, Nk)`` added to every query's logits (``-inf`` for padded keys), or None.
        rank1: ``(q_weight (B, Nq) | None, k_weight (B, Nk) | None)``: adds ``q_w ⊗ k_w`` to the attention
            weights after the softmax (None weights mean ones), or None.
    """

    bias: torch.Tensor | None = None
    rank1: tuple[torch.Tensor | None, torch.Tensor | None] | None = None


class AttentionTerms(NamedTuple):
    """Terms for the five attention calls: template self, search self, template→search, search→template
    (fusion layers) and the decoder's search→template."""

    t2t: AttnTerm
    s2s: AttnTerm
    t2s: AttnTerm
    s2t: AttnTerm
    dec: AttnTerm


def build_attention_terms(
    mode: str, template_prior: torch.Tensor, template_padding: torch.Tensor, search_prior: torch.Tensor
) -> AttentionTerms:
    """RAAM terms for ``mode`` from the kept template tokens' prior ``(B, L)``, their padding mask ``(B, L)``
    (True = padding) and the search prior ``(B, Ns)``."""
    pad_bias = None
    if bool(template_padding.any()):
        pad_bias = torch.zeros_like(template_prior).masked_fill(template_padding, float("-inf"))
    none = AttnTerm()
    t_only = AttnTerm(pad_bias)
    if mode == "logit_bias":
        t_bias = AttnTerm(template_prior.masked_fill(template_padding, float("-inf")))
        s_bias = AttnTerm(search_prior)
        return AttentionTerms(t_bias, s_bias, s_bias, t_bias, t_bias)
    if mode == "off":
        return AttentionTerms(t_only, none, none, t_only, t_only)
    if mode == "paper_literal":
        valid = (~template_padding).to(search_prior.dtype)
        t2s = AttnTerm(None, (None, search_prior))
        s2t = AttnTerm(pad_bias, (search_prior, valid))
        return AttentionTerms(t_only, none, t2s, s2t, s2t)
    raise ValueError(f"unknown raam_mode {mode!r}")


class Attention(nn.Module):
    """Multi-head attention ``(B, Nq, C), (B, Nk, C), (B, Nk, C) -> (B, Nq, C)`` through SDPA."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, term: AttnTerm
    ) -> torch.Tensor:
        b, nq, c = query.shape
        nk = key.shape[1]
        h = self.n_heads
        q = self.q(query).view(b, nq, h, c // h).transpose(1, 2)  # (B, Nq, C) -> (B, h, Nq, C/h)
        k = self.k(key).view(b, nk, h, c // h).transpose(1, 2)  # (B, h, Nk, C/h)
        v = self.v(value).view(b, nk, h, c // h).transpose(1, 2)  # (B, h, Nk, C/h)
        mask = None
        if term.bias is not None:
            mask = term.bias.to(q.dtype)[:, None, None, :].expand(b, 1, nq, nk)  # (B, Nk) -> (B, 1, Nq, Nk)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, h, Nq, C/h)
        if term.rank1 is not None:
            q_w, k_w = term.rank1
            kv = (
                v.sum(dim=2) if k_w is None else torch.einsum("bn,bhnc->bhc", k_w.to(v.dtype), v)
            )  # (B, h, C/h)
            extra = kv[:, :, None, :]  # (B, h, 1, C/h), same for every query
            if q_w is not None:
                extra = q_w.to(v.dtype)[:, None, :, None] * extra  # (B, h, Nq, C/h)
            out = out + extra
        out = out.transpose(1, 2).reshape(b, nq, c)  # (B, h, Nq, C/h) -> (B, Nq, C)
        return self.out(out)


class FeedForward(nn.Sequential):
    """Linear → ReLU → Dropout → Linear, ``(..., C) -> (..., C)``."""

    def __init__(self, d_model: int, ffn_dim: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d_model, ffn_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(ffn_dim, d_model),
        )


class FusionLayer(nn.Module):
    """Self-attention per branch, then cross-attention both ways, each branch followed by a feed-forward
    network; post-norm. ``t (B, L, C)``, ``s (B, Ns, C)`` -> same shapes."""

    def __init__(self, d_model: int, n_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_t = Attention(d_model, n_heads, dropout)
        self.self_s = Attention(d_model, n_heads, dropout)
        self.cross_t = Attention(d_model, n_heads, dropout)  # template queries, search keys/values
        self.cross_s = Attention(d_model, n_heads, dropout)  # search queries, template keys/values
        self.ffn_t = FeedForward(d_model, ffn_dim, dropout)
        self.ffn_s = FeedForward(d_model, ffn_dim, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(6))
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        t: torch.Tensor,
        s: torch.Tensor,
        pos_t: torch.Tensor,
        pos_s: torch.Tensor,
        terms: AttentionTerms,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.norms
        qt = t + pos_t
        t = n[0](t + self.drop(self.self_t(qt, qt, t, terms.t2t)))
        qs = s + pos_s
        s = n[1](s + self.drop(self.self_s(qs, qs, s, terms.s2s)))
        kt, ks = t + pos_t, s + pos_s
        t_new = n[2](t + self.drop(self.cross_t(kt, ks, s, terms.t2s)))
        s_new = n[3](s + self.drop(self.cross_s(ks, kt, t, terms.s2t)))
        t_new = n[4](t_new + self.drop(self.ffn_t(t_new)))
        s_new = n[5](s_new + self.drop(self.ffn_s(s_new)))
        return t_new, s_new


class DecoderLayer(nn.Module):
    """Final search-path cross-attention (search queries on template keys), feed-forward, closing LayerNorm.
    ``s (B, Ns, C)`` -> ``(B, Ns, C)``."""

    def __init__(self, d_model: int, n_heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.cross = Attention(d_model, n_heads, dropout)
        self.ffn = FeedForward(d_model, ffn_dim, dropout)
        self.norm1, self.norm2, self.final = (
            nn.LayerNorm(d_model),
            nn.LayerNorm(d_model),
            nn.LayerNorm(d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, t: torch.Tensor, s: torch.Tensor, pos_t: torch.Tensor, pos_s: torch.Tensor, term: AttnTerm
    ) -> torch.Tensor:
        s = self.norm1(s + self.drop(self.cross(s + pos_s, t + pos_t, t, term)))
        s = self.norm2(s + self.drop(self.ffn(s)))
        return self.final(s)


class FeatureFusion(nn.Module):
    """``n_layers`` :class:`FusionLayer` + one :class:`DecoderLayer`; returns the fused search tokens."""

    def __init__(
        self,
        d_model: int = 192,
        n_heads: int = 8,
        ffn_dim: int = 192,
        dropout: float = 0.1,
        n_layers: int = 3,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(FusionLayer(d_model, n_heads, ffn_dim, dropout) for _ in range(n_layers))
        self.decoder = DecoderLayer(d_model, n_heads, ffn_dim, dropout)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(
        self,
        t: torch.Tensor,
        s: torch.Tensor,
        pos_t: torch.Tensor,
        pos_s: torch.Tensor,
        terms: AttentionTerms,
    ) -> torch.Tensor:
        """``t (B, L, C)`` kept template tokens, ``s (B, Ns, C)`` search tokens, ``pos_*`` the same shapes
        -> fused search tokens ``(B, Ns, C)``."""
        for layer in self.layers:
            t, s = layer(t, s, pos_t, pos_s, terms)
        return self.decoder(t, s, pos_t, pos_s, terms.dec)
