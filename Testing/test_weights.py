"""Model registry, checksum-verified cache, download over a loopback HTTP server, offline and bad-file errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest

from TLTTrackerLib.errors import ModelFileError
from TLTTrackerLib.weights import load_registry, resolve_model, verify


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    payload = b"not really a model, but bytes with a checksum" * 100
    (root / "m.pt").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/m.pt"
    registry = {"bundled": None, "models": [{"name": "tiny", "file": "tiny.pt", "url": url,
                                             "sha256": hashlib.sha256(payload).hexdigest(), "size_bytes": len(payload)}]}
    yield registry, payload
    server.shutdown()


def test_registry_file_is_valid():
    reg = load_registry()
    assert "models" in reg and "bundled" in reg
    for m in reg["models"]:
        assert {"name", "file", "url", "sha256", "size_bytes", "licence"} <= set(m)


def test_download_with_progress_then_cache(served, tmp_path, monkeypatch):
    registry, payload = served
    monkeypatch.setenv("TLT_TRACKER_CACHE", str(tmp_path / "cache"))
    seen = []
    path = resolve_model("tiny", registry, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == payload and seen[-1][0] == len(payload)
    monkeypatch.setenv("TLT_TRACKER_OFFLINE", "1")  # now cached: works offline
    assert resolve_model("tiny", registry) == path


def test_bad_checksum_is_rejected_and_nothing_left(served, tmp_path, monkeypatch):
    registry, _ = served
    registry["models"][0]["sha256"] = "0" * 64
    monkeypatch.setenv("TLT_TRACKER_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelFileError, match="sha256"):
        resolve_model("tiny", registry)
    assert not any((tmp_path / "cache").glob("*"))


def test_offline_without_cache_says_what_to_do(served, tmp_path, monkeypatch):
    registry, _ = served
    monkeypatch.setenv("TLT_TRACKER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TLT_TRACKER_OFFLINE", "1")
    with pytest.raises(ModelFileError, match="TLT_TRACKER_OFFLINE"):
        resolve_model("tiny", registry)


def test_paths_env_and_unknown_names(tmp_path, monkeypatch):
    f = tmp_path / "mine.pt"
    f.write_bytes(b"x")
    assert resolve_model(str(f), {"bundled": None, "models": []}) == f
    monkeypatch.setenv("TLT_TRACKER_MODEL", str(f))
    assert resolve_model(None, {"bundled": None, "models": []}) == f
    monkeypatch.delenv("TLT_TRACKER_MODEL")
    assert resolve_model(None, {"bundled": None, "models": []}) is None
    with pytest.raises(ModelFileError, match="neither a file nor a known model"):
        resolve_model("nonexistent-model", {"bundled": None, "models": []})
    with pytest.raises(ModelFileError, match="sha256"):
        verify(f, "1" * 64)
