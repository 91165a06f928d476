"""The loaded model without TransformerBridge's components, sharing every weight tensor (no copy).

TransformerBridge wraps each Hugging Face submodule in a component with hook points. That is what makes one hook
vocabulary work everywhere, but in token-by-token decoding each wrapper adds Python overhead: on a GPU at batch 1
the wrapped model's ``generate`` runs at a fraction of the plain model's speed (see the README's latency table). For
generation, :func:`unwrapped_model` gives the same network as a plain ``PreTrainedModel`` whose parameters *are* the
wrapped model's parameters, and :func:`site_module` finds, for each writable site, the plain module whose input or
output it is (found through the bridge's own component map, so no architecture's module names are hard-coded), so
plain PyTorch forward hooks can edit it (the ``unwrapped`` backend of :mod:`emowork.hooks.executors`).
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Literal

import torch

from ..errors import SiteError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

    from .handle import ModelHandle

_WRAPPER = "._original_component"
Side = Literal["input", "output"]


def unwrapped_model(handle: "ModelHandle") -> "PreTrainedModel":
    """The handle's model as a plain Hugging Face model (same class and config) that shares the wrapped model's
    parameter and buffer tensors; built once per handle (on the meta device, so it costs no memory) and kept in
    ``handle.caches``.

    Raises ``RuntimeError`` when a tensor of the unwrapped model has no counterpart in the wrapped one.
    """
    if handle.caches.unwrapped_model is not None:
        return handle.caches.unwrapped_model
    wrapped = handle.hf_model
    with torch.device("meta"):
        plain = type(wrapped)(wrapped.config)
    source = {name.replace(_WRAPPER, ""): tensor for name, tensor in
              chain(wrapped.named_parameters(remove_duplicate=False), wrapped.named_buffers(remove_duplicate=False))}
    missing = []
    for name, _ in chain(plain.named_parameters(remove_duplicate=False), plain.named_buffers(remove_duplicate=False)):
        tensor = source.get(name)
        if tensor is None:
            missing.append(name)
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = plain.get_submodule(owner_name)
        if attr in owner._parameters:
            owner._parameters[attr] = tensor if isinstance(tensor, torch.nn.Parameter) else torch.nn.Parameter(tensor, requires_grad=False)
        else:
            owner._buffers[attr] = tensor
    if missing:
        raise RuntimeError(f"cannot build the unwrapped model: no wrapped tensor for {missing[:5]}")
    _copy_device_hooks(wrapped, plain)
    plain.eval()
    plain.generation_config = wrapped.generation_config
    handle.caches.unwrapped_model = plain
    return plain


def _copy_device_hooks(wrapped: torch.nn.Module, plain: torch.nn.Module) -> None:
    """Give ``plain`` the device hooks accelerate put on ``wrapped`` (a model loaded with a ``device_map``): each
    module moves its inputs to the device its weights are on, as in the wrapped model. Weights offloaded to the CPU
    or disk are refused (they would be loaded again at every step of token-by-token decoding)."""
    hooked = [(name, module._hf_hook) for name, module in wrapped.named_modules() if getattr(module, "_hf_hook", None) is not None]
    if not hooked:
        return
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module

    for name, hook in hooked:
        if not isinstance(hook, AlignDevicesHook):
            raise RuntimeError(f"cannot build the unwrapped model: module {name!r} carries an accelerate hook of another kind "
                               f"({type(hook).__name__}); set handle.use_unwrapped = False to generate through the bridge")
        if hook.offload:
            raise RuntimeError(f"cannot build the unwrapped model: module {name!r} has weights offloaded to the CPU or disk "
                               "(load the model on GPUs only, or set handle.use_unwrapped = False to generate through the bridge)")
        target = plain.get_submodule(name.replace(_WRAPPER, "")) if name else plain
        add_hook_to_module(target, AlignDevicesHook(execution_device=hook.execution_device, io_same_device=hook.io_same_device,
                                                    skip_keys=hook.skip_keys))


def _unwrapped_counterpart(handle: "ModelHandle", component: torch.nn.Module, what: str) -> torch.nn.Module:
    """The unwrapped model's module at the place of a bridge component (or of the module it wraps)."""
    names = handle.caches.unwrapped_names
    if names is None:
        names = {id(module): name.replace(_WRAPPER, "") for name, module in handle.hf_model.named_modules()}
        handle.caches.unwrapped_names = names
    name = names.get(id(component))
    if name is None:
        raise SiteError(f"cannot find the bridge's {what} inside the wrapped model")
    try:
        return unwrapped_model(handle).get_submodule(name)
    except AttributeError:
        raise SiteError(f"the unwrapped model has no module {name!r} for the {what}") from None


def decoder_layer(handle: "ModelHandle", layer: int) -> torch.nn.Module:
    """Decoder layer ``layer`` of :func:`unwrapped_model` (its input is resid_pre, its output resid_post)."""
    return _unwrapped_counterpart(handle, handle.bridge.blocks[layer], f"block {layer}")


def site_module(handle: "ModelHandle", site: str, layer: int) -> tuple[torch.nn.Module, Side]:
    """The unwrapped module whose ``input`` or ``output`` is ``site`` at ``layer``.

    ``resid_pre``/``resid_post``: the decoder layer's input/output; ``attn_out``/``mlp_out``: the attention/MLP
    module's output; ``mlp_post``: the input of the MLP's output projection; ``z``: the input of the attention's output
    projection (heads' outputs, head-major). Raises :class:`~emowork.errors.SiteError` when the site has no such module
    (then the bridge backend applies it): e.g. GPT-2's fused Conv1D projections are not ``nn.Linear`` of the site's width.
    """
    try:
        return _site_module(handle, site, layer)
    except AttributeError as error:  # a bridge without such a component (e.g. a mixture-of-experts MLP)
        raise SiteError(f"{site} of block {layer}: the bridge has no component for it ({error})") from None


def _site_module(handle: "ModelHandle", site: str, layer: int) -> tuple[torch.nn.Module, Side]:
    block = handle.bridge.blocks[layer]
    f = handle.facts
    if site in ("resid_pre", "resid_post"):
        return decoder_layer(handle, layer), "input" if site == "resid_pre" else "output"
    if site == "attn_out":
        return _unwrapped_counterpart(handle, block.attn, f"attention of block {layer}"), "output"
    if site == "mlp_out":
        return _unwrapped_counterpart(handle, block.mlp, f"MLP of block {layer}"), "output"
    if site in ("mlp_post", "z"):
        component, width = (block.mlp.out, f.d_mlp) if site == "mlp_post" else (block.attn.o, f.n_heads * f.d_head)
        module = _unwrapped_counterpart(handle, component, f"{'MLP' if site == 'mlp_post' else 'attention'} output projection of block {layer}")
        if not isinstance(module, torch.nn.Linear) or module.in_features != width:
            raise SiteError(f"{site} of block {layer}: the unwrapped model's projection is {type(module).__name__}, not a Linear "
                            f"layer with {width} inputs")
        return module, "input"
    raise SiteError(f"the unwrapped model has no module for site {site!r}")


def base_model(handle: "ModelHandle") -> torch.nn.Module:
    """The decoder stack of :func:`unwrapped_model` (the module whose forward receives the KV cache)."""
    return unwrapped_model(handle).base_model
