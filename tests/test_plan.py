"""``emowork plan``: shapes from configs alone (parameter counts of published models), the KV-cache formula against a
real cache, plans that fit or not, and CUDA batch sizes from free memory."""

from pathlib import Path

import pytest
import torch

from emowork.cli import main
from emowork.model.memory import GIB, generation_row_bytes, kv_bytes_per_token, rows_that_fit, shape_from_config
from emowork.pipeline.plan import plan_run
from emowork.pipeline.presets import get_preset

CONFIGS = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"
# published parameter counts (model cards): Llama-3.2-3B 3.21B, Qwen2.5-7B 7.61B, Llama-3.1-70B 70.6B
PUBLISHED = {"llama-3.2-3b-shape.json": (3.21e9, 28), "qwen2.5-7b-shape.json": (7.61e9, 28), "llama-3.1-70b-shape.json": (70.6e9, 80)}


@pytest.mark.parametrize("config", sorted(PUBLISHED))
def test_shapes_from_configs_match_the_published_sizes(config):
    shape = shape_from_config(str(CONFIGS / config))
    params, layers = PUBLISHED[config]
    assert shape.n_params == pytest.approx(params, rel=0.01) and shape.n_layers == layers


def test_shape_from_config_matches_the_loaded_model():
    from .conftest import load_tiny

    handle = load_tiny("tiny-llama")
    from_config = shape_from_config("tiny-llama")
    assert from_config == handle.facts  # every size, the MLP and norm kinds, the parameter count
    gpt2 = shape_from_config("tiny-gpt2")
    assert gpt2 == load_tiny("tiny-gpt2").facts and not gpt2.gated_mlp and gpt2.normalization == "LN"


def test_kv_formula_is_the_real_cache_size():
    from .conftest import load_tiny

    handle = load_tiny("tiny-llama")
    tokens = 37
    out = handle.hf_model(input_ids=torch.zeros(3, tokens, dtype=torch.long), use_cache=True)
    cache = out.past_key_values
    real = sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in cache.layers)
    assert real == 3 * tokens * kv_bytes_per_token(handle.facts, handle.dtype)


def test_plans_fit_or_say_what_to_do(capsys):
    full = get_preset("full")
    small = shape_from_config(str(CONFIGS / "llama-3.2-3b-shape.json"))
    plans = plan_run(small, full, memory_gib=80)
    assert all(p.fits for p in plans) and all(p.batch >= 1 for p in plans if p.rows)
    assert all(p.device_gib <= 80 for p in plans)
    big = str(CONFIGS / "llama-3.1-70b-shape.json")
    assert main(["plan", "--model", big, "--full", "--memory", "80"]) == 1
    out = capsys.readouterr().out
    assert "Does not fit" in out and "try --gpus 2" in out
    assert main(["plan", "--model", big, "--full", "--memory", "80", "--gpus", "2"]) == 0
    assert "Every stage fits." in capsys.readouterr().out
    # more memory never gives a smaller batch
    b40, b80 = (plan_run(small, full, m)[1].batch for m in (40, 80))
    assert b40 <= b80


def test_bad_configs_and_devices_fail_clearly(tmp_path, capsys):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    assert main(["plan", "--model", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    bad.write_text('{"hidden_size": 8}')
    assert main(["plan", "--model", str(bad)]) == 2
    assert "model_type" in capsys.readouterr().err
    assert main(["plan", "--model", "tiny-llama", "--device", "tpu"]) == 2
    assert "plan for 'cuda' or 'cpu'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="gpus"):
        plan_run(shape_from_config("tiny-llama"), get_preset("fast"), 10, gpus=0)


def test_cuda_generation_batch_comes_from_free_memory(monkeypatch):
    from types import SimpleNamespace

    from emowork.generation import generate as G
    from emowork.generation.generate import DecodingConfig
    from emowork.model import memory

    from .conftest import load_tiny

    facts = load_tiny("tiny-llama").facts
    handle = SimpleNamespace(device=torch.device("cuda"), dtype=torch.bfloat16, facts=facts, layer_device=lambda layer: torch.device("cuda"))
    row = generation_row_bytes(facts, torch.bfloat16, 100, 48)
    for free in (row * 10, row * 100):
        monkeypatch.setattr(memory, "cuda_free_bytes", lambda device, free=free: free)
        assert G._batch_size(handle, "auto", DecodingConfig(max_new_tokens=48), 100) == rows_that_fit(free, row) == int(0.8 * free // row)
    assert G._batch_size(SimpleNamespace(device=torch.device("cpu")), "auto", DecodingConfig(), 100) == G.CPU_GENERATION_BATCH
    # split over two GPUs: the batch is sized by the device with least room
    split = SimpleNamespace(device=torch.device("cuda", 0), dtype=torch.bfloat16, facts=facts,
                            layer_device=lambda layer: torch.device("cuda", int(layer >= facts.n_layers // 2)))
    monkeypatch.setattr(memory, "cuda_free_bytes", lambda device: row * (100 if device.index == 0 else 10))
    assert G._batch_size(split, "auto", DecodingConfig(max_new_tokens=48), 100) == rows_that_fit(row * 10, row)
    assert GIB == 2 ** 30
