"""Focal token loss and centre L1 against hand-computed values."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from TLTTrackerLib.losses import center_l1_loss, focal_token_loss, l1_scale, tracking_loss  # noqa: E402


def _bce(s, y):
    p = 1 / (1 + math.exp(-s))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_focal_loss_hand_computed():
    logits = torch.tensor([[0.5, -1.0, 2.0]])
    labels = torch.tensor([[0.9, 0.3, 0.0]])  # positive = token 0 (the peak, < 1)
    p = [1 / (1 + math.exp(-s)) for s in (0.5, -1.0, 2.0)]
    expected = (
        (1 - p[0]) ** 2 * _bce(0.5, 0.9) * 0.9
        + p[1] ** 2 * _bce(-1.0, 0.3) * (1 - 0.3) ** 2
        + p[2] ** 2 * _bce(2.0, 0.0) * 1.0
    ) / 3
    assert focal_token_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_prefers_the_right_peak_and_averages_the_batch():
    labels = torch.tensor([[0.1, 0.95, 0.2, 0.0]])
    good = torch.tensor([[-4.0, 4.0, -4.0, -4.0]])
    bad = torch.tensor([[4.0, -4.0, -4.0, -4.0]])
    assert focal_token_loss(good, labels) < 0.1 * focal_token_loss(bad, labels)
    both = focal_token_loss(torch.cat([good, bad]), labels.repeat(2, 1))
    assert both.item() == pytest.approx(
        (focal_token_loss(good, labels) + focal_token_loss(bad, labels)).item() / 2
    )


def test_l1_spaces():
    size = torch.tensor([[40.0, 200.0, 200.0]])
    pred, target = torch.tensor([[0.5, 0.5, 0.5]]), torch.tensor([[0.6, 0.52, 0.5]])
    # normalised: (0.1 + 0.02 + 0) / 3 ; isotropic: (0.1·0.2 + 0.02) / 3 ; mm: (4 + 4) / 3
    assert center_l1_loss(pred, target, l1_scale(size, "normalized")).item() == pytest.approx(0.04, rel=1e-5)
    assert center_l1_loss(pred, target, l1_scale(size, "isotropic")).item() == pytest.approx(
        0.04 / 3, rel=1e-5
    )
    assert center_l1_loss(pred, target, l1_scale(size, "mm")).item() == pytest.approx(8 / 3, rel=1e-5)
    with pytest.raises(ValueError):
        l1_scale(size, "voxels")


def test_tracking_loss_parts_and_gradient():
    logits = torch.zeros(2, 8, requires_grad=True)
    center = torch.full((2, 3), 0.5, requires_grad=True)
    batch = {
        "target_heatmap": torch.rand(2, 2, 2, 2),
        "target_center": torch.tensor([[0.5, 0.5, 1.3], [0.4, 0.5, 0.5]]),  # 1.3: truth outside, clamped to 1
        "search_size_mm": torch.tensor([[32.0, 32.0, 32.0]] * 2),
    }
    total, parts = tracking_loss({"logits": logits, "center": center}, batch, 1.0, 2.0)
    assert set(parts) == {"loss", "focal", "l1"}
    assert parts["l1"] == pytest.approx((0.5 + 0.1) / 6, rel=1e-5)
    assert parts["loss"] == pytest.approx(parts["focal"] + 2 * parts["l1"], rel=1e-6)
    total.backward()
    assert logits.grad.abs().sum() > 0 and center.grad.abs().sum() > 0
