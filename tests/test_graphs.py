"""Attribution graphs on tiny models: every node's incoming edges plus its bias add up to its input; taking one
source's write out of a frozen forward pass changes every node by exactly the edge weight; pruning, export."""

import json

import numpy as np
import pytest
import torch

from emowork.circuits.assembly import Circuit, CircuitError
from emowork.circuits.graph import attribution_graph, edges_by_patching


def toy_circuit(handle, per_block=(3, 2), seed=0):
    """A circuit of ``per_block`` (neurons, heads) drawn at random in every block, for one emotion."""
    f = handle.facts
    g = torch.Generator().manual_seed(seed)
    units = {"neuron": torch.tensor([(L, int(i)) for L in range(f.n_layers) for i in torch.randperm(f.d_mlp, generator=g)[:per_block[0]]]),
             "head": torch.tensor([(L, int(h)) for L in range(f.n_layers) for h in torch.randperm(f.n_heads, generator=g)[:per_block[1]]])}
    deltas = {"neuron": torch.zeros(len(units["neuron"])), "head": torch.zeros(len(units["head"]), f.d_head)}
    return Circuit(["anger"], f.n_layers, f.d_mlp, f.n_heads, f.d_head, {"anger": units},
                   {"anger": {k: torch.zeros(len(v)) for k, v in units.items()}}, {"anger": deltas})


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gpt2"])
def built(request):
    from .conftest import load_tiny

    handle = load_tiny(request.param)
    circuit = toy_circuit(handle)
    reference = torch.randn(handle.facts.d_model, generator=torch.Generator().manual_seed(1))
    reference = reference / reference.norm()
    graph = attribution_graph(handle, circuit, handle.format_chat("The rain stopped."), "anger", reference)
    return handle, circuit, reference, graph


def test_incoming_edges_add_up_to_every_input(built):
    handle, circuit, _, graph = built
    kinds = np.array([n.kind for n in graph.nodes])
    T = len(graph.tokens)
    assert (kinds == "neuron").sum() == len(circuit.units["anger"]["neuron"]) * T  # every position by default
    assert (kinds == "head").sum() == len(circuit.units["anger"]["head"]) * T
    assert (kinds == "error").sum() == 2 * handle.facts.n_layers * T and (kinds == "target").sum() == 1
    read = np.isin(kinds, ["neuron", "head", "target"])
    values, sums = graph.values()[read], graph.incoming_sum()[read]
    np.testing.assert_allclose(sums, values, atol=1e-4 * max(1.0, np.abs(values).max()))
    assert np.abs(values).max() > 0.1  # not a vacuous identity
    # edges only run forward: from where a node writes to a later read, and never to another position for neurons
    order = np.array([n.order for n in graph.nodes])
    pos = np.array([n.position for n in graph.nodes])
    assert (order[graph.sources] < order[graph.targets]).all()
    to_neurons = kinds[graph.targets] == "neuron"
    assert (pos[graph.sources][to_neurons] == pos[graph.targets][to_neurons]).all()
    assert (pos[graph.sources] <= pos[graph.targets]).all()


def test_removing_a_source_changes_every_node_by_its_edge(built):
    handle, _, reference, graph = built
    rng = np.random.default_rng(0)
    kinds = np.array([n.kind for n in graph.nodes])
    sources = [int(rng.choice(np.flatnonzero(kinds == k))) for k in ("token", "head", "neuron", "error") for _ in range(2)]
    changes = edges_by_patching(handle, graph, reference, sources, frozen=True, batch=4)
    expected = -graph.adjacency().numpy()[:, sources].T
    assert np.abs(expected).max() > 0.01
    np.testing.assert_allclose(changes, expected, atol=1e-4 * np.abs(expected).max())


def test_direct_write_is_the_circuit_nodes_edges_into_the_target(built):
    from emowork.circuits.graph import direct_write

    handle, circuit, reference, graph = built
    into = graph.targets == graph.target_index
    mine = np.isin([graph.nodes[s].kind for s in graph.sources[into]], ["head", "neuron"])
    expected = graph.weights[into][mine].sum()
    assert direct_write(handle, circuit, graph.prompt, "anger", reference) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_pruning_keeps_the_target_and_the_influential_part(built):
    _, _, _, graph = built
    node_influence, edge_influence = graph.influence()
    assert node_influence[graph.target_index] == 1.0 and (node_influence >= 0).all()
    small, large = graph.prune(0.5), graph.prune(0.95)
    assert small.n_nodes <= large.n_nodes <= graph.n_nodes and len(small.weights) <= len(large.weights)
    assert sum(n.kind == "target" for n in small.nodes) == 1
    assert (np.bincount(large.targets, minlength=large.n_nodes) > 0)[large.target_index]
    with pytest.raises(CircuitError, match="share"):
        graph.prune(0)


def test_bad_requests_say_what_to_fix(built):
    handle, circuit, reference, _ = built
    with pytest.raises(CircuitError, match="no 'joy' part"):
        attribution_graph(handle, circuit, "x", "joy", reference)
    with pytest.raises(CircuitError, match="width"):
        attribution_graph(handle, circuit, "x", "anger", torch.ones(3))
    with pytest.raises(CircuitError, match="positions"):
        attribution_graph(handle, circuit, "x", "anger", reference, positions=0)


def test_export_validates_round_trips_and_averages(built, tmp_path):
    import json

    from emowork.circuits import load_graph, mean_graph, validate_viewer_json
    from emowork.plots import attribution_graph_figure

    handle, circuit, reference, graph = built
    pruned = graph.prune(0.8)
    path = pruned.to_json(tmp_path / "anger.json")
    data = json.loads(path.read_text())
    validate_viewer_json(data)
    ids = {n["node_id"] for n in data["nodes"]}
    assert len(ids) == pruned.n_nodes and all(link["source"] in ids and link["target"] in ids for link in data["links"])
    assert sum(n["is_target_logit"] for n in data["nodes"]) == 1
    broken = {**data, "links": [{"source": "x"}]}
    with pytest.raises(CircuitError, match="links/0"):
        validate_viewer_json(broken)
    graph.save(tmp_path / "g")
    again = load_graph(tmp_path / "g")
    assert again.nodes == graph.nodes and np.array_equal(again.weights, graph.weights)
    (tmp_path / "g" / "graph.safetensors").write_bytes(b"damaged")
    with pytest.raises(CircuitError, match="build it again"):
        load_graph(tmp_path / "g")
    # the mean over prompts of different lengths keeps the identity on average
    other = attribution_graph(handle, circuit, handle.format_chat("A letter came for me this morning."), "anger", reference)
    mean = mean_graph([graph, other])
    kinds = np.array([n.kind for n in mean.nodes])
    read = np.isin(kinds, ["neuron", "head", "target"])
    np.testing.assert_allclose(mean.incoming_sum()[read], mean.values()[read], atol=1e-4 * np.abs(mean.values()).max())
    target = mean.nodes[mean.target_index].value
    assert target == pytest.approx((graph.nodes[graph.target_index].value + other.nodes[other.target_index].value) / 2)
    fig = attribution_graph_figure(pruned)
    assert {t.name for t in fig.data if t.mode == "markers"} >= {"target"}


def test_viewer_prunes_selects_pins_and_saves(tmp_path):
    from .conftest import load_tiny
    from emowork.panels.graph_view import GraphView, top_activating
    from widgets.graph_viewer import GraphViewer

    handle = load_tiny("tiny-llama")
    one = toy_circuit(handle)
    circuit = Circuit(["anger", "fear"], one.n_layers, one.d_mlp, one.n_heads, one.d_head,
                      {e: one.units["anger"] for e in ("anger", "fear")}, {e: one.scores["anger"] for e in ("anger", "fear")},
                      {e: one.deltas["anger"] for e in ("anger", "fear")})
    refs = torch.nn.functional.normalize(torch.randn(2, handle.facts.d_model, generator=torch.Generator().manual_seed(2)), dim=-1)
    prompts = {"rain": handle.format_chat("The rain stopped."), "mail": handle.format_chat("A letter came.")}
    graphs = {e: {name: attribution_graph(handle, circuit, p, e, refs[k], positions=3) for name, p in prompts.items()}
              for k, e in enumerate(circuit.emotions)}
    view = GraphView(graphs, share=0.5, examples=top_activating(handle, list(prompts.values()), k=2))
    small = view.shown.n_nodes
    assert view.set_share(0.95).n_nodes >= small
    heads = [i for i, n in enumerate(view.shown.nodes) if n.kind in ("head", "neuron")]
    assert heads, "a pruned graph at 95% keeps some circuit node"
    details = view.select(heads[0])
    assert set(details["contribution_by_emotion"]) == {"anger", "fear"}  # the same node in both emotions' graphs
    note = view.hover_notes()[heads[0]]
    assert all(f"{e} {v:+.3f}" in note for e, v in details["contribution_by_emotion"].items())  # hover says it too
    # the edge index gives what a scan of every edge gives
    full = view.graph
    where = [n.key for n in full.nodes].index(view.shown.nodes[heads[0]].key)
    for key, mask, other in (("incoming", full.targets == where, full.sources), ("outgoing", full.sources == where, full.targets)):
        order = np.argsort(-np.abs(full.weights[mask]), kind="stable")[:8]
        assert details[key] == [{"node": full.nodes[int(other[mask][i])].label, "weight": float(full.weights[mask][i])} for i in order]
    into = (full.sources == where) & (full.targets == full.target_index)
    assert details["contribution_by_emotion"][view.emotion] == pytest.approx(float(full.weights[into].sum()))
    side = view.side_panel_html()
    assert details["label"] in side and "top-activating prompts" in side and side.count("<span title=") > 10
    view.pin(heads[0])
    view.pin(view.shown.target_index)
    out = view.save_pinned("pair", tmp_path)
    saved = json.loads((out / "pair.json").read_text())
    assert len(saved["nodes"]) == 2 and len(saved["qParams"]["pinnedIds"]) == 2
    with pytest.raises(CircuitError, match="name the subgraph"):
        view.save_pinned("../x", tmp_path)
    view.choose(emotion="fear")
    assert view.emotion == "fear" and view.prompt == "rain" and view.selected is None
    # the widget drives the same object
    panel = GraphViewer(graphs, folder=tmp_path)
    panel.emotion.value = "fear"
    panel.prompt.value = "mail"
    assert panel.view.prompt == "mail" and panel.node.options
    panel.node.index = 0  # the most influential node
    assert panel.view.selected == panel.node.value and "incoming edges" in panel.side.value
    # a click on a node of the figure (plotly FigureWidget, anywidget) opens it in the side panel
    from plotly.callbacks import InputDeviceState, Points

    markers = [t for t in panel.figure_widget.data if t.mode == "markers" and t.name == "target"]
    markers[0]._dispatch_on_click(Points(point_inds=[0], trace_name="target"), InputDeviceState())
    target = panel.view.shown.target_index
    assert panel.view.selected == target == panel.node.value and panel.view.shown.nodes[target].label in panel.side.value
    from widgets.static import static_html

    assert "plotly" in static_html(panel.panel)  # the snapshot keeps the figure
    panel.pin()
    assert panel.save("first") is not None and (tmp_path / "first" / "pins.json").exists()
    assert panel.save("") is None and "name the subgraph" in panel.status.value


def test_standalone_page_holds_every_node_panel(tmp_path):
    from html import escape

    from .conftest import load_tiny
    from emowork.panels.graph_page import write_graph_page

    handle = load_tiny("tiny-llama")
    circuit = toy_circuit(handle)
    circuit.emotions.append("fear")
    for table in (circuit.units, circuit.scores, circuit.deltas):
        table["fear"] = table["anger"]
    refs = torch.nn.functional.normalize(torch.randn(2, handle.facts.d_model, generator=torch.Generator().manual_seed(3)), dim=-1)
    prompt = handle.format_chat("The rain stopped.")
    graphs = {e: attribution_graph(handle, circuit, prompt, e, refs[k], positions=2) for k, e in enumerate(("anger", "fear"))}
    text = write_graph_page(graphs, tmp_path / "graphs.html", share=0.9).read_text()
    data = json.loads(text.split("id='emowork-graph-data'>", 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))
    for emotion, graph in graphs.items():
        shown = graph.prune(0.9)
        panels = data[emotion]["details"]
        assert len(panels) == shown.n_nodes and len(data[emotion]["figure"]["data"]) > 1
        assert all(escape(shown.nodes[i].label) in side for i, side in enumerate(panels))
        # a node both graphs have lists its direct write onto both emotions' targets
        into = graph.sources[graph.targets == graph.target_index]
        i = next(i for i, n in enumerate(shown.nodes) if n.kind == "head" and [m.key for m in graph.nodes].index(n.key) in into)
        assert "anger:" in panels[i] and "fear:" in panels[i]
        hover = [cd[-2] for t in data[emotion]["figure"]["data"] if t.get("customdata") for cd in t["customdata"]]
        assert any("anger" in h and "fear" in h for h in hover)  # the hover lists both emotions' targets too
    assert "plotly_click" in text


def test_read_maps_in_several_passes_equal_one_pass():
    from .conftest import load_tiny
    from emowork.circuits.graph import read_maps

    handle = load_tiny("tiny-llama")
    neurons = {0: [3, 1, 7], 2: [5]}
    heads = {1: [0, 2], 3: [1]}
    whole = read_maps(handle, neurons, heads)
    parts = read_maps(handle, neurons, heads, rows_per_pass=2)  # neuron rows and head rows both split over passes
    for kind in ("neuron", "head"):
        assert set(whole[kind]) == set(parts[kind])
        for L in whole[kind]:
            for a, b in zip(whole[kind][L], parts[kind][L]):
                assert a.shape == b.shape
                torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert whole["head"][1][0].shape == (2, handle.facts.d_head, handle.facts.d_model)
    with pytest.raises(ValueError, match="rows_per_pass"):
        read_maps(handle, neurons, heads, rows_per_pass=0)
