"""torchrun / DDP plumbing: environment detection, device choice, rank-0 gating, seeds, resumable sampling.

Under ``torchrun`` the environment holds ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` (and the rendezvous
variables); :func:`init_distributed` then joins the process group (NCCL on CUDA, Gloo on CPU) and picks
``cuda:LOCAL_RANK``. Without them everything runs in one process. The pattern follows nanoGPT's ``train.py``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from ..inference import resolve_device  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_preference: str = "auto") -> tuple[DistEnv, torch.device]:
    """Join the torchrun process group when ``RANK`` is set; returns the environment and the device."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistEnv(), resolve_device(device_preference)
    env = DistEnv(
        int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), int(os.environ["WORLD_SIZE"])
    )
    device = resolve_device(device_preference, env.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return env, device


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` on every rank (a one-element list without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python and torch (per-rank offset, so dropout differs between ranks). Data randomness does not
    depend on these (datasets derive it from (seed, epoch, index))."""
    random.seed(seed + rank)
    torch.manual_seed(seed + rank)


def rng_state() -> dict[str, Any]:
    """Python, torch CPU and CUDA generator states (plain types / tensors: checkpoint-safe)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class ResumableDistributedSampler(DistributedSampler):
    """A :class:`DistributedSampler` that can start an epoch part-way (exact resume): after
    ``set_start(n)`` the next iteration skips this rank's first ``n`` indices (then resets to 0)."""

    def __init__(
        self, dataset: Any, env: DistEnv, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ):
        super().__init__(
            dataset,
            num_replicas=env.world_size,
            rank=env.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.start = 0

    def set_start(self, n: int) -> None:
        self.start = int(n)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.start :]
        self.start = 0
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples - self.start
