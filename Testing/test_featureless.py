"""Featureless surroundings: the texture measure, and the longer first refine level it gives a lesion."""

from __future__ import annotations

import numpy as np

import TLTTrackerLib.multistart as multistart
from TLTTrackerLib.featureless import refine_for_surroundings, surroundings_std_hu
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.multistart import track_point
from TLTTrackerLib.multistart_config import MultiStartConfig
from TLTTrackerLib.refine import RefineConfig
from TLTTrackerLib.transforms import AffineTransform


def _organ(rng: np.random.Generator) -> Volume:
    """A 160 mm cube of 2 mm voxels: homogeneous 60 HU 'liver' (noise σ 5 HU) in x < 0, textured lung-like
    tissue (-1000..0 HU blocks) in x ≥ 0; origin at (-80, -80, -80) so that LPS (0, 0, 0) is the cube's centre."""
    a = (60.0 + 5.0 * rng.standard_normal((80, 80, 80))).astype(np.float32)
    blocks = rng.uniform(-1000.0, 0.0, (20, 20, 10)).repeat(4, 0).repeat(4, 1).repeat(4, 2)
    a[:, :, 40:] = blocks
    return Volume(a, origin_lps_mm=[-80.0, -80.0, -80.0], spacing_mm=[2.0, 2.0, 2.0])


def test_texture_is_low_inside_a_homogeneous_organ_and_high_in_textured_tissue_or_at_the_scan_edge(rng):
    vol = _organ(rng)
    inside_organ = np.array([-40.0, 0.0, 0.0])
    assert surroundings_std_hu(vol, inside_organ) < 10.0
    assert surroundings_std_hu(vol, np.array([40.0, 0.0, 0.0])) > 200.0
    # 10 mm from the organ's face at the scan's edge: outside reads as air, an edge like any other
    assert surroundings_std_hu(vol, np.array([-40.0, 0.0, -70.0])) > 200.0


def test_only_a_featureless_lesion_gets_the_longer_first_level(rng):
    vol, refine = _organ(rng), RefineConfig()
    longer = refine_for_surroundings(refine, vol, np.array([-40.0, 0.0, 0.0]), 320, 30.0)
    assert longer.levels[0].iterations == 320 and longer.levels[1:] == refine.levels[1:]
    assert longer.levels[0].spacing_mm == refine.levels[0].spacing_mm
    assert refine_for_surroundings(refine, vol, np.array([40.0, 0.0, 0.0]), 320, 30.0) is refine
    assert refine_for_surroundings(refine, vol, np.array([-40.0, 0.0, 0.0]), 0, 30.0) is refine  # off
    assert refine_for_surroundings(refine, vol, np.array([-40.0, 0.0, 0.0]), 320, 1.0) is refine  # threshold


def test_track_point_refines_and_checks_a_featureless_lesion_with_the_longer_first_level(rng, monkeypatch):
    """Every refinement of the lesion, forward and back-tracking, runs the first level ``featureless_iterations``
    times inside the organ, and the default count in textured tissue."""
    vol = _organ(rng)
    seen: list[int] = []
    real = multistart.refine_center

    def spy(*args, **kwargs):
        config = kwargs.get("config", args[5] if len(args) > 5 else None)
        seen.append(config.levels[0].iterations)
        return real(*args, **kwargs)

    monkeypatch.setattr(multistart, "refine_center", spy)
    identity = AffineTransform(np.eye(3), np.zeros(3))
    config = MultiStartConfig(coarse=None)
    track_point(vol, vol, np.array([-40.0, 0.0, 0.0]), 5.0, identity, config=config)
    assert seen and set(seen) == {320}
    seen.clear()
    track_point(vol, vol, np.array([40.0, 0.0, 0.0]), 5.0, identity, config=config)
    assert seen and set(seen) == {RefineConfig().levels[0].iterations}
