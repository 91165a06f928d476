"""Circuits on tiny models: sublayer influence (stacked path = plain loop), assembly (budget, floors, proportional
allocation, top-ranked units), modulation (only the listed units; fast path = bridge), random controls, files."""

import json

import pytest
import torch

from emowork import circuits as K
from emowork import components as C
from emowork.analysis.directions import EmotionDirections, extract
from emowork.data import load_sev
from emowork.emotions import EMOTIONS
from emowork.hooks.executors import intervene
from emowork.prompts import build_prompts


@pytest.fixture(scope="module")
def setup():
    from .conftest import load_tiny

    handle = load_tiny("tiny-llama")
    subset = load_sev("analysis").select(per_theme=1)
    directions = extract(handle, subset, groups="all", progress=False)
    samples = C.collect_samples(handle, subset.groups[:4], progress=False)
    neurons = C.neuron_contributions(handle, directions, samples)
    heads = C.head_importance(handle, directions, samples)
    neutral = build_prompts(handle, subset.groups[4:7], emotions=None).texts
    return handle, directions, samples, neurons, heads, neutral


def synthetic_directions(n_layers=8, d=16, same=range(3, 7)):
    """Random unit directions, identical across the layers in ``same`` (adjacent cosine 1 there)."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(6, n_layers, d, generator=g)
    for layer in same:
        v[:, layer] = v[:, same[0]]
    v = v / v.norm(dim=-1, keepdim=True)
    dirs = {"attn": v.clone(), "mlp": v.clone()}
    return EmotionDirections(list(EMOTIONS), dirs, {k: t.clone() for k, t in dirs.items()}, {k: torch.ones(6, n_layers) for k in dirs})


def test_stable_segment_is_the_longest_run_of_aligned_layers():
    layers, reason = K.stable_segment(synthetic_directions())
    assert layers == [3, 4, 5, 6] and "longest run" in reason
    none, why = K.stable_segment(synthetic_directions(same=range(2, 3)))
    assert none == [6, 7] and "no adjacent-layer cosine" in why  # the last quarter of 8 layers


def test_reference_directions_are_unit_and_sign_aligned():
    d = synthetic_directions()
    ref = K.reference_directions(d, [3, 4, 5, 6])
    torch.testing.assert_close(ref.norm(dim=-1), torch.ones(6))
    torch.testing.assert_close(ref, d.directions["mlp"][:, 3])  # identical layers: their own direction
    d.directions["attn"][:, 4] *= -1  # a flipped layer is aligned before averaging
    torch.testing.assert_close(K.reference_directions(d, [3, 4, 5, 6]), ref)


def test_stacked_influence_equals_the_plain_loop(setup):
    handle, directions, _, _, _, neutral = setup
    emotions, alphas = ["anger", "fear"], (0.3, 0.7)
    fast = K.sublayer_influence(handle, directions, neutral, alphas, emotions, rows_per_pass=7, progress=False)
    loop = K.sublayer_influence_loop(handle, directions, neutral, alphas, emotions)
    L = handle.facts.n_layers
    assert fast.per_sample.shape == loop.shape == (len(neutral), 2, L, 2)
    torch.testing.assert_close(fast.per_sample, loop, rtol=1e-3, atol=1e-3)
    assert fast.values.abs().sum() > 0 and fast.sigma.shape == (L, 2) and (fast.sigma > 0).all()
    summary = json.loads(json.dumps(fast.as_dict()))
    assert set(summary["influence"]) == set(emotions) and len(summary["influence"]["anger"]["mlp"]) == L
    interval = fast.interval("anger", L - 1, "mlp")
    assert interval["low"] <= interval["mean"] <= interval["high"] and interval["n"] == len(neutral)
    last = L - 1  # a push at the last block's MLP output lands on the read-out directly: I = <v_mlp, v_ref>
    expected = (directions.directions["mlp"][[0, 3], last] * fast.v_ref).sum(-1)
    torch.testing.assert_close(fast.values[:, last, 1], expected, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="non-zero"):
        K.sublayer_influence(handle, directions, neutral, (0.0,), progress=False)


def test_allocate_respects_budget_floor_cap_and_proportion():
    assert K.allocate(20, [0, 1, 3, 0], floor=2, cap=100) == [2, 5, 11, 2]  # floors 8, then 12 split 1:3
    assert sum(K.allocate(20, [0, 1, 3, 0], 2, 6)) == 20 and max(K.allocate(20, [0, 1, 3, 0], 2, 6)) == 6
    assert K.allocate(6, [5, 0, 0, 0], floor=4, cap=10) == [3, 1, 1, 1]  # floors lowered to total // n
    assert K.allocate(100, [1, 1], floor=0, cap=3) == [3, 3]  # cannot exceed what the blocks have
    assert K.allocate(9, [0, 0, 0], 1, 10) == [3, 3, 3]  # no positive influence: even


def make_circuit(setup, budget=3, **kw):
    handle, directions, samples, neurons, heads, _ = setup
    L = handle.facts.n_layers
    influence = torch.zeros(6, L, 2)
    influence[:, 1, 1] = 1.0  # the mlp of block 1 and the attention of block 2 carry everything
    influence[:, 2, 0] = 1.0
    dmu_n = C.difference_vectors(samples.acts["mlp_post"])
    dmu_h = C.difference_vectors(samples.z_heads(handle.facts.n_heads))
    return K.assemble(influence, neurons, heads, dmu_n, dmu_h, budget_per_sublayer=budget, **kw), dmu_n, dmu_h


def test_assemble_budget_minimums_allocation_and_ranking(setup):
    handle, _, _, neurons, heads, _ = setup
    f = handle.facts
    circuit, dmu_n, _ = make_circuit(setup, budget=3, min_neurons=2, min_heads=1)
    total = 3 * 2 * f.n_layers
    for e in circuit.emotions:
        counts = circuit.counts(e)
        assert sum(counts["neuron"]) == round(0.7 * total) and sum(counts["head"]) == total - round(0.7 * total)
        assert min(counts["neuron"]) >= 2 and min(counts["head"]) >= 1
        assert counts["neuron"][1] == max(counts["neuron"]) > counts["neuron"][0]  # more where the mlp influence is
        assert counts["head"][2] == max(counts["head"])
        ei = neurons.emotions.index(e)
        in_block_1 = circuit.units[e]["neuron"][circuit.units[e]["neuron"][:, 0] == 1][:, 1]
        assert set(in_block_1.tolist()) == set(neurons.mean[ei, 1].topk(len(in_block_1)).indices.tolist())
        chosen = circuit.units[e]["neuron"][0]
        assert circuit.deltas[e]["neuron"][0] == dmu_n[ei, chosen[0], chosen[1]]
    big = make_circuit(setup, budget=10)[0]  # 24 heads asked, 16 exist: the other 8 go to neurons
    assert sum(big.counts("anger")["head"]) == f.n_heads * f.n_layers and big.size() == 10 * 2 * f.n_layers
    overlap = circuit.overlap()
    assert overlap["jaccard"][0][0] == 1 and all(0 <= x <= 1 for row in overlap["jaccard"] for x in row)
    assert circuit.only("neuron").size() == sum(circuit.counts("anger")["neuron"])
    with pytest.raises(K.CircuitError, match="influence has shape"):
        K.assemble(torch.zeros(6, 2, 2), neurons, heads, dmu_n, dmu_n)


def test_modulation_touches_only_the_circuit_and_the_fast_path_equals_the_bridge(setup):
    handle, _, _, _, _, neutral = setup
    circuit, _, _ = make_circuit(setup)
    edits = circuit.modulate(handle, "fear", 2.0)
    for edit in edits:
        listed = {i for layer, i in circuit.components("fear", "neuron" if edit.site == "mlp_post" else "head") if layer == edit.layer}
        assert set(edit.units) == listed
        unit = 1 if edit.site == "mlp_post" else handle.facts.d_head
        touched = {i // unit for i in edit.value.nonzero().flatten().tolist()}
        assert touched <= listed
    enc = handle.encode(neutral)
    logits = {}
    for backend in ("bridge", "unwrapped"):
        with torch.inference_mode(), intervene(handle, edits, enc["input_ids"].shape[1], backend=backend) as run:
            logits[backend] = run.model(**enc).logits.float()
    torch.testing.assert_close(logits["unwrapped"], logits["bridge"], rtol=1e-4, atol=1e-4)
    with torch.inference_mode(), intervene(handle, [], enc["input_ids"].shape[1], backend="bridge") as run:
        plain = run.model(**enc).logits.float()
    real = enc["attention_mask"][:, :-1].bool()  # earlier (non-padding) positions untouched: last prompt token only
    assert torch.equal(plain[:, :-1][real], logits["bridge"][:, :-1][real])
    assert not torch.allclose(plain[:, -1], logits["bridge"][:, -1])
    with pytest.raises(K.CircuitError, match="no 'joy' part"):
        circuit.modulate(handle, "joy", 1.0)


def test_random_circuits_match_per_block_counts(setup):
    circuit, dmu_n, dmu_h = make_circuit(setup)
    one, again, other = (K.random_circuit(circuit, dmu_n, dmu_h, seed) for seed in (1, 1, 2))
    for e in circuit.emotions:
        assert one.counts(e) == circuit.counts(e)
        assert one.components(e, "neuron") == again.components(e, "neuron") != other.components(e, "neuron")
    assert one.components("anger", "neuron") != circuit.components("anger", "neuron")


def test_circuit_files_round_trip_and_refuse_damage(setup, tmp_path):
    circuit, _, _ = make_circuit(setup)
    circuit.save(tmp_path / "c")
    back = K.Circuit.load(tmp_path / "c")
    assert back.sha256 == circuit.sha256 and back.counts("sadness") == circuit.counts("sadness")
    with pytest.raises(K.CircuitError, match="no circuit.json"):
        K.Circuit.load(tmp_path / "missing")
    meta = json.loads((tmp_path / "c" / "circuit.json").read_text())
    meta["provenance"]["budget_per_sublayer"] = 99
    (tmp_path / "c" / "circuit.json").write_text(json.dumps(meta))
    with pytest.raises(K.CircuitError, match="do not match"):
        K.Circuit.load(tmp_path / "c")


def test_comparison_runs_every_condition_on_the_same_items(setup, fresh_cache):
    from emowork.analysis.steering import SteeringSetting
    from emowork.generation.generate import DecodingConfig
    from emowork.hooks.executors import choose_backend

    from .helpers import LengthJudge

    handle, directions, samples, _, _, _ = setup
    circuit, dmu_n, dmu_h = make_circuit(setup)
    groups = load_sev("test").select(per_theme=1).groups[:2]
    selection = load_sev("analysis").select(per_theme=1).groups[8:9]
    budgets = {1: make_circuit(setup, budget=1)[0], 3: circuit}
    result = K.compare_methods(handle, circuit, groups, LengthJudge(), DecodingConfig(max_new_tokens=4), directions,
                               SteeringSetting(0.25, 0.75, 4.0), scales=(4.0, 8.0), budgets=budgets, random_seeds=2,
                               dmu=(dmu_n, dmu_h), dmu_emotions=samples.emotions, selection_groups=selection, progress=False)
    names = set(result["conditions"])
    assert names == {"unsteered", "prompting", "steering", "circuit", "neurons only", "heads only", "budget 1",
                     "random circuit (seed 0)", "random circuit (seed 1)", "prompting, circuit ablated",
                     "prompting, random circuit ablated"}
    n = 2 * 6
    for name, summary in result["conditions"].items():
        assert summary["n"] == n and summary["low"] <= summary["accuracy"] <= summary["high"], name
    assert set(result["sweep"]) == {"4.0", "8.0"} and all(v["n"] == 6 for v in result["sweep"].values())  # chosen elsewhere
    assert result["budgets"][3] is result["conditions"]["circuit"] and len(result["random"]) == 2
    drop = result["ablation_drop"]
    assert drop["low"] <= drop["mean"] <= drop["high"] and drop["n"] == n
    rows = result["rows"]
    assert {r["group_id"] for r in rows if r["condition"] == "circuit x8.0"} == {g.group_id for g in selection}
    texts = {c: [r["reply"] for r in rows if r["condition"] == c] for c in names}
    assert texts["circuit"] != texts["unsteered"]  # modulation changes replies
    assert result["backend"] == "unwrapped" == choose_backend(handle, K.circuit_edits(handle, circuit, ["fear"], 1.0))
    with pytest.raises(ValueError, match="difference vectors"):
        K.compare_methods(handle, circuit, groups, LengthJudge(), DecodingConfig(max_new_tokens=4), progress=False)


def test_circuit_figures_draw_what_they_are_given(setup):
    from emowork import plots

    circuit, _, _ = make_circuit(setup)
    L = circuit.n_layers
    influence = {e: {"attn": [0.1 * i for i in range(L)], "mlp": [-0.1 * i for i in range(L)]} for e in circuit.emotions[:2]}
    heat = plots.influence_heatmap(influence, [1, 2], "influence")
    assert len(heat.data) == 2 and heat.data[0].z[1][1] == pytest.approx(-0.1) and len(heat.layout.shapes) == 2
    comp = plots.circuit_composition({e: circuit.counts(e) for e in circuit.emotions[:3]}, "composition")
    assert len(comp.data) == 6 and sum(comp.data[0].y) == sum(circuit.counts(circuit.emotions[0])["neuron"])
    cell = {"accuracy": 0.5, "low": 0.4, "high": 0.6}
    bars = plots.method_comparison({"prompting": cell, "circuit": cell, "random circuit (seed 0)": cell}, "comparison",
                                   {"prompting": 0.9896, "circuit": 0.9965}, "Llama-3.2-3B (the paper)")
    assert list(bars.data[1].x) == ["prompting", "circuit"] and bars.data[1].name == "Llama-3.2-3B (the paper)"
    assert bars.data[0].marker.color[2] == "#8C8C8C"  # controls are grey
    curve = plots.budget_curve({1: cell, 10: cell}, "budget", random=cell, unsteered=cell)
    assert list(curve.data[0].x) == [1, 10] and len(curve.layout.shapes) == 2
    overlap = circuit.overlap()
    matrix = plots.overlap_matrix(overlap["emotions"], overlap["jaccard"], overlap["shared"], "overlap")
    assert matrix.data[0].z[0][0] == 1


def test_the_live_panel_modulates_a_circuit_and_loads_one_from_a_run(setup, tmp_path):
    from emowork.panels.live_steering import LiveSteering, SteeringRequest
    from widgets.steering import SteeringPanel

    from .helpers import LengthJudge

    handle, directions, _, _, _, _ = setup
    circuit, _, _ = make_circuit(setup)
    engine = LiveSteering(handle, directions, LengthJudge(), circuit=circuit)
    assert "circuit" in engine.methods
    request = SteeringRequest("My neighbour repainted the fence.", "fear", strength=8.0, method="circuit", max_new_tokens=6)
    steered, plain = engine.steered(request), engine.baseline(request)
    assert steered.tokens != plain.tokens  # modulation changes the reply
    for mode in ("last_prompt", "from_last_prompt"):
        edits = circuit.modulate(handle, "fear", 8.0, mode)
        assert {e.when for e in edits} == {mode}
    six = engine.compare(SteeringRequest("My neighbour repainted the fence.", strength=8.0, method="circuit", max_new_tokens=6))
    assert set(six) == set(circuit.emotions)
    run = tmp_path / "run" / "artifacts"
    directions.save(run / "directions")
    assert "circuit" not in SteeringPanel.from_run(tmp_path / "run", handle, LengthJudge()).engine.methods
    circuit.save(run / "circuits")
    assert "circuit" in SteeringPanel.from_run(tmp_path / "run", handle, LengthJudge()).engine.methods
