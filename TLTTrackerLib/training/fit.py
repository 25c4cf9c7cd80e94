"""``fit``: the training loop of the TLT network (``tlt-tracker train --config FILE``).

Runbook (the same command works on a CPU, one GPU, many GPUs and many nodes; DDP is switched on by the
variables ``torchrun`` sets; only rank 0 writes files and shows progress)::

    # CPU or 1 GPU
    tlt-tracker train --config configs/tlt_dls.json
    # 8 GPUs on one machine (batch_size is per GPU: 8 × batch_size items per step)
    torchrun --standalone --nproc_per_node=8 -m TLTTrackerLib.cli train --config configs/tlt_dls.json
    # 2 nodes × 8 GPUs: run on each node, NODE_RANK 0 on the first, 1 on the second; MASTER reachable by both
    torchrun --nnodes=2 --nproc_per_node=8 --node_rank=$NODE_RANK --rdzv_backend=c10d \
        --rdzv_endpoint=$MASTER:29500 --rdzv_id=tlt -m TLTTrackerLib.cli train --config configs/tlt_dls.json
    # resume the last checkpoint of the run (exact: same batches, same dropout, same schedule)
    tlt-tracker train --config configs/tlt_dls.json --resume auto

Each step takes ``batch_size`` dataset items per process (a DLS pair is one sample, a synthetic pair
``synthetic_lesions_per_pair`` samples). AdamW (no weight decay on biases and norms), linear warm-up then
cosine decay to ``lr × min_lr_ratio``, gradient clipping, bf16 autocast on CUDA. Every ``val_every_steps``
(and at the end) the model is scored on the validation set with the DLT metrics; ``best.pt`` keeps the best
``best_metric``. ``last.pt`` is written every ``checkpoint_every_steps`` (model, optimiser, scheduler, step,
epoch, position in the epoch, every rank's RNG state), so ``--resume`` continues exactly where it stopped.
Files in ``output_dir``: ``config.json`` (resolved recipe), ``log.jsonl`` (one JSON object per log/validation
event), ``last.pt``, ``best.pt``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import configs_from_checkpoint, load_checkpoint, save_checkpoint, strip_prefixes
from ..config import BEST_METRICS, PreprocessConfig, RunConfig, TrainConfig
from ..data.dataset import (
    Augment,
    DLSPairDataset,
    MixedDataset,
    SyntheticPairDataset,
    collate_samples,
    find_volumes,
)
from ..errors import InputError, ModelFileError
from ..model import build_tracker, count_parameters
from . import distributed as D
from .engine import summarise_records, train_step, validate

logger = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]


def build_datasets(
    pre: PreprocessConfig, cfg: TrainConfig, output_dir: Path | None = None
) -> tuple[Dataset, Dataset | None]:
    """Training and validation datasets of a recipe (see :class:`TrainConfig`)."""
    from ..dls import load_dls

    aug = (
        Augment(cfg.aug_crop_jitter_mm, cfg.aug_intensity_scale, cfg.aug_intensity_shift, cfg.aug_flip)
        if cfg.augment
        else None
    )
    cache = output_dir / "registrations" if output_dir else None
    dls_train = dls_valid = syn_train = syn_valid = None
    if cfg.dls_train_json:
        dls_train = DLSPairDataset(
            load_dls(cfg.dls_train_json), cfg.dls_volume_dir, pre, cfg.dls_prior_source, aug, cfg.seed, cache
        )
    if cfg.dls_valid_json:
        if not cfg.dls_volume_dir:
            raise InputError("train.dls_volume_dir is needed with dls_valid_json")
        dls_valid = DLSPairDataset(
            load_dls(cfg.dls_valid_json), cfg.dls_volume_dir, pre, cfg.dls_prior_source, None, cfg.seed, cache
        )
    common = dict(
        lesions_per_pair=cfg.synthetic_lesions_per_pair,
        radius_mm=cfg.synthetic_radius_mm,
        point_kind=cfg.synthetic_point_kind,
        start=cfg.synthetic_start,
        start_jitter_mm=cfg.synthetic_start_jitter_mm,
    )
    if cfg.synthetic_crop_only:
        syn_train, syn_valid = crop_pair_datasets(pre, cfg, aug)
    elif cfg.synthetic_volumes:
        syn_train = SyntheticPairDataset(
            find_volumes(cfg.synthetic_volumes),
            cfg.synthetic_items_per_epoch,
            pre,
            augment=aug,
            seed=cfg.seed,
            **common,
        )
    if cfg.synthetic_valid_volumes and dls_valid is None and not cfg.synthetic_crop_only:
        syn_valid = SyntheticPairDataset(
            find_volumes(cfg.synthetic_valid_volumes),
            cfg.synthetic_valid_items,
            pre,
            seed=cfg.seed + 10_007,
            fixed=True,
            **common,
        )
    if dls_train is not None and syn_train is not None:
        train: Dataset = MixedDataset(
            dls_train, syn_train, cfg.synthetic_mix_ratio, max(len(dls_train), len(syn_train)), cfg.seed
        )
    else:
        train = dls_train if dls_train is not None else syn_train  # type: ignore[assignment]
    return train, dls_valid if dls_valid is not None else syn_valid


def crop_pair_datasets(
    pre: PreprocessConfig, cfg: TrainConfig, aug: Augment | None
) -> tuple[Dataset, Dataset | None]:
    """Training and validation :class:`~..data.crop_pairs.CropPairDataset` of a ``synthetic_crop_only``
    recipe: one-volume sources from ``synthetic_volumes`` (+ ``synthetic_phantoms`` generated phantoms),
    phase groups from ``synthetic_volume_groups``; validation from ``synthetic_valid_volumes`` /
    ``synthetic_valid_groups`` (fixed pairs)."""
    import dataclasses

    from ..data.crop_pairs import CropPairDataset
    from ..phantom import make_phantom
    from ..synthetic import PairConfig

    pair = PairConfig(nonrigid_node_spacing_mm=cfg.synthetic_node_spacing_mm)
    if cfg.synthetic_growth_range is not None:
        lo = cfg.synthetic_growth_range[0]
        ratio = max(pair.growth_outer_ratio, math.exp(1.5 * abs(math.log(lo)) / 0.85))  # no folding
        pair = dataclasses.replace(pair, growth_factor_range=cfg.synthetic_growth_range, growth_outer_ratio=ratio)
    if cfg.synthetic_slice_thickness_mm:
        pair = dataclasses.replace(pair, slice_thickness_mm_choices=cfg.synthetic_slice_thickness_mm)
    common = dict(
        pair_config=pair,
        nonrigid_rms_mm=cfg.synthetic_nonrigid_rms_mm,
        lesions_per_pair=cfg.synthetic_lesions_per_pair,
        radius_mm=cfg.synthetic_radius_mm,
        point_kind=cfg.synthetic_point_kind,
        start_jitter_mm=cfg.synthetic_start_jitter_mm,
    )
    sources: list[tuple] = [(p,) for p in find_volumes(cfg.synthetic_volumes)] if cfg.synthetic_volumes else []
    sources += [tuple(find_volumes(g)) for g in cfg.synthetic_volume_groups]
    sources += [(make_phantom(10_000 + n)[0],) for n in range(cfg.synthetic_phantoms)]
    train = CropPairDataset(sources, cfg.synthetic_items_per_epoch, pre, augment=aug, seed=cfg.seed, **common)
    valid_sources = [(p,) for p in find_volumes(cfg.synthetic_valid_volumes)] if cfg.synthetic_valid_volumes else []
    valid_sources += [tuple(find_volumes(g)) for g in cfg.synthetic_valid_groups]
    valid = (
        CropPairDataset(valid_sources, cfg.synthetic_valid_items, pre, seed=cfg.seed + 10_007, fixed=True, **common)
        if valid_sources else None
    )
    return train, valid


def set_cpu_threads(cfg: TrainConfig) -> int:
    """Torch threads for CPU training: ``cfg.cpu_threads``, or the cores left by the data workers. More
    threads than free cores makes every step several times slower (the threads wait on each other)."""
    import os

    n = cfg.cpu_threads or max(1, (os.cpu_count() or 1) - cfg.num_workers)
    torch.set_num_threads(n)
    logger.info("CPU training with %d torch threads and %d data workers", n, cfg.num_workers)
    return n


def lr_factor(step: int, warmup_steps: int, max_steps: int, min_ratio: float) -> float:
    """Linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine from 1 to ``min_ratio`` at
    ``max_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with weight decay on weight matrices/kernels only, and the warm-up + cosine schedule."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
    )
    return optimizer, scheduler


def _loader(
    ds: Dataset, sampler: Any, cfg: TrainConfig, device: torch.device, epoch: int, train: bool
) -> DataLoader:
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=collate_samples,
        num_workers=cfg.num_workers,
        drop_last=train,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),  # keeps the global RNG untouched
    )


def _is_better(value: float, best: dict[str, Any] | None, metric: str) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best["value"] if BEST_METRICS[metric] == "min" else value > best["value"]


def fit(run: RunConfig, resume: str | None = None, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Train ``run`` (model, preprocess and train sections). ``resume``: a checkpoint path or "auto"
    (``output_dir/last.pt`` if present). ``progress`` is called on rank 0 after every step with the step's
    record. Returns a summary (steps, last validation, best, paths)."""
    cfg = run.train
    if cfg is None:
        raise InputError("the config has no train section")
    env, device = D.init_distributed(cfg.device)
    out_dir = Path(cfg.output_dir)
    try:
        return _fit(run, cfg, env, device, out_dir, resume, progress)
    finally:
        D.cleanup()


def _fit(
    run: RunConfig,
    cfg: TrainConfig,
    env: D.DistEnv,
    device: torch.device,
    out_dir: Path,
    resume: str | None,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    D.seed_everything(cfg.seed, env.rank)
    if device.type == "cpu":
        set_cpu_threads(cfg)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(run.to_dict(), indent=2), encoding="utf-8")
    D.barrier()
    train_ds, val_ds = build_datasets(run.preprocess, cfg, out_dir)
    model = build_tracker(run.model).to(device)
    optimizer, scheduler = make_optimizer(model, cfg)
    step = epoch = batch_in_epoch = 0
    best: dict[str, Any] | None = None
    last_ckpt = out_dir / "last.pt"
    resume_path = (
        (last_ckpt if last_ckpt.exists() else None)
        if resume == "auto"
        else (Path(resume) if resume else None)
    )
    if resume_path is not None:
        data = load_checkpoint(resume_path)
        model_config, _ = configs_from_checkpoint(data, str(resume_path))
        if model_config != run.model:
            raise ModelFileError(
                f"{resume_path} holds another model configuration; resume with its own recipe"
            )
        model.load_state_dict(strip_prefixes(data["state_dict"]))
        if data.get("optimizer"):
            optimizer.load_state_dict(data["optimizer"])
        if data.get("scheduler"):
            scheduler.load_state_dict(data["scheduler"])
        step, epoch, batch_in_epoch, best = (
            data["step"],
            data["epoch"],
            data["batch_in_epoch"],
            data.get("best"),
        )
        states = (data.get("rng") or {}).get("per_rank") or []
        if env.rank < len(states):
            D.set_rng_state(states[env.rank])
        logger.info("resumed %s at step %d (epoch %d, batch %d)", resume_path, step, epoch, batch_in_epoch)
    ddp_model: torch.nn.Module = model
    if env.distributed:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if env.is_main:
        logger.info(
            "model: %d parameters; training items per epoch: %d; device %s × %d",
            count_parameters(model),
            len(train_ds),
            device,
            env.world_size,
        )
    sampler = D.ResumableDistributedSampler(train_ds, env, shuffle=True, seed=cfg.seed, drop_last=True)
    log_file = out_dir / "log.jsonl"
    last_val: dict[str, Any] | None = None

    def log(record: dict[str, Any]) -> None:
        if env.is_main:
            with log_file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def run_validation() -> dict[str, Any] | None:
        nonlocal best
        if val_ds is None:
            return None
        vs = D.ResumableDistributedSampler(val_ds, env, shuffle=False, seed=cfg.seed)
        limit = -(-cfg.val_max_items // env.world_size) if cfg.val_max_items else 0
        records, loss_sum = validate(
            model, _loader(val_ds, vs, cfg, device, 0, False), device, cfg.precision, cfg.l1_space, limit
        )
        gathered = D.gather_objects((records, loss_sum))
        metrics = summarise_records([r for recs, _ in gathered for r in recs], sum(ls for _, ls in gathered))
        log({"step": step, "epoch": epoch, "val": metrics})
        value = metrics.get(cfg.best_metric)
        if _is_better(value, best, cfg.best_metric):
            best = {"metric": cfg.best_metric, "value": value, "step": step}
            save("best.pt", metrics)  # every rank: save() gathers RNG states, only rank 0 writes
        return metrics

    def save(name: str, metrics: dict[str, Any] | None) -> None:
        rng = D.gather_objects(D.rng_state())
        if env.is_main:
            save_checkpoint(
                out_dir / name,
                model,
                run.model,
                run.preprocess,
                cfg,
                optimizer=optimizer,
                scheduler=scheduler,
                step=step,
                epoch=epoch,
                batch_in_epoch=batch_in_epoch,
                metrics=metrics or {},
                best=best,
                rng={"per_rank": rng},
            )

    t_start = time.perf_counter()
    while step < cfg.max_steps:
        sampler.set_epoch(epoch)
        sampler.set_start(batch_in_epoch * cfg.batch_size)
        train_ds.set_epoch(epoch)  # type: ignore[attr-defined]
        if len(sampler) < cfg.batch_size:
            raise InputError(
                f"{len(train_ds)} training items are too few for batch_size {cfg.batch_size} × "
                f"{env.world_size} processes"
            )
        for batch in _loader(train_ds, sampler, cfg, device, epoch, True):
            t0 = time.perf_counter()
            parts = train_step(
                ddp_model,
                batch,
                optimizer,
                scheduler,
                device,
                cfg.precision,
                cfg.focal_weight,
                cfg.l1_weight,
                cfg.l1_space,
                cfg.grad_clip_norm,
            )
            step += 1
            batch_in_epoch += 1
            record = {"step": step, "epoch": epoch, **parts, "step_s": round(time.perf_counter() - t0, 4)}
            if env.is_main and progress:
                progress({**record, "max_steps": cfg.max_steps})
            if step % cfg.log_every_steps == 0 or step == 1:
                log({**record, "elapsed_s": round(time.perf_counter() - t_start, 2)})
            if step % cfg.val_every_steps == 0 and step < cfg.max_steps:
                last_val = run_validation()
            if step % cfg.checkpoint_every_steps == 0 and step < cfg.max_steps:
                save("last.pt", last_val)
            if step >= cfg.max_steps:
                break
        else:
            epoch += 1
            batch_in_epoch = 0
    last_val = run_validation()
    save("last.pt", last_val)
    D.barrier()
    return {
        "steps": step,
        "epoch": epoch,
        "validation": last_val,
        "best": best,
        "last": str(last_ckpt),
        "best_path": str(out_dir / "best.pt") if best else None,
        "seconds": time.perf_counter() - t_start,
    }
