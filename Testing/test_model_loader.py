"""TLTTrackerLib.model_loader: the model file found at once, loaded once, in the background when asked."""

from __future__ import annotations

import sys
import threading

import pytest

from TLTTrackerLib.errors import ModelFileError
from TLTTrackerLib.model_loader import ModelLoader
from TLTTrackerLib.tracker import LesionTracker


def test_without_pytorch_a_learned_method_is_refused_at_once(monkeypatch):
    """check_model() names the missing PyTorch before any work (not a traceback after the registration)."""
    monkeypatch.setitem(sys.modules, "torch", None)
    for method in ("tlt", "tlt+refine"):
        with pytest.raises(ModelFileError, match="needs PyTorch"):
            LesionTracker(method=method).check_model()
    LesionTracker(method="auto").check_model()  # refine needs no model and no torch


def test_a_missing_file_fails_at_start_and_a_bad_one_at_wait(tmp_path):
    pytest.importorskip("torch")
    with pytest.raises(ModelFileError, match="neither a file nor a known model name"):
        ModelLoader(str(tmp_path / "absent.pt")).start("cpu")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    loader = ModelLoader(str(tmp_path / "bad.pt"))
    loader.start("cpu")  # the file exists: its load runs in the background
    with pytest.raises(ModelFileError):
        loader.wait()
    loader.wait()  # collected once; nothing pending any more


def test_lesions_asking_at_once_load_the_model_once(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from TLTTrackerLib import inference

    loads, barrier = [], threading.Barrier(4)

    def fake_load(path, device="cpu"):
        loads.append(path)
        return object()

    monkeypatch.setattr(inference.TLTPredictor, "from_checkpoint", staticmethod(fake_load))
    (tmp_path / "m.pt").write_bytes(b"x")
    loader = ModelLoader(str(tmp_path / "m.pt"))
    got = []

    def ask():
        barrier.wait()
        got.append(loader.predictor("cpu"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len({id(g) for g in got}) == 1
    tracker = LesionTracker(method="tlt", model=str(tmp_path / "m.pt"))
    assert tracker.model == str(tmp_path / "m.pt")
    tracker.model = None  # a new model: loaded afresh
    assert tracker.model is None
