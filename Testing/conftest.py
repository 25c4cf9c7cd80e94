"""Shared pytest fixtures: paths to ../shared/data (tests skip when absent) and small synthetic volumes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TLT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """Path under ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def oblique_direction(angle_deg: float = 20.0) -> np.ndarray:
    """An orthonormal, non-identity direction matrix (rotation about z then x)."""
    a = np.deg2rad(angle_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
    return rz @ rx


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny tensors: one intra-op thread is much faster than two on a shared 2-core machine.

    Use with ``pytestmark = pytest.mark.usefixtures("torch_one_thread")`` in torch test modules.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_bundled_model(tmp_path, monkeypatch):
    """An installation without a bundled model: an empty registry and no ``$TLT_TRACKER_MODEL``."""
    from TLTTrackerLib import weights

    registry = tmp_path / "empty_registry.json"
    registry.write_text('{"bundled": null, "models": []}', encoding="utf-8")
    monkeypatch.setattr(weights, "REGISTRY_PATH", registry)
    monkeypatch.delenv("TLT_TRACKER_MODEL", raising=False)
    return registry
