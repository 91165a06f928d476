"""Test doubles shared by several test modules."""

from __future__ import annotations

import numpy as np

from emowork.judge import Judge


class LengthJudge(Judge):
    """Scores a reply 0.9 for the emotion at index ``len(text) % 6``: arbitrary but deterministic and cheap."""

    name, version, threshold = "length", "test", 0.5

    def scores(self, texts):
        out = np.zeros((len(texts), 6))
        for i, t in enumerate(texts):
            out[i, len(t) % 6] = 0.9
        return out


def refuse_network(page) -> list[str]:
    """Make a Playwright ``page`` refuse every request that is not a local file, data or blob URL; returns the list
    the refused URLs are appended to (so a test can assert nothing was fetched)."""
    refused: list[str] = []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            return r.continue_()
        refused.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    return refused


def split_over_meta(handle, first_meta_layer: int):
    """Put ``handle``'s blocks from ``first_meta_layer`` on, the final norm and the unembedding on the ``meta`` device,
    with accelerate's device hooks as a ``device_map`` load would place them: a CPU-only stand-in for a model split over
    two GPUs. Any tensor of the wrong device in a hook then raises ("Tensor on device cpu is not on the expected device
    meta"); values past the split are meaningless (meta tensors hold none), so only device handling can be checked."""
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module

    modules: dict[str, object] = {}
    for name, module in handle.hf_model.named_modules():  # the HF module itself, not the bridge component around it
        modules[name.replace("._original_component", "")] = module
    embed = next(name for name in modules if name.endswith("embed_tokens"))
    stack = embed.rsplit(".", 1)[0]
    for layer in range(handle.facts.n_layers):
        device = "meta" if layer >= first_meta_layer else "cpu"
        module = modules[f"{stack}.layers.{layer}"].to(device)
        add_hook_to_module(module, AlignDevicesHook(execution_device=device, io_same_device=False))
    for name in (f"{stack}.norm", "lm_head"):
        add_hook_to_module(modules[name].to("meta"), AlignDevicesHook(execution_device="meta"))
    return handle
