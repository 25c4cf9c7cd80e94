"""Bad model files (--model) are refused before any output is written (a missing one before any registration
work; one that does not load while the registration runs beside its load), without torch's unsafe hint (issue 9)."""

from __future__ import annotations

import collections

import pytest
from bad_input import assert_refused, write_pair_inputs

torch = pytest.importorskip("torch")


@pytest.fixture()
def case(tmp_path):
    write_pair_inputs(tmp_path)
    torch.save({"format": "tlttracker-checkpoint", "x": collections.OrderedDict(a=Exception("boom"))},
               tmp_path / "pickle.pt")
    (tmp_path / "noise.pt").write_bytes(b"PK\x03\x04 not really a zip")
    return tmp_path


def _track(model):
    # --registration-out: a model checked only after registering would leave reg.json behind
    return ["track", "bl.nii.gz", "fu.nii.gz", "--lesions", "les.json", "--out", "r.json", "--method", "tlt",
            "--model", model, "--registration-out", "reg.json", "--device", "cpu"]


def test_pickled_model_is_refused_without_the_weights_only_hint(case):
    line = assert_refused(_track("pickle.pt"), case, names="pickle.pt", problem="pickled Python objects")
    assert "weights_only" not in line


@pytest.mark.parametrize("model, problem", [("noise.pt", "truncated or corrupt"), ("absent.pt", "neither a file nor a known model name")])
def test_bad_models_are_refused_before_registration(case, model, problem, capsys):
    assert_refused(_track(model), case, names=model, problem=problem, capsys=capsys)


def test_tlt_without_a_model_fails_before_registration(case, capsys, no_bundled_model):
    args = [a for a in _track("x") if a not in ("--model", "x")]
    assert_refused(args, case, names="--model", problem="needs a model", capsys=capsys)
