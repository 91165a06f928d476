"""Shared fixtures: an isolated cache per test session (converted models shared), tiny and embedded models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("EMOWORK_PROGRESS", "0")

TINY_NAMES = ["tiny-llama", "tiny-qwen2", "tiny-gpt2"]


def _real_models_dir() -> Path:
    from emowork.paths import models_dir

    return models_dir()


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point EMOWORK_CACHE_DIR at a fresh folder; its models/ links to the real one (convert the GGUF once)."""
    real_models = _real_models_dir()
    root = tmp_path_factory.mktemp("emowork-cache")
    (root / "models").symlink_to(real_models, target_is_directory=True)
    previous = os.environ.get("EMOWORK_CACHE_DIR")
    os.environ["EMOWORK_CACHE_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("EMOWORK_CACHE_DIR", None)
    else:
        os.environ["EMOWORK_CACHE_DIR"] = previous


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder for one test (converted models and the judges' scores on fixed texts still shared)."""
    root = tmp_path / "cache"
    root.mkdir()
    (root / "models").symlink_to(_real_models_dir_from_session(), target_is_directory=True)
    scores = Path(os.environ["EMOWORK_CACHE_DIR"]) / "judge-scores"
    scores.mkdir(exist_ok=True)
    (root / "judge-scores").symlink_to(scores.resolve(), target_is_directory=True)
    monkeypatch.setenv("EMOWORK_CACHE_DIR", str(root))
    return root


def _real_models_dir_from_session() -> Path:
    return Path(os.environ["EMOWORK_CACHE_DIR"]).joinpath("models").resolve()


_tiny_cache: dict[str, object] = {}


@pytest.fixture(params=TINY_NAMES)
def tiny(request: pytest.FixtureRequest):
    """Each tiny model in turn (loaded once per session)."""
    return load_tiny(request.param)


def load_tiny(name: str):
    import emowork

    if name not in _tiny_cache:
        _tiny_cache[name] = emowork.load_model(name, device="cpu")
    return _tiny_cache[name]


@pytest.fixture
def tiny_llama():
    return load_tiny("tiny-llama")


@pytest.fixture
def tiny_gpt2():
    return load_tiny("tiny-gpt2")


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct model on CPU, float32 (converted once into the cache)."""
    import emowork

    return emowork.load_model("embedded", device="cpu")
