import pytest
import torch

from emowork import components as C
from emowork.hooks.intervention import Intervention
from emowork.analysis.consistency import as_directions
from emowork.data import load_sev
from emowork.analysis.directions import extract


@pytest.fixture(scope="module")
def setup():
    from .conftest import load_tiny

    out = {}
    for name in ("tiny-llama", "tiny-gpt2"):
        handle = load_tiny(name)
        subset = load_sev("analysis").select(per_theme=1)
        directions = extract(handle, subset, groups="all", progress=False)
        samples = C.collect_samples(handle, subset.groups[:4], progress=False)
        out[name] = (handle, directions, samples)
    return out


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("method", ["masked", "linear"])
def test_fast_head_importance_equals_the_masking_loop(setup, name, method):
    handle, directions, samples = setup[name]
    fast = C.head_importance(handle, directions, samples, method)
    layers = list(range(handle.facts.n_layers))
    for emotion in ("anger", "disgust"):
        loop = C.head_importance_masking_loop(handle, directions, samples.prompts_of(emotion)[:2], emotion, layers, method)
        got = fast.per_sample[:2, samples.emotions.index(emotion)]
        torch.testing.assert_close(got, loop, rtol=1e-4, atol=1e-5)
    assert fast.mean.shape == (6, handle.facts.n_layers, handle.facts.n_heads)


def test_linear_importance_sums_to_the_attention_write(setup):
    handle, directions, samples = setup["tiny-llama"]
    linear = C.head_importance(handle, directions, samples, "linear")
    total = linear.per_sample.sum(-1)  # [G, E, L]
    attn_out = samples.acts["resid_mid"] - torch.cat([torch.zeros_like(samples.acts["resid_post"][:, :, :1]),
                                                      samples.acts["resid_post"][:, :, :-1]], dim=2)
    v = directions.directions["attn"]  # [E, L, D]
    bias = torch.stack([handle.b_O(L) if handle.b_O(L) is not None else torch.zeros(handle.facts.d_model)
                        for L in range(handle.facts.n_layers)])
    expected = torch.einsum("geld,eld->gel", attn_out - bias, v)
    torch.testing.assert_close(total[:, :, 1:], expected[:, :, 1:], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_neuron_contributions_sum_to_the_mlp_write(setup, name):
    handle, directions, samples = setup[name]
    neurons = C.neuron_contributions(handle, directions, samples)
    f = handle.facts
    mlp_out = samples.acts["resid_post"] - samples.acts["resid_mid"]  # [G, E, L, D]
    bias = torch.stack([handle.b_out(L) if handle.b_out(L) is not None else torch.zeros(f.d_model) for L in range(f.n_layers)])
    v = directions.directions["mlp"]
    expected = torch.einsum("geld,eld->gel", mlp_out - bias, v).mean(0)  # [E, L]
    torch.testing.assert_close(neurons.mean.sum(-1), expected, rtol=1e-3, atol=1e-4)
    idx, values = neurons.top("fear", 1, 4)
    assert values.tolist() == sorted(values.tolist(), reverse=True) and len(set(idx.tolist())) == 4
    assert 0 < neurons.share_of_top("fear", 1, 4) <= 1
    rows = neurons.table(2, layers=[0])
    assert len(rows) == 12 and {"emotion", "layer", "neuron", "mean_contribution", "std", "sign"} <= set(rows[0])


@pytest.mark.parametrize("kind", ["neuron", "head"])
@pytest.mark.parametrize("operation", ["ablate", "enhance"])
def test_last_token_runner_equals_a_full_forward_with_the_edit(setup, kind, operation):
    handle, directions, samples = setup["tiny-llama"]
    prompts = samples.prompts_of("sadness")
    delta = (C.difference_vectors(samples.acts["mlp_post"])[1, 1] if kind == "neuron"
             else C.difference_vectors(samples.z_heads(handle.facts.n_heads))[1, 1])
    edit = C.component_edit(kind, 1, (0, 2), operation, delta)
    read = "blocks.3.hook_resid_post"
    fast = C.LastTokenRunner(handle, prompts).run([edit], [read])[read]
    seen = {}
    from emowork.hooks.attach import attach_hooks
    from emowork.hooks.executors import intervene

    enc = handle.encode(prompts)
    with torch.inference_mode(), intervene(handle, [edit], enc["input_ids"].shape[1], backend="bridge"), \
            attach_hooks(handle, [(read, lambda a, hook: seen.__setitem__("x", a[:, -1].float().clone()))]):
        handle.hf_model(**enc, use_cache=False)
    torch.testing.assert_close(fast, seen["x"], rtol=1e-4, atol=1e-4)
    unedited = C.LastTokenRunner(handle, prompts).run([], [read])[read]
    assert not torch.allclose(fast, unedited)


def test_dose_response_top_beats_random(setup):
    handle, directions, samples = setup["tiny-llama"]
    neurons = C.neuron_contributions(handle, directions, samples)
    heads = C.head_importance(handle, directions, samples)
    dose = C.run_dose_response(handle, directions, samples, neurons, heads, layers=[1], readout=2, neuron_ks=(1, 4, 16),
                               seeds=5, operations=("ablate",), progress=False)
    top = dose.curve("neuron", "ablate", "top")
    rand = dose.curve("neuron", "ablate", "random")
    assert sorted(top) == [1, 4, 16] and rand[16]["n"] == 6 * 5
    assert top[16]["mean"] < rand[16]["mean"], "ablating the neurons that write the direction must remove more of it"
    assert dose.saturation_k("neuron", "ablate") in (1, 4, 16)
    assert sorted(dose.curve("head", "ablate", "top")) == [1, 2, 4]
    assert C.target_layers(30, C.readout_layer(30)) == [7, 14, 20] and C.readout_layer(30) == 25


def test_edits_during_generation_are_per_row_and_cache_safe(setup):
    from emowork.generation.generate import DecodingConfig, generate

    handle, directions, samples = setup["tiny-llama"]
    prompts = samples.prompts_of("anger")[:2]
    big = torch.full((handle.facts.d_mlp,), 50.0)
    edits = [[C.component_edit("neuron", 1, range(20), "enhance", big)], []]  # prompt 0 edited, prompt 1 not
    factory = lambda idx: [C.component_edit("neuron", 1, range(20), "enhance", big, rows=(row,))  # noqa: E731
                           for row, i in enumerate(idx) if edits[i]]
    config = DecodingConfig(max_new_tokens=6)
    edited = generate(handle, prompts, config, intervention=factory, progress=False)
    plain = generate(handle, prompts, config, progress=False)
    assert edited[1].text == plain[1].text and edited[0].text != plain[0].text
    handle.hf_model.generation_config.use_cache = False
    try:
        uncached = generate(handle, prompts, config, intervention=factory, progress=False)
    finally:
        handle.hf_model.generation_config.use_cache = True
    assert [g.text for g in uncached] == [g.text for g in edited]


def test_viewers_render_offline(setup, monkeypatch):
    import circuitsvis.utils.render as render

    def no_network():
        raise AssertionError("circuitsvis tried to reach the network")

    monkeypatch.setattr(render, "internet_on", no_network)
    handle, directions, samples = setup["tiny-llama"]
    prompt = samples.prompts_of("fear")[0]
    html = C.attention_patterns(handle, prompt, 1, heads=[0, 1])
    assert "L1H0" in html._repr_html_() and "unpkg.com" not in html._repr_html_()
    tokens, contrib = C.head_token_contributions(handle, prompt, 2, 1, directions.vector("fear", 2, "attn"))
    linear = C.head_importance(handle, directions, samples, "linear").per_sample[0, samples.emotions.index("fear"), 2, 1]
    assert len(tokens) == len(contrib) and float(contrib.sum()) == pytest.approx(float(linear), rel=1e-4, abs=1e-5)
    assert "<span" in C.colored_tokens(tokens, contrib.tolist(), "x")._repr_html_()
    rows = C.neuron_activations(samples, 1, 3)
    assert len(rows) == 4 * 6 and C.top_activating(samples, 1, 3, 2)[0]["activation"] == max(r["activation"] for r in rows)


@pytest.mark.embedded
def test_embedded_fast_heads_equal_the_masking_loop(embedded):
    subset = load_sev("analysis").select(per_theme=1)
    directions = extract(embedded, subset, groups="all", progress=False)
    samples = C.collect_samples(embedded, subset.groups[:1], emotions=["anger"], progress=False)
    for method in ("masked", "linear"):
        fast = C.head_importance(embedded, directions, samples, method).per_sample[:, 0][:, [5, 20]]
        loop = C.head_importance_masking_loop(embedded, directions, samples.prompts_of("anger"), "anger", [5, 20], method)
        torch.testing.assert_close(fast, loop, rtol=1e-3, atol=1e-4)



def test_judged_edits_group_rows_by_emotion_with_the_same_replies(setup):
    """One edit per emotion over its rows gives exactly the replies of one edit per row."""
    from emowork.components.judged_edits import _edits_by_emotion
    from emowork.generation.generate import DecodingConfig, generate

    handle, directions, samples = setup["tiny-llama"]
    prompts = samples.prompts_of("anger")[:2] * 2
    row_emotions = ["anger", "fear", "anger", "fear"]
    delta = {"anger": torch.full((handle.facts.d_mlp,), 40.0), "fear": torch.full((handle.facts.d_mlp,), -40.0)}
    make = lambda e, ei: ("enhance", (1, 5, 9) if e == "anger" else (2, 4), delta[e])  # noqa: E731
    grouped = _edits_by_emotion(1, row_emotions, ["anger", "fear"], make)
    assert len(grouped) == 2 and grouped[0].rows == (0, 2)
    per_row = [C.component_edit("neuron", 1, make(e, 0)[1], "enhance", delta[e], rows=(r,)) for r, e in enumerate(row_emotions)]
    config = DecodingConfig(max_new_tokens=6)
    a = generate(handle, prompts, config, intervention=lambda idx: grouped, batch_size=4, progress=False)
    b = generate(handle, prompts, config, intervention=lambda idx: per_row, batch_size=4, progress=False)
    assert [g.text for g in a] == [g.text for g in b]


def test_run_many_stacks_variants_and_equals_one_pass_each(setup):
    handle, directions, samples = setup["tiny-llama"]
    prompts = samples.prompts_of("fear")
    delta = C.difference_vectors(samples.acts["mlp_post"])[3, 1]
    per_row = torch.randn(2, handle.facts.d_mlp)
    variants = [[], [C.component_edit("neuron", 1, (0, 2), "ablate")],
                [C.component_edit("neuron", 1, (1, 3), "enhance", delta)],
                [C.component_edit("head", 2, (1,), "ablate"), C.component_edit("neuron", 0, (5,), "ablate", rows=(1,))],
                [Intervention("mlp_post", 1, "add", per_row, units=(0, 4), rows=(0, 2))]]
    read = ["blocks.3.hook_resid_post", "blocks.2.hook_resid_mid"]
    runner = C.LastTokenRunner(handle, prompts)
    one_each = [runner.run(edits, read) for edits in variants]
    passes = []
    stacked = runner.run_many(variants, read, rows_per_pass=2 * len(prompts), advance=passes.append)
    assert passes == [2, 2, 1]  # two variants per pass, then the rest
    for single, many in zip(one_each, stacked):
        for name in read:
            assert many[name].shape == single[name].shape == (len(prompts), handle.facts.d_model)
            torch.testing.assert_close(many[name], single[name], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(stacked[1][read[0]], stacked[0][read[0]])  # the variants differ
    torch.testing.assert_close(runner.run([], read)[read[0]], one_each[0][read[0]])  # the cache is intact
