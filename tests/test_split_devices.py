"""A model split over devices (``load_model(..., gpus=N)``: accelerate's device_map): hooks, interventions and capture
follow each block's device.

On CPU the split is emulated by putting the second half of a tiny model on the ``meta`` device
(:func:`helpers.split_over_meta`): a tensor on the wrong device in any hook raises, so the forward passes below check
the device handling of every site on both backends. Generation needs real values past the split, so it is checked on
two GPUs only (skipped here)."""

from __future__ import annotations

import pytest
import torch

import emowork
from emowork.errors import DeviceError
from emowork.hooks.capture import capture
from emowork.hooks.executors import choose_backend, intervene
from emowork.hooks.intervention import Intervention
from emowork.model.unwrapped import unwrapped_model
from .helpers import split_over_meta

PROMPTS = ["The rain kept falling on the empty square.", "Hi"]


def every_site(handle, rows=None):
    f = handle.facts
    widths = {"resid_pre": f.d_model, "resid_post": f.d_model, "attn_out": f.d_model, "mlp_out": f.d_model,
              "mlp_post": f.d_mlp, "z": f.n_heads * f.d_head}
    return [Intervention(site, layer, "add", torch.full((width,), 0.5), when="all", rows=rows, rms_units=site.startswith("resid"))
            for layer in range(f.n_layers) for site, width in widths.items()]


@pytest.fixture
def split():
    handle = emowork.load_model("tiny-llama", device="cpu")
    return split_over_meta(handle, handle.facts.n_layers // 2)


def test_the_handle_reports_each_block_device(split):
    n = split.facts.n_layers
    assert split.split and split.device == torch.device("cpu")
    assert [split.layer_device(layer).type for layer in range(n)] == ["cpu"] * (n // 2) + ["meta"] * (n - n // 2)
    assert not emowork.load_model("tiny-llama", device="cpu").split


@pytest.mark.parametrize("backend", ["bridge", "unwrapped"])
def test_interventions_at_every_site_follow_the_activation_device(split, backend):
    enc = split.encode(PROMPTS)
    for rows in (None, (1,)):
        with torch.inference_mode(), intervene(split, every_site(split, rows), enc["input_ids"].shape[1], backend=backend) as run:
            logits = run.model(**enc, use_cache=False).logits
        assert run.backend == backend and logits.device.type == "meta"  # the last block's device


def test_the_unwrapped_model_carries_the_device_hooks():
    """Without accelerate's hooks copied over, the unwrapped model would hand a CPU tensor to a meta block."""
    handle = emowork.load_model("tiny-llama", device="cpu")
    split_over_meta(handle, 1)
    plain = unwrapped_model(handle)
    hooked = [name for name, module in plain.named_modules() if getattr(module, "_hf_hook", None) is not None]
    assert len(hooked) == handle.facts.n_layers + 2, hooked  # every block, the final norm, the unembedding
    enc = handle.encode(PROMPTS)
    with torch.inference_mode():
        assert plain(**enc, use_cache=False).logits.device.type == "meta"


def test_capture_reads_blocks_before_the_split_and_the_input_of_the_first_split_block(split):
    """The input of block k arrives on block k-1's device (the bridge hook sees it before accelerate moves it). Blocks
    past the split hold no values on ``meta``, so capturing them is checked on two GPUs only."""
    k = split.facts.n_layers // 2
    whole = emowork.load_model("tiny-llama", device="cpu")
    got = capture(split, PROMPTS, ["resid_pre", "resid_post"], layers=list(range(k)), cache=False, progress=False)
    want = capture(whole, PROMPTS, ["resid_pre", "resid_post"], layers=list(range(k)), cache=False, progress=False)
    for site in want:
        assert torch.equal(got[site], want[site]), site
    first = capture(split, PROMPTS, "resid_pre", layers=[k], cache=False, progress=False)["resid_pre"]
    assert torch.equal(first, capture(whole, PROMPTS, "resid_pre", layers=[k], cache=False, progress=False)["resid_pre"])


def test_attribution_graphs_refuse_a_split_model(split):
    from emowork.circuits.assembly import CircuitError
    from emowork.circuits.graph import read_maps

    with pytest.raises(CircuitError, match="one device"):
        read_maps(split, {0: [0]}, {})


def test_static_decoding_is_not_chosen_for_a_split_model(split):
    split.static_cache = True
    steer = [Intervention("resid_post", 1, "add", torch.ones(split.facts.d_model), when="from_last_prompt", rms_units=True)]
    assert choose_backend(split, steer, streaming=True) == "unwrapped"


def test_gpus_are_checked_before_anything_loads():
    with pytest.raises(DeviceError, match="CUDA"):
        emowork.load_model("tiny-llama", device="cpu", gpus=2)
    with pytest.raises(DeviceError, match="whole number"):
        emowork.load_model("tiny-llama", device="cpu", gpus=0)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_a_model_split_over_two_gpus_gives_the_same_results_as_one():
    from emowork.generation.generate import DecodingConfig, generate

    one = emowork.load_model("tiny-llama", device="cuda", dtype="float32")
    two = emowork.load_model("tiny-llama", device="cuda", dtype="float32", gpus=2)
    assert two.split and len({two.layer_device(layer) for layer in range(two.facts.n_layers)}) == 2
    for site in ("resid_post", "mlp_post", "z"):
        a = capture(one, PROMPTS, site, cache=False, progress=False)[site]
        b = capture(two, PROMPTS, site, cache=False, progress=False)[site]
        assert (a - b).abs().max().item() < 1e-4, site
    steer = every_site(one, rows=(1,))
    config = DecodingConfig(max_new_tokens=8)
    for handle_use_unwrapped in (True, False):
        one.use_unwrapped = two.use_unwrapped = handle_use_unwrapped
        texts = [[g.token_ids for g in generate(h, PROMPTS, config, intervention=lambda idx: steer, progress=False)]
                 for h in (one, two)]
        assert texts[0] == texts[1]
