"""The loaded model without TransformerBridge's components, sharing every weight tensor (no copy).

TransformerBridge wraps each Hugging Face submodule in a component with hook points. That is what makes one hook
vocabulary work everywhere, but in token-by-token decoding each wrapper adds Python overhead: on a GPU at batch 1
the wrapped model's ``generate`` runs at a fraction of the plain model's speed (see the README's latency table). For
generation that only needs to read or write the residual stream (plain replies, direction steering, the live
gauge), :func:`unwrapped_model` gives the same network as a plain ``PreTrainedModel`` whose parameters *are* the
wrapped model's parameters, and :func:`decoder_layer` finds layer ``L`` in it, so plain PyTorch forward hooks can
steer it. Interventions on other sites (neurons, heads) still run through the bridge.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel

    from .handle import ModelHandle

_WRAPPER = "._original_component"


def unwrapped_model(handle: "ModelHandle") -> "PreTrainedModel":
    """The handle's model as a plain Hugging Face model (same class and config) that shares the wrapped model's
    parameter and buffer tensors; built once per handle (on the meta device, so it costs no memory) and cached.

    Raises ``RuntimeError`` when a tensor of the plain model has no counterpart in the wrapped one.
    """
    cached = getattr(handle, "_unwrapped_model", None)
    if cached is not None:
        return cached
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
    plain.eval()
    plain.generation_config = wrapped.generation_config
    handle._unwrapped_model = plain
    return plain


def decoder_layer(handle: "ModelHandle", layer: int) -> torch.nn.Module:
    """Decoder layer ``layer`` of :func:`unwrapped_model` (its input is resid_pre, its output resid_post)."""
    plain = unwrapped_model(handle)
    names = getattr(handle, "_decoder_layer_names", None)
    if names is None:
        by_module = {id(module): name for name, module in handle.hf_model.named_modules()}
        names = []
        for block in handle.bridge.blocks:
            name = by_module.get(id(block))
            if name is None:
                raise RuntimeError("cannot find the bridge's blocks inside the wrapped model")
            names.append(name.replace(_WRAPPER, ""))
        handle._decoder_layer_names = names
    return plain.get_submodule(names[layer])


def base_model(handle: "ModelHandle") -> torch.nn.Module:
    """The decoder stack of :func:`unwrapped_model` (the module whose forward receives the KV cache)."""
    return unwrapped_model(handle).base_model
