"""The TLT network: parameter count, shapes and masks for any batch, SSS fallback, RAAM modes, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from TLTTrackerLib.config import ModelConfig  # noqa: E402
from TLTTrackerLib.heatmap import gaussian_grid  # noqa: E402
from TLTTrackerLib.model import (  # noqa: E402
    build_tracker,
    count_parameters,
    select_template_tokens,
    tokens_to_volume,
    volume_to_tokens,
)
from TLTTrackerLib.model.fusion import Attention, AttnTerm  # noqa: E402
from TLTTrackerLib.model.position_encoding import grid_coordinates, sine_encoding  # noqa: E402


pytestmark = pytest.mark.usefixtures("torch_one_thread")


TINY = ModelConfig(
    backbone_channels=(8, 16, 16, 24),
    norm_groups=4,
    d_model=24,
    n_heads=4,
    ffn_dim=24,
    fusion_layers=2,
    sss_min_tokens=3,
)


def make_batch(sigmas_vox, t_shape=(16, 32, 32), s_shape=(16, 32, 40), seed=0, stride=8):
    """A batch with one template prior per sigma (different sigmas -> different kept-token counts)."""
    g = torch.Generator().manual_seed(seed)
    b = len(sigmas_vox)
    t_grid = tuple(n // stride for n in t_shape)
    s_grid = tuple(n // stride for n in s_shape)
    t_center = (np.array(t_shape) - 1) / 2
    s_center = (np.array(s_shape) - 1) / 2 + np.array([1.0, -3.0, 2.0])
    return {
        "template_image": torch.rand((b, 1, *t_shape), generator=g),
        "search_image": torch.rand((b, 1, *s_shape), generator=g),
        "template_prior": torch.stack(
            [torch.from_numpy(gaussian_grid(t_center, s, t_grid, stride)) for s in sigmas_vox]
        ),
        "search_prior": torch.stack(
            [torch.from_numpy(gaussian_grid(s_center, s, s_grid, stride)) for s in sigmas_vox]
        ),
        "search_start": torch.tensor(
            np.array([(s_center + 0.5) / np.array(s_shape)] * b), dtype=torch.float32
        ),
        "template_origin": torch.tensor(np.array([s_center - t_center] * b), dtype=torch.float32),
    }


def take(batch, i):
    return {k: v[i : i + 1] for k, v in batch.items()}


def test_parameter_count_matches_the_paper():
    default = count_parameters(build_tracker(ModelConfig()))
    assert abs(default - 5.99e6) / 5.99e6 < 0.05
    net = build_tracker(ModelConfig(norm="none"))
    parts = {name: count_parameters(m) for name, m in net.named_children()}
    # method-notes §1.8: backbone 3,458,976, fusion 2,453,760, input_proj 37,056; our head predicts only the
    # centre (3 outputs, not 6), so 5,988,259 - 579 - 39 = 5,987,641 in all
    assert parts == {"backbone": 3_458_976, "input_proj": 37_056, "fusion": 2_453_760, "head": 37_849}
    assert count_parameters(net) == 5_987_641
    assert default == 5_987_641 + 2 * 1024  # GroupNorm affine parameters


def test_layout_functions_are_inverse_and_c_order():
    x = torch.arange(2 * 3 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 2, 3, 4)
    tokens = volume_to_tokens(x)
    assert tokens.shape == (2, 24, 3)
    assert torch.equal(tokens_to_volume(tokens, (2, 3, 4)), x)
    coords = grid_coordinates((2, 3, 4)).long()
    n = 17
    z, y, xx = coords[n].tolist()
    assert torch.equal(tokens[:, n], x[:, :, z, y, xx])


def test_sine_encoding_matches_detr_normalisation():
    enc = sine_encoding(grid_coordinates((5, 25, 25)), (5, 25, 25), 192)
    assert enc.shape == (3125, 192)
    # token (z=2, y=0, x=0): z position = 2π·3/5; first z features are sin, cos of that at frequency 1
    n = 2 * 625
    angle = 2 * math.pi * 3 / 5
    assert enc[n, 0].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert enc[n, 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert enc[n, 64].item() == pytest.approx(math.sin(2 * math.pi / 25), abs=1e-6)  # y starts at 64


def test_sss_threshold_and_fallback():
    prior = torch.tensor([[0.1, 0.75, 0.9, 0.2, 0.71], [0.1, 0.2, 0.3, 0.65, 0.05], [0.0] * 5])
    index, padding, counts = select_template_tokens(prior, 0.7, 2)
    assert counts.tolist() == [3, 2, 2]  # row 0 passes 3; rows 1-2 fall back to the top 2
    assert index.shape == (3, 3) and padding.tolist() == [
        [False] * 3,
        [False, False, True],
        [False, False, True],
    ]
    assert index[0].tolist() == [1, 2, 4] and sorted(index[1, :2].tolist()) == [2, 3]
    _, _, all_counts = select_template_tokens(prior, 0.0, 2)
    assert all_counts.tolist() == [5, 5, 5]


def test_forward_shapes_batch_1_and_2_with_different_token_counts():
    torch.manual_seed(0)
    net = build_tracker(TINY).eval()
    batch = make_batch([2.0, 12.0])  # a tiny prior (fallback: 3 tokens) and a wide one (many tokens)
    with torch.no_grad():
        out2 = net(batch)
        out_a = net(take(batch, 0))
        out_b = net(take(batch, 1))
    ns = 2 * 4 * 5
    assert out2["logits"].shape == (2, ns) and out2["token_centers"].shape == (2, ns, 3)
    assert out2["center"].shape == (2, 3) and bool(((out2["center"] > 0) & (out2["center"] < 1)).all())
    counts = out2["template_token_count"].tolist()
    assert counts[0] == 3 and counts[1] > 3
    # padding is masked: each sample in the batch gives what it gives alone
    for i, single in enumerate((out_a, out_b)):
        for key in ("logits", "center", "token_centers"):
            torch.testing.assert_close(out2[key][i : i + 1], single[key], atol=2e-5, rtol=1e-4)


def test_template_and_search_crops_of_other_shapes():
    net = build_tracker(TINY).eval()
    batch = make_batch([9.0], t_shape=(16, 24, 24), s_shape=(24, 32, 32))
    with torch.no_grad():
        out = net(batch)
    assert out["logits"].shape == (1, 3 * 4 * 4)
    bad = dict(batch, search_prior=batch["search_prior"][:, :2])
    with pytest.raises(ValueError, match="search_prior"):
        net(bad)


def test_eval_is_deterministic_and_train_mode_uses_dropout():
    torch.manual_seed(1)
    net = build_tracker(TINY)
    batch = make_batch([10.0, 10.0])
    net.eval()
    with torch.no_grad():
        a, b = net(batch), net(batch)
    assert torch.equal(a["logits"], b["logits"]) and torch.equal(a["center"], b["center"])
    net.train()
    c = net(batch)
    assert not torch.allclose(a["logits"], c["logits"])


@pytest.mark.parametrize("mode", ["logit_bias", "paper_literal", "off"])
def test_raam_modes_run_backprop_and_use_the_prior_as_documented(mode):
    torch.manual_seed(2)
    cfg = ModelConfig(**{**TINY.to_dict(), "backbone_channels": (8, 16, 16, 24), "raam_mode": mode})
    net = build_tracker(cfg)
    batch = make_batch([3.0, 11.0])
    out = net(batch)
    (out["logits"].mean() + out["center"].sum()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == []
    net.eval()
    moved = dict(batch, search_prior=batch["search_prior"].roll(1, dims=-1))
    with torch.no_grad():
        same = torch.allclose(net(batch)["logits"], net(moved)["logits"])
    assert same == (mode == "off")


def test_attention_terms_against_explicit_formulas():
    torch.manual_seed(3)
    att = Attention(16, 4, 0.0).eval()
    q, k = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    bias = torch.randn(2, 7)
    bias[1, 5:] = float("-inf")  # padded keys of sample 1
    q_w, k_w = torch.rand(2, 5), torch.rand(2, 7)
    k_w[1, 5:] = 0
    got = att(q, k, k, AttnTerm(bias, (q_w, k_w)))

    def heads(x, lin):
        return lin(x).view(2, -1, 4, 4).transpose(1, 2)

    qh, kh, vh = heads(q, att.q), heads(k, att.k), heads(k, att.v)
    w = torch.softmax(qh @ kh.transpose(-1, -2) / 2.0 + bias[:, None, None, :], dim=-1)
    w = w + (q_w[:, :, None] * k_w[:, None, :])[:, None]  # (softmax + M) with M = q_w ⊗ k_w
    expected = att.out((w @ vh).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
def test_cuda_bf16_forward_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    torch.manual_seed(4)
    net = build_tracker(TINY).eval()
    batch = make_batch([4.0, 12.0])
    with torch.no_grad():
        ref = net(batch)["center"]
        gpu = net.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            got = gpu({k: v.cuda() for k, v in batch.items()})["center"].cpu()
    torch.testing.assert_close(got, ref, atol=2e-2, rtol=0)


def test_token_grid_centers_are_the_voxel_centres_of_each_token():
    from TLTTrackerLib.model.heads import token_grid_centers

    centers = token_grid_centers((2, 3, 4), torch.device("cpu"))  # (24, 3), C order
    assert centers.shape == (24, 3)
    # token (1, 2, 3) of a stride-8 grid covers crop voxels 8..15, 16..23, 24..31 of a (16, 24, 32) crop:
    # centre voxel (11.5, 19.5, 27.5) -> normalised (voxel + 0.5) / size
    expected = (np.array([11.5, 19.5, 27.5]) + 0.5) / np.array([16, 24, 32])
    np.testing.assert_allclose(centers[-1].numpy(), expected, atol=1e-6)


def test_token_offset_head_starts_at_the_crop_centre_and_trains_the_logits():
    from TLTTrackerLib.model.heads import CenterHead

    torch.manual_seed(0)
    head = CenterHead(24, "token_offset")
    grid = (3, 4, 5)
    tokens = torch.zeros(2, 60, 24)  # equal tokens: uniform softmax, zero offsets
    start = torch.tensor([[0.2, 0.9, 0.4], [0.5, 0.5, 0.5]])
    out = head(tokens, start, grid)
    np.testing.assert_allclose(out["center"].detach().numpy(), 0.5, atol=1e-6)  # the search crop centre
    assert float(torch.sigmoid(out["logits"].detach()).mean()) == pytest.approx(0.1, abs=0.01)  # focal prior init

    tokens = torch.randn(2, 60, 24, requires_grad=True)
    out = head(tokens, start, grid)
    out["center"].sum().backward()
    assert head.classify.weight.grad.abs().sum() > 0  # the centre's L1 reaches the token classifier
    with pytest.raises(ValueError, match="head mode"):
        CenterHead(24, "absolute")


def test_token_offset_network_forward_and_backward():
    net = build_tracker(ModelConfig(**{**TINY.__dict__, "head_mode": "token_offset"}))
    out = net(make_batch([1.0, 2.0]))
    assert out["center"].shape == (2, 3)
    assert bool(((out["center"] >= 0) & (out["center"] <= 1)).all())
    out["center"].sum().backward()
    assert net.backbone.stem[0].weight.grad is not None


def test_match_prior_adds_the_template_search_similarity_to_the_logits():
    from TLTTrackerLib.model.tracker import match_similarity

    t = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])  # (1, 3, 2): third token is padding (weight 0)
    w = torch.tensor([[1.0, 1.0, 0.0]])
    s = torch.tensor([[[1.0, 1.0], [1.0, -1.0], [-2.0, -2.0]]])  # (1, 3, 2)
    np.testing.assert_allclose(match_similarity(t, w, s).numpy(), [[1.0, 0.0, -1.0]], atol=1e-6)

    net = build_tracker(ModelConfig(**{**TINY.__dict__, "head_mode": "token_offset", "match_prior": True}))
    out = net(make_batch([1.0, 2.0]))
    out["center"].sum().backward()
    from TLTTrackerLib.model.tracker import MATCH_GAIN, MATCH_INIT

    assert net.match_scale.grad is not None
    assert float(net.match_scale.detach()) * MATCH_GAIN == pytest.approx(MATCH_INIT)
