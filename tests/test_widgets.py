import plotly.graph_objects as go

from emowork.activations import token_activations
from widgets.activation_explorer import ActivationExplorer, explore


def test_token_activations_cover_every_token(tiny_llama):
    prompt = tiny_llama.format_chat("Hi there")
    tokens, acts = token_activations(tiny_llama, prompt, "mlp_post", layers=[0, 2])
    assert len(tokens) == len(tiny_llama.encode([prompt])["input_ids"][0])
    assert acts.shape == (2, len(tokens), tiny_llama.facts.d_mlp)
    assert "".join(tokens) == prompt


def test_explorer_callbacks_headless(tiny_llama):
    fig = explore(tiny_llama, tiny_llama.format_chat("Hi"), "resid_mid", 1, 2)
    assert isinstance(fig, go.Figure) and len(fig.data[0].z) == 2
    panel = ActivationExplorer(tiny_llama)
    panel.site.value = "attn_out"
    panel.layers.value = (0, 1)
    fig = panel.figure()
    assert "attn_out" in fig.layout.title.text and len(fig.data[0].z) == 2
    panel.refresh()  # draws into the Output widget without a browser
