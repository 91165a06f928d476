"""``ActivationExplorer``: type a prompt, pick a site and layers, see every token's activation size."""

from __future__ import annotations

import plotly.graph_objects as go

from emowork.hooks.capture import token_activations
from emowork.model.handle import ModelHandle
from emowork.plots import token_heatmap
from emowork.hooks.sites import SITE_HOOKS


def explore(handle: ModelHandle, prompt: str, site: str = "resid_post", first: int = 0, last: int | None = None,
            relative: bool = True) -> go.Figure:
    """Figure: RMS of each token's activation at ``site`` for layers ``first..last`` (inclusive).

    With ``relative`` each layer's row is divided by its median over tokens, which shows which tokens stand
    out at that depth (the raw residual grows with depth and would hide it).
    """
    last = handle.facts.n_layers - 1 if last is None else last
    layers = list(range(first, last + 1))
    tokens, acts = token_activations(handle, prompt, site, layers)  # [n_layers, seq, width]
    rms = acts.pow(2).mean(-1).sqrt()
    if relative:
        rms = rms / rms.median(dim=1, keepdim=True).values.clamp(min=1e-12)
    label = "RMS / layer median" if relative else "RMS"
    return token_heatmap(tokens, rms.tolist(), layers, f"{site}: activation size per token ({handle.name})", colorbar=label)


class ActivationExplorer:
    """A panel: prompt box, site dropdown, layer range, relative toggle; redraws on "Show"."""

    def __init__(self, handle: ModelHandle, prompt: str | None = None) -> None:
        import ipywidgets as w

        self.handle = handle
        n = handle.facts.n_layers
        default = prompt or handle.format_chat("I returned a kettle to the shop with the receipt.", "Keep the reply to at most two sentences.")
        self.prompt = w.Textarea(value=default, layout=w.Layout(width="100%", height="90px"), description="prompt")
        self.site = w.Dropdown(options=list(SITE_HOOKS), value="resid_post", description="site")
        self.layers = w.IntRangeSlider(value=(0, n - 1), min=0, max=n - 1, description="layers")
        self.relative = w.Checkbox(value=True, description="relative to layer median")
        self.button = w.Button(description="Show", button_style="primary")
        self.output = w.Output()
        self.button.on_click(lambda _: self.refresh())
        self.panel = w.VBox([self.prompt, w.HBox([self.site, self.layers, self.relative, self.button]), self.output])

    def figure(self) -> go.Figure:
        """The figure for the current control values (what "Show" draws)."""
        first, last = self.layers.value
        return explore(self.handle, self.prompt.value, self.site.value, first, last, self.relative.value)

    def refresh(self) -> None:
        """Redraw into the output area."""
        fig = self.figure()
        self.output.clear_output(wait=True)
        with self.output:
            fig.show()

    def _ipython_display_(self) -> None:
        from .static import show

        self.refresh()  # draw first, so the static snapshot holds the figure too
        show(self.panel, "Activation explorer")

    def __repr__(self) -> str:
        return f"ActivationExplorer({self.handle.name})"
