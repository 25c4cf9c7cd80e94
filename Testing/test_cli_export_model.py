"""export-model: a weights-only, registered model file that resolve_model finds and load_model rebuilds."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from test_model import TINY  # noqa: E402

from TLTTrackerLib import weights  # noqa: E402
from TLTTrackerLib.checkpoint import load_model, save_checkpoint  # noqa: E402
from TLTTrackerLib.cli import main  # noqa: E402
from TLTTrackerLib.cli.export_model import export_weights, register  # noqa: E402
from TLTTrackerLib.config import PreprocessConfig  # noqa: E402
from TLTTrackerLib.errors import InputError  # noqa: E402
from TLTTrackerLib.model import build_tracker  # noqa: E402

PRE = PreprocessConfig(search_size_mm=(16, 32, 40), template_size_mm=(16, 32, 32))


def _checkpoint(path):
    net = build_tracker(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    return save_checkpoint(path, net, TINY, PRE, optimizer=opt, step=12, metrics={"med_mm": 4.5, "cpm_10mm": 0.8})


def test_export_drops_training_state_and_registers(tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path / "best.pt")
    models = tmp_path / "models"
    out = models / "m.pt"
    facts = export_weights(ckpt, out)
    raw = torch.load(out, weights_only=True)
    assert raw["optimizer"] is None and raw["rng"] is None and raw["step"] == 12
    assert facts["sha256"] == weights.sha256_of(out) and facts["size_bytes"] == out.stat().st_size
    _, mc, pc, _ = load_model(out)
    assert mc == TINY and pc == PRE
    registry = models / "registry.json"
    registry.write_text(json.dumps({"bundled": None, "models": []}))
    register("tiny", facts, True, None, "test", registry_path=registry)
    reg = json.loads(registry.read_text())
    assert reg["bundled"] == "tiny" and reg["models"][0]["sha256"] == facts["sha256"]
    monkeypatch.setattr(weights, "MODELS_DIR", models)
    monkeypatch.delenv("TLT_TRACKER_MODEL", raising=False)
    assert weights.resolve_model(None, weights.load_registry(registry)) == out
    out.write_bytes(out.read_bytes()[:-10] + b"0123456789")  # damaged after registration
    with pytest.raises(Exception, match="sha256"):
        weights.resolve_model(None, weights.load_registry(registry))


def test_export_refuses_to_overwrite_the_checkpoint(tmp_path):
    ckpt = _checkpoint(tmp_path / "best.pt")
    with pytest.raises(InputError, match="checkpoint itself"):
        export_weights(ckpt, ckpt)
    assert main(["export-model", str(ckpt), "--out", str(ckpt)]) == 2


def test_inspect_model_shows_the_bundled_model_with_its_registry_entry(tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    facts = export_weights(_checkpoint(tmp_path / "best.pt"), models / "m.pt")
    registry = models / "registry.json"
    registry.write_text(json.dumps({"bundled": None, "models": []}))
    (models / "m.md").write_text("# model card\n")
    register("tiny", facts, True, str(models / "m.md"), "CC BY 4.0", registry_path=registry)
    monkeypatch.setattr(weights, "MODELS_DIR", models)
    monkeypatch.setattr(weights, "REGISTRY_PATH", registry)
    monkeypatch.delenv("TLT_TRACKER_MODEL", raising=False)
    for args in (["inspect-model", "--json"], ["inspect-model", "tiny", "--json"]):
        assert main(args) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["file"] == str(models / "m.pt") and info["step"] == 12
        entry = info["registry"]
        assert entry["name"] == "tiny" and entry["bundled"] and entry["sha256"] == facts["sha256"]
        assert entry["licence"] == "CC BY 4.0" and entry["card"] == str(models / "m.md")
    assert main(["inspect-model", str(tmp_path / "best.pt"), "--json"]) == 0  # a file outside the registry
    assert json.loads(capsys.readouterr().out)["registry"] is None
