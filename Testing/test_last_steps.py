"""Tests of TLTTrackerLib.last_steps' helpers: the agreement term's distance, which lesions snap to their template,
and the frame a nodule's template is snapped in. The steps run through ``track_point`` in test_multistart.py; each
step's own rules are tested in test_lesion_template.py, test_visible_lesion.py and test_lesion_centre.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from textured_ct import textured_ct

from TLTTrackerLib.deformable import PairField
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.last_steps import agreement_mm, snaps_to_template
from TLTTrackerLib.multistart import track_point
from TLTTrackerLib.multistart_config import MultiStartConfig
from TLTTrackerLib.refine import DemonsLevel, RefineConfig, RefineResult
from TLTTrackerLib.resample import warp_volume
from TLTTrackerLib.transforms import AffineTransform


def test_agreement_is_the_distance_to_the_nearest_other_refined_result():
    def record(x_mm: float, **extra) -> dict:
        return {"result": RefineResult(np.array([x_mm, 0.0, 0.0]), (0.9,), 0.9), "miss_mm": 3.0, **extra}

    kept = record(0.0)
    at = kept["result"].center_lps_mm
    assert agreement_mm(at, [kept], exclude=kept) is None  # the first start ended the search
    assert agreement_mm(at, [record(9.0), kept, record(2.5)], exclude=kept) == pytest.approx(2.5)
    # a snapped result reuses the field start's refinement: it is no second opinion
    assert agreement_mm(at, [kept, record(1.0, snapped=True), record(6.0)], exclude=kept) == pytest.approx(6.0)
    assert agreement_mm(at, [kept, record(1.0, snapped=True)], exclude=kept) is None
    # a point moved off every result (the visible snap): every refined result counts, its own old one too
    assert agreement_mm(np.array([4.0, 0.0, 0.0]), [kept, record(9.0)]) == pytest.approx(4.0)


def test_only_small_lesions_snap_to_their_template_and_only_with_a_search():
    config = MultiStartConfig()
    assert snaps_to_template(config.snap_max_radius_mm, config)
    assert not snaps_to_template(config.snap_max_radius_mm + 0.5, config)
    assert not snaps_to_template(1.5, replace(config, snap_mm=0.0))


def test_a_nodule_in_sheared_tissue_snaps_in_the_pair_fields_frame():
    """The follow-up is the baseline stretched and sheared about a 2 mm nodule (x 1.35, y 0.85, shear 0.15) and
    moved; the registration knows the move only (its linear part: I) and puts the point 1.2 mm off, as does the pair
    field, which knows the shape. A registration that does not move leaves the point there. In the field's frame
    the template matches the result better, and its peak is the nodule; in the affine's frame the stretched
    texture matches worse everywhere and the point stays 1.2 mm off (``field_frame_snap`` None)."""
    baseline = textured_ct(5, (40, 80, 80), (0.8, 1.6, 1.6), 2.0)
    c = baseline.index_kji_to_lps([20, 40, 40])
    shape, shift, off = np.array([[1.35, 0.15, 0.0], [0.0, 0.85, 0.0], [0.0, 0.0, 1.0]]), np.array([3.0, -2, 1]), \
        np.array([0.8, -0.7, 0.5])
    truth = AffineTransform(shape, c + shift - shape @ c)
    followup = warp_volume(baseline, baseline, truth.inverse())
    affine = AffineTransform(np.eye(3), shift + off)
    grid = Volume(np.zeros((20, 40, 40), np.float32), origin_lps_mm=[-80, -80, -80], spacing_mm=[4.0, 4.0, 8.0])
    nodes = grid.index_kji_to_lps(np.indices((20, 40, 40)).reshape(3, -1).T)
    # y + u(y) = affine(c') where y = truth(c') - off: u(y) = affine(truth⁻¹(y + off)) - y
    u = affine.apply(truth.inverse().apply(nodes + off)) - nodes
    field = PairField(affine, u.reshape(20, 40, 40, 3).astype(np.float32), grid)
    target = truth.apply(c)
    assert np.linalg.norm(field.to_followup(c) - target) == pytest.approx(1.17, abs=0.02)
    still = MultiStartConfig(coarse=None, refine=RefineConfig(levels=(DemonsLevel(4.0, 40.0, 0, 6.0),),
                                                              affine_iterations=0))
    out = track_point(baseline, followup, c, 2.0, affine, config=still, pair_field=field)
    assert np.linalg.norm(out.center_lps_mm - target) < 0.4
    plain = track_point(baseline, followup, c, 2.0, affine, config=replace(still, field_frame_snap=None),
                        pair_field=field)
    assert "snap_mm" not in plain.info and np.linalg.norm(plain.center_lps_mm - target) > 1.1
    # the confidence's NCC is the affine frame's either way, here higher on the nodule than beside it
    assert 0.8 < out.info["lesion_ncc"] < 0.9 and plain.info["lesion_ncc"] < 0.7
