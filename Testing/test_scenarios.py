"""Scenario suite: the new PairConfig knobs (contrast change, FOV edge, per-pair motion scale) and the named
scenarios on real CT (skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_file
from TLTTrackerLib import scenarios
from TLTTrackerLib.contrast import check_monotone, draw_contrast, enhancement_change
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.synthetic import PairConfig, make_pair, plan_pair, render_followup

SMALL = dict(shape_kji=(40, 72, 72), spacing_mm=(3.0, 3.0, 5.0), n_lesions=3)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(5, **SMALL)


def test_new_knobs_off_by_default_keep_the_random_stream(phantom):
    """Explicit default values of the new fields give the very same pair as PairConfig()."""
    vol, lesions = phantom
    a = make_pair(vol, lesions, 3)
    b = make_pair(vol, lesions, 3, PairConfig(nonrigid_rms_mm_range=None, contrast_change_hu_range=(0.0, 0.0),
                                              fov_edge_offset_mm_range=None))
    assert np.array_equal(a.followup.array, b.followup.array)
    assert "contrast" not in a.info and "fov_edge" not in a.info


def test_contrast_change_moves_soft_tissue_only():
    contrast = draw_contrast(np.random.default_rng(0), (40.0, 40.0), 0.0, (0.0, 250.0))
    out = enhancement_change(np.array([-1000, -100, 0, 60, 125, 250, 700], np.float32).reshape(1, 1, 7),
                             Volume(np.zeros((1, 1, 7), np.int16)), contrast)
    assert out[0, 0, [0, 1, 2, 5, 6]].tolist() == [-1000, -100, 0, 250, 700]  # air, fat, bone unchanged
    assert out[0, 0, 4] == pytest.approx(165.0)  # window centre: the full change
    assert 60 < out[0, 0, 3] < 100


def test_contrast_modulation_is_physical_so_subgrids_agree(phantom):
    vol, lesions = phantom
    cfg = PairConfig(contrast_change_hu_range=(30.0, 40.0), contrast_spatial_variation=0.2, noise_hu_range=(0, 0))
    plan = plan_pair(vol, lesions, 7, cfg)
    full = render_followup(plan, plan.grid, np.random.default_rng(0))
    k0, j0, i0 = 3, 5, 7
    origin = plan.grid.index_kji_to_lps(np.array([k0, j0, i0], float))
    sub = Volume(np.zeros((6, 10, 12), np.int8), origin, plan.grid.spacing_mm, plan.grid.direction)
    part = render_followup(plan, sub, np.random.default_rng(1))
    assert np.array_equal(part.array, full.array[k0:k0 + 6, j0:j0 + 10, i0:i0 + 12])
    plain = render_followup(plan_pair(vol, lesions, 7, PairConfig(noise_hu_range=(0, 0))), plan.grid,
                            np.random.default_rng(0))
    assert np.abs(full.array.astype(int) - plain.array).max() > 10  # the change is there


def test_non_monotone_contrast_is_refused():
    with pytest.raises(ValueError, match="monotone"):
        check_monotone(100.0, 0.0, (0.0, 250.0))
    with pytest.raises(ValueError, match="monotone"):
        PairConfig(contrast_change_hu_range=(-90.0, 90.0))


def test_fov_edge_puts_one_lesion_at_the_edge(phantom):
    vol, lesions = phantom
    seen_outside = seen_inside = 0
    for seed in range(6):
        pair = make_pair(vol, lesions, seed, PairConfig(fov_edge_offset_mm_range=(-15.0, 5.0)))
        edge = pair.info["fov_edge"]
        les = next(x for x in pair.followup_lesions if x.id == edge["lesion_id"])
        z = (les.center_lps_mm - pair.followup.origin_lps_mm) @ pair.followup.direction[:, 2]
        step = pair.followup.spacing_mm[2]
        lo, hi = -step / 2, (pair.followup.shape_kji[0] - 0.5) * step
        inside_by = hi - z if edge["side"] == "superior" else z - lo
        assert inside_by == pytest.approx(edge["offset_mm"], abs=1e-6)
        outside = pair.outside_followup_ids()
        assert (edge["lesion_id"] in outside) == (edge["offset_mm"] < 0)
        seen_outside += edge["offset_mm"] < 0
        seen_inside += edge["offset_mm"] >= 0
    assert seen_outside and seen_inside


def test_per_pair_motion_scale_is_drawn_in_range(phantom):
    vol, lesions = phantom
    cfg = PairConfig(nonrigid_rms_mm_range=(5.0, 30.0))
    refs = []
    for seed in range(4):
        info = plan_pair(vol, lesions, seed, cfg).info
        refs.append(info["nonrigid_rms_mm"] * 60.0 / info["nonrigid_correlation_mm"])
    assert all(5.0 <= r <= 30.0 for r in refs) and np.ptp(refs) > 1.0
    with pytest.raises(ValueError, match="nonrigid_rms_mm_range"):
        PairConfig(nonrigid_rms_mm_range=(10.0, 5.0))


def test_scenario_registry():
    assert set(scenarios.SCENARIOS) == {"standard", "large-motion", "extreme", "abdomen", "thick-slice", "fov-edge"}
    assert scenarios.pair_config("large-motion") is scenarios.LARGE_MOTION_PAIR_CONFIG
    assert scenarios.pair_config("standard") == PairConfig()
    assert min(scenarios.pair_config("thick-slice").slice_thickness_mm_choices) >= 5.0
    assert not set(scenarios.TUNING_SEEDS) & set(scenarios.REPORT_SEEDS)
    with pytest.raises(Exception, match="unknown scenario"):
        scenarios.scenario("nope")


@pytest.mark.shared_data
def test_abdomen_lesions_lie_in_soft_tissue():
    shared_file("ct/totalseg_example_ct_3mm.nii.gz")
    vol, lesions = scenarios.case_lesions("totalseg_example_ct_3mm", "abdomen")
    assert len(lesions) >= 6
    hu = [float(vol.array[tuple(np.rint(vol.lps_to_index_kji(les.center_lps_mm)).astype(int))]) for les in lesions]
    assert all(-150 < v < 300 for v in hu), hu

