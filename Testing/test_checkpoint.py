"""Checkpoint round trip, weights_only loading, clear errors for foreign, corrupt or other-version files."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_model import TINY, make_batch  # noqa: E402

from TLTTrackerLib.checkpoint import (  # noqa: E402
    FORMAT_VERSION,
    load_checkpoint,
    load_model,
    save_checkpoint,
    strip_prefixes,
)
from TLTTrackerLib.config import PreprocessConfig  # noqa: E402
from TLTTrackerLib.errors import ModelFileError  # noqa: E402
from TLTTrackerLib.model import build_tracker  # noqa: E402


pytestmark = pytest.mark.usefixtures("torch_one_thread")


PRE = PreprocessConfig(search_size_mm=(16, 32, 40), template_size_mm=(16, 32, 32))


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = build_tracker(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    path = save_checkpoint(tmp_path / "m.pt", net, TINY, PRE, optimizer=opt, step=7, metrics={"med_mm": 3.5})
    raw = torch.load(path, weights_only=True, map_location="cpu")  # plain types only
    assert raw["format_version"] == FORMAT_VERSION and raw["step"] == 7 and raw["versions"]["torch"]
    model, mc, pc, data = load_model(path)
    assert mc == TINY and pc == PRE and data["metrics"] == {"med_mm": 3.5}
    assert not model.training
    batch = make_batch([4.0, 10.0])
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch)["center"], net(batch)["center"], rtol=0, atol=0)


def test_wrong_format_version_is_a_model_file_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_tracker(TINY), TINY, PRE)
    data = torch.load(path, weights_only=True)
    data["format_version"] = FORMAT_VERSION + 1
    torch.save(data, tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="format version"):
        load_checkpoint(tmp_path / "future.pt")


def test_corrupt_foreign_and_missing_files(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_tracker(TINY), TINY, PRE)
    blob = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "noise.pt").write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError):
        load_checkpoint(tmp_path / "noise.pt")
    torch.save(build_tracker(TINY).state_dict(), tmp_path / "bare.pt")  # a plain state dict
    with pytest.raises(ModelFileError, match="not a TLTTracker model file"):
        load_checkpoint(tmp_path / "bare.pt")
    with pytest.raises(ModelFileError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_weights_that_do_not_fit_the_config(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_tracker(TINY), TINY, PRE)
    data = torch.load(path, weights_only=True)
    data["model_config"]["fusion_layers"] = 3
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(tmp_path / "mismatch.pt")


def test_strip_prefixes():
    sd = {"module._orig_mod.head.w": 1, "head.b": 2}
    assert strip_prefixes(sd) == {"head.w": 1, "head.b": 2}


def test_predictor_from_checkpoint_on_a_phantom_pair(tmp_path):
    """inference.py: checkpoint -> predictor -> LPS centres inside the search windows, batch invariant."""
    import numpy as np

    from TLTTrackerLib.inference import TLTPredictor, track_lesions
    from TLTTrackerLib.phantom import make_phantom
    from TLTTrackerLib.transforms import AffineTransform

    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.pt", build_tracker(TINY), TINY, PRE, step=5)  # "trained" 5 steps
    vol, lesions = make_phantom(3, shape_kji=(36, 56, 56), spacing_mm=(2.0, 2.0, 2.5), n_lesions=3)
    shift = AffineTransform(np.eye(3), np.array([3.0, -2.0, 1.0]))
    one = TLTPredictor.from_checkpoint(path, device="cpu", batch_size=1).predict(
        vol, vol, lesions, shift, with_heatmap=True
    )
    many = TLTPredictor.from_checkpoint(path, device="cpu", batch_size=8).predict(vol, vol, lesions, shift)
    assert [r.id for r in one] == [les.id for les in lesions]
    half = np.array([40, 32, 16]) / 2  # search window (x, y, z) half extents in mm
    for r1, r2, les in zip(one, many, lesions):
        np.testing.assert_allclose(r1.start_lps_mm, les.center_lps_mm + [3.0, -2.0, 1.0])
        assert np.all(np.abs(r1.center_lps_mm - r1.start_lps_mm) <= half)
        np.testing.assert_allclose(r1.center_lps_mm, r2.center_lps_mm, atol=1e-4)
        assert 0.0 <= r1.confidence <= 1.0 and r2.heatmap is None
        heat = r1.heatmap
        assert heat.shape_kji == (2, 4, 5) and np.allclose(heat.spacing_mm, 8.0)
        # token (0, 0, 0) is crop voxel (0, 0, 0): half a window minus half a voxel from the crop centre
        np.testing.assert_allclose(heat.origin_lps_mm, r1.start_lps_mm - (half - 0.5))
        assert heat.array.max() == pytest.approx(r1.confidence, abs=1e-6)
    again = track_lesions(path, vol, vol, lesions[:1], shift, device="cpu")
    np.testing.assert_allclose(again[0].center_lps_mm, one[0].center_lps_mm, atol=1e-4)


def test_inference_needs_no_training_code(tmp_path):
    """Slicer ships TLTTrackerLib without training/ (see TLTTrackerLib/CMakeLists.txt): inference must not
    import it."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    path = save_checkpoint(tmp_path / "m.pt", build_tracker(TINY), TINY, PRE)
    code = (
        "import sys; sys.modules['TLTTrackerLib.training'] = None\n"
        "from TLTTrackerLib.inference import TLTPredictor\n"
        "from TLTTrackerLib.phantom import make_phantom\n"
        "from TLTTrackerLib.transforms import AffineTransform\n"
        "vol, les = make_phantom(0, shape_kji=(36, 56, 56), spacing_mm=(2.0, 2.0, 2.5), n_lesions=1)\n"
        f"predictor = TLTPredictor.from_checkpoint({str(path)!r}, device='cpu')\n"
        "res = predictor.predict(vol, vol, les, AffineTransform())\n"
        "print(len(res))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "1"


def test_untrained_checkpoint_warns_and_reports_no_confidence(tmp_path, caplog):
    """step 0 = never trained: a loud warning, NaN confidences and the flag untrained_model (not 0.7 as if real)."""
    import numpy as np

    from TLTTrackerLib.checkpoint import is_trained, load_checkpoint
    from TLTTrackerLib.inference import TLTPredictor
    from TLTTrackerLib.phantom import make_phantom
    from TLTTrackerLib.transforms import AffineTransform

    path = save_checkpoint(tmp_path / "u.pt", build_tracker(TINY), TINY, PRE)
    assert not is_trained(load_checkpoint(path))
    assert is_trained(load_checkpoint(save_checkpoint(tmp_path / "t.pt", build_tracker(TINY), TINY, PRE, step=3)))
    with caplog.at_level("WARNING"):
        predictor = TLTPredictor.from_checkpoint(path, device="cpu")
    assert any("NOT TRAINED" in r.getMessage() for r in caplog.records)
    vol, lesions = make_phantom(3, shape_kji=(36, 56, 56), spacing_mm=(2.0, 2.0, 2.5), n_lesions=2)
    preds = predictor.predict(vol, vol, lesions, AffineTransform(np.eye(3), np.zeros(3)))
    assert all(np.isnan(p.confidence) and p.info["flags"] == ("untrained_model",) for p in preds)


def test_pickled_object_error_never_suggests_weights_only_false(tmp_path):
    """torch's hint (retry with weights_only=False) would run a malicious pickle: we say what is wrong instead."""
    import collections

    path = tmp_path / "evil.pt"
    torch.save({"format": "tlttracker-checkpoint", "x": collections.OrderedDict(a=Exception("boom"))}, path)
    with pytest.raises(ModelFileError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "weights_only" not in text and "pickled Python objects" in text and str(path) in text
