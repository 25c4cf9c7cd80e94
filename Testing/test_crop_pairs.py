"""Crop-only synthetic training items: the rendered box gives the crops of the full follow-up, items are
deterministic and well formed, phase sources and appearance changes behave."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from TLTTrackerLib.config import PreprocessConfig  # noqa: E402
from TLTTrackerLib.data.crop_pairs import (  # noqa: E402
    CropPairDataset,
    change_appearance,
    crop_box_grid,
    motion_stats,
)
from TLTTrackerLib.data.dataset import Augment, collate_samples  # noqa: E402
from TLTTrackerLib.phantom import make_phantom  # noqa: E402
from TLTTrackerLib.preprocessing import normalized_to_lps, sample_crop  # noqa: E402
from TLTTrackerLib.synthetic import PairConfig, make_pair, plan_pair, render_followup  # noqa: E402

PRE = PreprocessConfig(spacing_mm=2.0, search_size_mm=(32, 32, 32), template_size_mm=(16, 16, 16))
QUIET = PairConfig(noise_hu_range=(0.0, 0.0), gain_range=(1.0, 1.0), offset_hu_range=(0.0, 0.0))


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(3, shape_kji=(40, 64, 64), spacing_mm=(2.0, 2.0, 2.5), n_lesions=2)


def test_rendered_box_gives_the_crop_of_the_full_followup(phantom):
    volume, lesions = phantom
    full = make_pair(volume, lesions, 5, QUIET)
    plan = plan_pair(volume, lesions, 5, QUIET)
    assert np.allclose(plan.followup_lesions[0].center_lps_mm, full.followup_lesions[0].center_lps_mm)
    center = plan.followup_lesions[0].center_lps_mm + np.array([3.0, -2.0, 4.0])
    box = crop_box_grid(plan.grid, center, PRE.search_size_mm)
    part = render_followup(plan, box, np.random.default_rng(0))
    assert box.array.size < plan.grid.array.size
    a = sample_crop(full.followup, center, PRE.search_size_mm, 2.0)
    b = sample_crop(part, center, PRE.search_size_mm, 2.0)
    assert np.abs(a - b).max() <= 1.0  # int16 rounding of the same values


def test_box_outside_the_grid_is_none(phantom):
    volume, lesions = phantom
    plan = plan_pair(volume, lesions, 1)
    assert crop_box_grid(plan.grid, plan.grid.center_lps_mm() + 1e4, (32, 32, 32)) is None


def test_items_are_deterministic_well_formed_and_decode_to_the_truth(phantom):
    volume, _ = phantom
    ds = CropPairDataset([(volume,)], 4, PRE, QUIET, nonrigid_rms_mm=(5.0, 15.0), lesions_per_pair=3,
                         start_jitter_mm=0.0, augment=Augment(crop_jitter_mm=4.0), seed=2)
    a, b = ds[1], ds[1]
    assert len(a) == 3
    for x, y in zip(a, b):
        assert np.array_equal(x["search_image"], y["search_image"])
        assert x["search_image"].shape == (1, 16, 16, 16) and x["template_image"].shape == (1, 8, 8, 8)
        decoded = normalized_to_lps(x["target_center"], x["meta"])
        assert np.allclose(decoded, x["meta"]["target_lps_mm"], atol=1e-3)
    ds.set_epoch(1)
    assert not np.array_equal(ds[1][0]["search_image"], a[0]["search_image"])
    batch = collate_samples([a])
    assert batch["search_image"].shape[0] == 3


def test_phase_source_is_rendered_from_the_other_scan(phantom):
    volume, lesions = phantom
    other = volume.with_array((volume.array.astype(np.int32) + 100).clip(-1024, 3071).astype(np.int16))
    plan = plan_pair(volume, lesions, 4, QUIET)
    box = crop_box_grid(plan.grid, plan.followup_lesions[0].center_lps_mm, (24, 24, 24))
    base = render_followup(plan, box, np.random.default_rng(0)).array.astype(float)
    moved = render_followup(plan, box, np.random.default_rng(0), source=other).array.astype(float)
    body = base > -500
    assert np.median((moved - base)[body]) == pytest.approx(100.0, abs=2.0)
    ds = CropPairDataset([(volume, other)], 6, PRE, QUIET, phase_pair_fraction=1.0, lesions_per_pair=1)
    metas = [ds[i][0]["meta"] for i in range(6)]
    assert all(m["baseline_volume"] != m["followup_volume"] for m in metas)


def test_appearance_change_keeps_grid_air_and_bone(phantom):
    volume, _ = phantom
    rng = np.random.default_rng(0)
    changed = [change_appearance(volume, rng) for _ in range(6)]
    for c in changed:
        assert c.array.shape == volume.array.shape and c.array.dtype == np.int16
        assert np.array_equal(c.origin_lps_mm, volume.origin_lps_mm)
    assert any(not np.array_equal(c.array, volume.array) for c in changed)


def test_motion_stats_and_log_uniform_scale(phantom):
    volume, _ = phantom
    small = CropPairDataset([(volume,)], 6, PRE, QUIET, nonrigid_rms_mm=(2.0, 2.0), lesions_per_pair=2,
                            start_jitter_mm=0.0)
    large = dataclasses.replace(QUIET)
    big = CropPairDataset([(volume,)], 6, PRE, large, nonrigid_rms_mm=(20.0, 20.0), lesions_per_pair=2,
                          start_jitter_mm=0.0)
    s, b = motion_stats(small, 6), motion_stats(big, 6)
    assert s["n"] == 12 and set(s) >= {"median_mm", "p90_mm", "p99_mm", "max_mm", "inside_window_margin8"}
    assert b["median_mm"] > s["median_mm"]
