"""Training-point sampler: points inside the body, kinds that favour blobs or edges, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from TLTTrackerLib.errors import InputError
from TLTTrackerLib.geometry import Volume
from TLTTrackerLib.phantom import make_phantom
from TLTTrackerLib.sampling import TrainingPointSampler, body_mask, sample_training_points


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(0)


@pytest.fixture(scope="module")
def sampler(phantom):
    return TrainingPointSampler(phantom[0])


def _nearest(volume: Volume, pts: np.ndarray) -> tuple[np.ndarray, ...]:
    idx = np.rint(volume.lps_to_index_kji(pts)).astype(int)
    idx = np.clip(idx, 0, np.array(volume.shape_kji) - 1)
    return tuple(idx.T)


def test_body_mask_includes_lungs_and_excludes_air(phantom):
    volume, lesions = phantom
    mask = body_mask(volume)
    assert not mask[:, 0, 0].any() and not mask[:, -1, -1].any()
    assert mask[_nearest(volume, np.array([les.center_lps_mm for les in lesions]))].all()  # lung lesions too
    lung_core = ndimage.binary_erosion((volume.array > -950) & (volume.array < -700), iterations=2)
    assert lung_core.sum() > 1000 and mask[lung_core].mean() > 0.99  # lung parenchyma is body


@pytest.mark.parametrize("kind", ["blob", "anatomical", "mixed", "uniform"])
def test_points_are_inside_the_body(phantom, sampler, kind):
    volume = phantom[0]
    pts = sampler.sample(300, np.random.default_rng(1), kind)
    assert pts.shape == (300, 3) and np.all(np.isfinite(pts))
    mask = ndimage.binary_dilation(body_mask(volume))  # one voxel of slack for resolution
    assert mask[_nearest(volume, pts)].all()


def test_kinds_prefer_their_structures(phantom, sampler):
    volume, lesions = phantom
    rng = np.random.default_rng(0)
    grad = ndimage.gaussian_gradient_magnitude(volume.array.astype(np.float32), 1.0)
    edge = {k: grad[_nearest(volume, sampler.sample(1000, rng, k))].mean() for k in ("anatomical", "uniform")}
    assert edge["anatomical"] > 2 * edge["uniform"], edge
    centres = np.array([les.center_lps_mm for les in lesions])
    candidates = sampler.work.index_kji_to_lps(sampler.blob_idx)
    assert np.linalg.norm(candidates[:, None] - centres[None], axis=2).min(axis=0).max() < 3.0  # every lesion

    def dist(p: np.ndarray) -> np.ndarray:
        return np.linalg.norm(p[:, None] - centres[None], axis=2).min(axis=1)

    blob, uniform = sampler.sample(1000, rng, "blob"), sampler.sample(1000, rng, "uniform")
    assert np.mean(dist(blob) < 10) > 3 * np.mean(dist(uniform) < 10)


def test_deterministic_and_validated(phantom, sampler):
    a = sampler.sample(50, 7, "mixed")
    np.testing.assert_array_equal(a, sampler.sample(50, 7, "mixed"))
    np.testing.assert_array_equal(sample_training_points(phantom[0], 50, 7), a)
    with pytest.raises(InputError, match="unknown point kind"):
        sampler.sample(5, 0, "lesions")
    with pytest.raises(InputError, match="no body"):
        TrainingPointSampler(Volume(np.full((8, 8, 8), -1000, np.int16)))
