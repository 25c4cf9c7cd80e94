"""Painted lesions (TLTTrackerLib.painted_lesions): visible nodules and soft-tissue lesions in a CT, and the
scenario cases that carry them (the real-CT test skips without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_file
from TLTTrackerLib import scenarios
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.painted_lesions import paint_lesions


def chest(with_lungs: bool = True) -> Volume:
    """A 2 mm box 'chest': soft tissue (40 HU, noise σ 10) in air, two lungs (−850 HU) inside, a spine (700 HU)."""
    rng = np.random.default_rng(3)
    arr = np.full((80, 100, 120), -1000.0)
    arr[:, 10:90, 10:110] = 40.0
    if with_lungs:
        arr[:, 25:55, 18:52] = -850.0
        arr[:, 25:55, 68:102] = -850.0
    arr[:, 78:88, 55:65] = 700.0
    arr += rng.normal(0.0, 10.0, arr.shape)
    return Volume(arr.astype(np.int16), origin_lps_mm=np.array([-120.0, -100.0, -80.0]), spacing_mm=np.full(3, 2.0))


def hu_at(vol: Volume, centre: np.ndarray, radius_mm: float) -> np.ndarray:
    """Voxel values within ``radius_mm`` of ``centre``."""
    k, j, i = np.indices(vol.shape_kji)
    pts = vol.index_kji_to_lps(np.stack([k, j, i], -1).reshape(-1, 3).astype(float))
    return vol.array.reshape(-1)[np.linalg.norm(pts - centre, axis=1) <= radius_mm].astype(float)


def test_lesions_are_painted_where_they_belong_and_the_input_is_kept():
    vol = chest()
    before = vol.array.copy()
    avoid = [np.array([0.0, 0.0, 0.0])]
    painted, lesions = paint_lesions(vol, np.random.default_rng(0), avoid=avoid)
    assert np.array_equal(vol.array, before)
    assert painted.array.dtype == vol.array.dtype and painted.same_geometry(vol)
    kinds = [les.id[0] for les in lesions]
    assert kinds.count("L") == 3 and len(lesions) == 6 and set(kinds) == {"L", "S"}
    centres = [les.center_lps_mm for les in lesions] + avoid
    gaps = [np.linalg.norm(a - b) for n, a in enumerate(centres) for b in centres[n + 1:]]
    assert min(gaps) >= 40.0
    for les in lesions:
        inside = hu_at(painted, les.center_lps_mm, 0.5 * les.radius_mm).mean()
        was = hu_at(vol, les.center_lps_mm, 0.5 * les.radius_mm).mean()
        if les.id.startswith("L"):
            assert 3.0 <= les.radius_mm <= 8.0 and was < -800 and -45 < inside < 65, (les, was, inside)
        else:
            assert 5.0 <= les.radius_mm <= 12.0 and 20 < abs(inside - was) < 65, (les, was, inside)
    changed = np.argwhere(painted.array != vol.array)
    dist = np.min([np.linalg.norm(painted.index_kji_to_lps(changed.astype(float)) - les.center_lps_mm, axis=1)
                   / les.radius_mm for les in lesions], axis=0)
    assert len(changed) and dist.max() < 1.6  # nothing painted beyond a lesion (semi-axis ≤ 1.35 r, edge 0.5 mm)


def test_same_rng_same_lesions_and_no_lung_no_nodule():
    vol = chest()
    a = paint_lesions(vol, np.random.default_rng(5))
    b = paint_lesions(vol, np.random.default_rng(5))
    assert np.array_equal(a[0].array, b[0].array)
    assert [les.id for les in a[1]] == [les.id for les in b[1]]
    _, lesions = paint_lesions(chest(with_lungs=False), np.random.default_rng(0), n_total=4)
    assert lesions and all(les.id.startswith("S") for les in lesions) and len(lesions) <= 4


@pytest.mark.shared_data
def test_painted_scenario_case_on_real_ct():
    shared_file("ct/totalseg_example_ct_3mm.nii.gz")
    vol, lesions = scenarios.case_lesions("totalseg_example_ct_3mm", "painted")
    plain, points = scenarios.case_lesions("totalseg_example_ct_3mm", "blobs")
    assert len(lesions) == 6 and all(les.id[0] in "LS" for les in lesions)
    assert not np.array_equal(vol.array, plain.array)
    assert min(np.linalg.norm(a.center_lps_mm - b.center_lps_mm) for a in lesions for b in points) >= 40.0
    spec = [c for c in scenarios.scenario("standard").cases if c.lesions == "painted"]
    assert {c.name for c in spec} == {"popi_ct00_2mm+painted", "totalseg_example_ct_3mm+painted"}
