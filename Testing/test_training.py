"""Training: schedule, resumable sampler, overfitting tiny pairs, fit() outputs, exact resume, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import REPO_ROOT  # noqa: E402
from test_model import TINY  # noqa: E402

from TLTTrackerLib.checkpoint import load_model  # noqa: E402
from TLTTrackerLib.cli import main  # noqa: E402
from TLTTrackerLib.config import PreprocessConfig, run_config_from_dict  # noqa: E402
from TLTTrackerLib.data.dataset import SyntheticPairDataset, collate_samples  # noqa: E402
from TLTTrackerLib.io import write_volume  # noqa: E402
from TLTTrackerLib.model import build_tracker  # noqa: E402
from TLTTrackerLib.phantom import make_phantom  # noqa: E402
from TLTTrackerLib.training.distributed import DistEnv, ResumableDistributedSampler  # noqa: E402
from TLTTrackerLib.training.engine import summarise_records, train_step, validate  # noqa: E402
from TLTTrackerLib.training.fit import fit, lr_factor  # noqa: E402

PRE = PreprocessConfig(search_size_mm=(16, 32, 32), template_size_mm=(16, 24, 24))


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def volume_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    for seed in (0, 1):
        vol, _ = make_phantom(seed, shape_kji=(36, 56, 56), spacing_mm=(2.0, 2.0, 2.5), n_lesions=2)
        write_volume(vol, folder / f"phantom{seed}.nii.gz")
    return folder


def recipe(volume_dir, out, **train):
    return {
        "model": TINY.to_dict(),
        "preprocess": PRE.to_dict(),
        "train": {
            "output_dir": str(out),
            "synthetic_volumes": [str(volume_dir)],
            "synthetic_valid_volumes": [str(volume_dir)],
            "synthetic_items_per_epoch": 6,
            "synthetic_valid_items": 2,
            "synthetic_lesions_per_pair": 2,
            "batch_size": 2,
            "num_workers": 0,
            "max_steps": 4,
            "warmup_steps": 1,
            "val_every_steps": 2,
            "checkpoint_every_steps": 2,
            "log_every_steps": 1,
            "lr": 1e-3,
            "device": "cpu",
            **train,
        },
    }


def test_lr_schedule():
    assert lr_factor(0, 10, 100, 0.01) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.01) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100, 0.01) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, 0.01) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(100, 10, 100, 0.01) == pytest.approx(0.01)


def test_resumable_sampler_skips_and_shards():
    data = list(range(10))
    full = list(ResumableDistributedSampler(data, DistEnv(), seed=3))
    s = ResumableDistributedSampler(data, DistEnv(), seed=3)
    s.set_start(4)
    assert list(s) == full[4:] and list(s) == full  # the skip applies once
    ranks = [list(ResumableDistributedSampler(data, DistEnv(r, r, 2), seed=3)) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(full)


def test_tiny_model_overfits_a_few_pairs(volume_dir):
    """A tiny network memorises 4 samples on CPU: loss and centre error fall (its speed is
    benchmarks/train_throughput.py's to measure, not a test's: this took 98 s on a loaded 2-core machine)."""
    torch.manual_seed(0)
    ds = SyntheticPairDataset(
        [volume_dir / "phantom0.nii.gz"], 2, PRE, lesions_per_pair=2, start_jitter_mm=4.0, seed=11, fixed=True
    )
    batch = collate_samples([ds[0], ds[1]])
    net = build_tracker(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0)
    before, _ = validate(net, [batch], torch.device("cpu"))
    losses = [
        train_step(net, batch, opt, None, torch.device("cpu"), grad_clip_norm=1.0)["loss"] for _ in range(100)
    ]
    after, _ = validate(net, [batch], torch.device("cpu"))
    e0 = np.mean([r["error_mm"] for r in before])
    e1 = np.mean([r["error_mm"] for r in after])
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert e1 < 0.5 * e0 and e1 < 4.0, (e0, e1)  # measured: 9.9 mm -> 2.4 mm


def test_fit_writes_log_checkpoints_and_validates(volume_dir, tmp_path):
    run = run_config_from_dict(recipe(volume_dir, tmp_path / "run"))
    summary = fit(run)
    assert summary["steps"] == 4 and summary["validation"]["n"] == 4
    lines = [
        json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2, 3, 4]
    vals = [r for r in lines if "val" in r]
    assert len(vals) == 2 and {"med_mm", "cpm_10mm", "cpm_radius", "start_med_mm"} <= set(vals[-1]["val"])
    _, mc, pc, data = load_model(tmp_path / "run" / "best.pt")
    assert mc == TINY and pc == PRE and data["best"]["metric"] == "med_mm"
    assert (
        json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["train"]["max_steps"] == 4
    )


def test_interrupted_run_resumes_exactly(volume_dir, tmp_path):
    full = fit(run_config_from_dict(recipe(volume_dir, tmp_path / "a", augment=True)))
    assert full["steps"] == 4
    run_b = run_config_from_dict(recipe(volume_dir, tmp_path / "b", augment=True))

    def stop(record):
        if record["step"] == 3:  # after the step-2 checkpoint: the step-3 update is lost
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(run_b, progress=stop)
    resumed = fit(run_b, resume="auto")
    assert resumed["steps"] == 4
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=0)
    log_a = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["loss"] for r in log_a if r.get("step") == 4 and "loss" in r] == [
        r["loss"] for r in log_b if r.get("step") == 4 and "loss" in r
    ]


def test_cli_train_with_overrides(volume_dir, tmp_path):
    cfg = tmp_path / "recipe.json"
    cfg.write_text(json.dumps(recipe(volume_dir, tmp_path / "unused")))
    code = main(
        [
            "train",
            "--config",
            str(cfg),
            "--output",
            str(tmp_path / "cli"),
            "--set",
            "train.max_steps=2",
            "--set",
            "train.val_every_steps=100",
            "--no-progress",
        ]
    )
    assert code == 0 and (tmp_path / "cli" / "last.pt").exists()
    assert main(["train", "--config", str(cfg), "--set", "train.bogus=1"]) == 2  # unknown key: clear error


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(volume_dir, tmp_path):
    cfg = tmp_path / "recipe.json"
    cfg.write_text(json.dumps(recipe(volume_dir, tmp_path / "ddp", max_steps=2, val_every_steps=100)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "TLTTrackerLib.cli",
        "train",
        "--config",
        str(cfg),
        "--no-progress",
    ]
    out = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, encoding="utf-8", timeout=240, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert data["step"] == 2 and len(data["rng"]["per_rank"]) == 2
    val = [
        json.loads(x)
        for x in (tmp_path / "ddp" / "log.jsonl").read_text(encoding="utf-8").splitlines()
        if '"val"' in x
    ]
    assert val[-1]["val"]["n"] == 4  # both ranks' validation samples gathered, duplicates removed
    assert summarise_records([]) == {"n": 0}


@pytest.mark.cuda
def test_cuda_bf16_train_steps(volume_dir):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    torch.manual_seed(0)
    ds = SyntheticPairDataset(
        [volume_dir / "phantom0.nii.gz"], 2, PRE, lesions_per_pair=2, seed=3, fixed=True
    )
    batch = collate_samples([ds[0], ds[1]])
    device = torch.device("cuda")
    net = build_tracker(TINY).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    losses = [train_step(net, batch, opt, None, device, precision="auto")["loss"] for _ in range(20)]
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])
    records, _ = validate(net, [batch], device)
    assert len(records) == 4 and all(np.isfinite(r["error_mm"]) for r in records)
