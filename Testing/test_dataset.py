"""Datasets: synthetic and DLS pairs give well-formed samples whose targets decode to the truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from TLTTrackerLib.config import PreprocessConfig  # noqa: E402
from TLTTrackerLib.data.dataset import (  # noqa: E402
    Augment,
    DLSPairDataset,
    MixedDataset,
    SyntheticPairDataset,
    collate_samples,
    find_volumes,
    to_device,
)
from TLTTrackerLib.deeplesion import DL_DIRECTION, dls_center_to_lps  # noqa: E402
from TLTTrackerLib.dls import load_dls  # noqa: E402
from TLTTrackerLib.errors import InputError  # noqa: E402
from TLTTrackerLib.geometry import Volume  # noqa: E402
from TLTTrackerLib.io import write_volume  # noqa: E402
from TLTTrackerLib.phantom import make_phantom  # noqa: E402
from TLTTrackerLib.preprocessing import normalized_to_lps  # noqa: E402

PRE = PreprocessConfig(search_size_mm=(16, 32, 32), template_size_mm=(16, 24, 24))


@pytest.fixture(scope="module")
def phantoms():
    return [
        make_phantom(s, shape_kji=(36, 56, 56), spacing_mm=(2.0, 2.0, 2.5), n_lesions=2)[0] for s in (0, 1)
    ]


def test_synthetic_items_are_deterministic_and_well_formed(phantoms):
    ds = SyntheticPairDataset(
        phantoms, 3, PRE, lesions_per_pair=2, start="exact", start_jitter_mm=0.0, seed=5
    )
    a, b = ds[1], ds[1]
    assert len(a) == 2
    s = a[0]
    assert s["template_image"].shape == (1, 16, 24, 24) and s["search_image"].shape == (1, 16, 32, 32)
    assert s["search_prior"].shape == (2, 4, 4) and s["target_heatmap"].shape == (2, 4, 4)
    np.testing.assert_array_equal(a[1]["search_image"], b[1]["search_image"])
    # exact start: the start point is the truth
    for smp in a:
        np.testing.assert_allclose(smp["search_start"], smp["target_center"], atol=1e-5)
    ds.set_epoch(1)
    assert not np.array_equal(ds[1][0]["search_image"], a[0]["search_image"])


def test_augmentation_keeps_the_truth(phantoms):
    kwargs = dict(lesions_per_pair=3, start="affine", start_jitter_mm=0.0, seed=2)
    plain = SyntheticPairDataset(phantoms, 2, PRE, **kwargs)[0]
    aug = SyntheticPairDataset(phantoms, 2, PRE, augment=Augment(crop_jitter_mm=6.0, flip=True), **kwargs)[0]
    assert any(s["meta"]["flip"] for s in aug)
    for p, q in zip(plain, aug):
        np.testing.assert_allclose(
            normalized_to_lps(q["target_center"], q["meta"]), p["meta"]["target_lps_mm"], atol=1e-4
        )
        np.testing.assert_allclose(
            normalized_to_lps(q["search_start"], q["meta"]), p["meta"]["start_lps_mm"], atol=1e-4
        )


def _blob_volume(center_index_kji, shape=(30, 80, 80), spacing=(0.8, 0.8, 2.0)) -> Volume:
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    d2 = ((k - center_index_kji[0]) * spacing[2]) ** 2 + ((j - center_index_kji[1]) * spacing[1]) ** 2
    d2 = d2 + ((i - center_index_kji[2]) * spacing[0]) ** 2
    arr = (np.exp(-d2 / (2 * 4.0**2)) * 900 - 700).astype(np.int16)
    return Volume(arr, np.zeros(3), np.array(spacing), DL_DIRECTION)


def _dls_record(src, tgt, src_xyz, tgt_xyz, pred_xyz, spacing):
    return {
        "source": src,
        "target": tgt,
        "source center": src_xyz,
        "target center": tgt_xyz,
        "source box": [0, 0, 0, 5, 5, 2],
        "target box": [0, 0, 0, 5, 5, 2],
        "source spacing": spacing,
        "target spacing": spacing,
        "source recist diameter": [12.0, 8.0],
        "target recist diameter": [10.0, 7.0],
        "predict target center": pred_xyz,
    }


def test_dls_dataset_targets_decode_to_the_annotation(tmp_path):
    spacing = [0.8, 0.8, 2.0]
    # DLS [x, y, z] = array[z, x, y] for DL_save_nifti volumes
    src_xyz, tgt_xyz = [40.0, 35.0, 12.0], [44.0, 30.0, 15.0]
    write_volume(_blob_volume((12, 40, 35)), tmp_path / "a_000-029.nii.gz")
    write_volume(_blob_volume((15, 44, 30)), tmp_path / "b_000-029.nii.gz")
    recs = {
        "0001": _dls_record(
            "a_000-029.nii.gz", "b_000-029.nii.gz", src_xyz, tgt_xyz, [41.0, 33.0, 14.0], spacing
        )
    }
    (tmp_path / "dls.json").write_text(json.dumps(recs))
    ds = DLSPairDataset(load_dls(tmp_path / "dls.json"), tmp_path, PRE)
    (s,) = ds[0]
    truth = dls_center_to_lps(np.array(tgt_xyz), np.array(spacing))
    np.testing.assert_allclose(normalized_to_lps(s["target_center"], s["meta"]), truth, atol=1e-4)
    np.testing.assert_allclose(
        s["meta"]["start_lps_mm"], dls_center_to_lps(np.array([41.0, 33.0, 14.0]), np.array(spacing))
    )
    # the blob is where the annotation says, in both crops
    t_peak = np.array(np.unravel_index(np.argmax(s["template_image"][0]), (16, 24, 24)))
    assert np.all(np.abs(t_peak - (np.array([16, 24, 24]) - 1) / 2) <= 1.0)
    assert s["meta"]["target_radius_mm"] == pytest.approx(10.0 / 2 * 0.8)
    with pytest.raises(InputError, match="missing"):
        DLSPairDataset(load_dls(tmp_path / "dls.json"), tmp_path / "elsewhere", PRE)


def test_mix_collate_and_device(phantoms):
    syn = SyntheticPairDataset(phantoms, 4, PRE, lesions_per_pair=2, seed=1)
    one = SyntheticPairDataset(phantoms, 4, PRE, lesions_per_pair=1, seed=9)
    assert all(len(MixedDataset(one, syn, 1.0, 3)[i]) == 2 for i in range(3))
    assert all(len(MixedDataset(one, syn, 0.0, 3)[i]) == 1 for i in range(3))
    batch = to_device(collate_samples([syn[0], one[0]]), "cpu")
    assert batch["search_image"].shape == (3, 1, 16, 32, 32) and batch["search_image"].dtype == torch.float32
    assert len(batch["meta"]) == 3 and batch["target_center"].shape == (3, 3)


def test_find_volumes(tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_volumes([tmp_path])] == ["a.nii.gz"]
    with pytest.raises(InputError):
        find_volumes([tmp_path / "nothing"])
