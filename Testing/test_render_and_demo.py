"""The demo command end to end (phantom pair -> registration -> tracking -> table + PNG), and the renderer."""

from __future__ import annotations

import json

import numpy as np

from TLTTrackerLib.cli import main


def test_demo_writes_scans_results_and_png(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "CPM@10mm" in text and "affine" in text
    for name in ("baseline.nii.gz", "followup.nii.gz", "lesions.json", "followup_truth.json", "demo.png",
                 "results_affine.json", "results_auto.json"):
        assert (out / name).stat().st_size > 0, name
    png = (out / "demo.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    auto = json.loads((out / "results_auto.json").read_text(encoding="utf-8"))
    truth = json.loads((out / "followup_truth.json").read_text(encoding="utf-8"))["lesions"]
    errors = [np.linalg.norm(np.subtract(a["followup_center"], t["center"])) for a, t in zip(auto["lesions"], truth)]
    assert np.median(errors) < 3.0, errors
