"""Activation sites: short names for the TransformerBridge hook points emowork reads and writes.

One vocabulary for every architecture (the bridge maps each to the model's own modules):

==============  ===============================  ==========================  ===============================
site            hook (layer L)                   width                       meaning
==============  ===============================  ==========================  ===============================
resid_pre       blocks.L.hook_resid_pre          d_model                     residual entering block L
resid_mid       blocks.L.hook_resid_mid          d_model                     after attention is added ("attn" site, docs/method.md section 3)
mlp_in          blocks.L.ln2.hook_out            d_model                     the MLP's input: resid_mid after the second norm
resid_post      blocks.L.hook_resid_post         d_model                     after the whole block ("mlp" site, docs/method.md section 3)
attn_out        blocks.L.hook_attn_out           d_model                     attention sublayer output
mlp_out         blocks.L.hook_mlp_out            d_model                     MLP sublayer output
mlp_post        blocks.L.mlp.hook_post           d_mlp                       neuron activations (input of W_out)
z               blocks.L.attn.hook_z             n_heads * d_head            per-head outputs before W_O, flattened head-major
==============  ===============================  ==========================  ===============================

``resid_mid`` is read-only in practice: on pre-norm models it is the input of the second norm, and
writing to it changes what the MLP sees but not the residual that is carried on. Steer at
``resid_post``, ``attn_out`` or ``mlp_out``, which are added into the residual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import SiteError

SITE_HOOKS: dict[str, str] = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "mlp_in": "blocks.{layer}.ln2.hook_out",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "mlp_post": "blocks.{layer}.mlp.hook_post",
    "z": "blocks.{layer}.attn.hook_z",
}
# The two sites of docs/method.md section 3, by the names the paper uses.
METHOD_SITE_ALIASES = {"attn": "resid_mid", "mlp": "resid_post"}


@dataclass(frozen=True)
class SiteSpec:
    """A validated site: its name, hook template and the width of one position's activation."""

    name: str
    hook_template: str
    width: int

    def hook_name(self, layer: int) -> str:
        """The bridge hook name of this site at ``layer``, e.g. ``blocks.3.hook_resid_post``."""
        return self.hook_template.format(layer=layer)


def hook_name(site: str, layer: int) -> str:
    """The bridge hook name of a site (a key of ``SITE_HOOKS``) at ``layer``, e.g. ``hook_name("z", 3)``."""
    return SITE_HOOKS[site].format(layer=layer)


def site_width(site: str, d_model: int, d_mlp: int, n_heads: int, d_head: int) -> int:
    """Width of one position's activation at ``site`` for a model with these sizes."""
    if site == "mlp_post":
        return d_mlp
    if site == "z":
        return n_heads * d_head
    return d_model


def resolve_sites(sites: str | Iterable[str], d_model: int, d_mlp: int, n_heads: int, d_head: int) -> list[SiteSpec]:
    """Validate site names (the aliases ``attn``/``mlp`` of docs/method.md section 3 accepted) and return their specs, in order.

    Raises :class:`SiteError` naming the valid sites for an unknown name or an empty/duplicated list.
    """
    names = [sites] if isinstance(sites, str) else list(sites)
    if not names:
        raise SiteError("No site given. Valid sites: " + ", ".join(SITE_HOOKS))
    specs: list[SiteSpec] = []
    for raw in names:
        name = METHOD_SITE_ALIASES.get(raw, raw)
        if name not in SITE_HOOKS:
            raise SiteError(
                f"Unknown activation site {raw!r}. Valid sites: {', '.join(SITE_HOOKS)} "
                f"(and the aliases of docs/method.md section 3: {', '.join(f'{k}={v}' for k, v in METHOD_SITE_ALIASES.items())})."
            )
        if any(spec.name == name for spec in specs):
            raise SiteError(f"Site {raw!r} is listed twice.")
        specs.append(SiteSpec(name, SITE_HOOKS[name], site_width(name, d_model, d_mlp, n_heads, d_head)))
    return specs


def resolve_layers(layers: int | Sequence[int] | range | None, n_layers: int) -> list[int]:
    """Validate a layer selection against a model with ``n_layers`` blocks; ``None`` means all layers.

    Negative indices count from the end. Returns sorted, unique layer indices. Raises :class:`SiteError`
    for an empty selection or a layer outside ``[-n_layers, n_layers)``.
    """
    if layers is None:
        return list(range(n_layers))
    chosen = [layers] if isinstance(layers, int) else list(layers)
    if not chosen:
        raise SiteError(f"Empty layer selection; this model has layers 0..{n_layers - 1}.")
    result: set[int] = set()
    for layer in chosen:
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise SiteError(f"Layer {layer!r} is not an integer.")
        if not -n_layers <= layer < n_layers:
            raise SiteError(f"Layer {layer} does not exist: this model has {n_layers} layers (0..{n_layers - 1}).")
        result.add(layer % n_layers)
    return sorted(result)
