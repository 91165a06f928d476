"""A stable model fingerprint: the architecture config plus a hash of the weights, used as cache key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

# Config keys that name files, versions or runtime choices rather than the function the model computes.
_VOLATILE_CONFIG_KEYS = {
    "_name_or_path", "name_or_path", "transformers_version", "quantization_config", "torch_dtype", "dtype",
    "_attn_implementation", "_attn_implementation_autoset", "attn_implementation", "output_attentions",
    "output_hidden_states", "use_cache", "return_dict", "_commit_hash", "architectures", "_model_name_or_path",
    "_experts_implementation",
}
SAMPLES_PER_TENSOR = 65536
FINGERPRINT_VERSION = 1


def canonical_config(config: Any) -> dict[str, Any]:
    """Return the model config as a plain dict without volatile keys (paths, versions, runtime flags)."""
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in sorted(raw.items()) if k not in _VOLATILE_CONFIG_KEYS and not k.startswith("_")}


@torch.no_grad()
def weights_digest(model: torch.nn.Module, samples_per_tensor: int = SAMPLES_PER_TENSOR) -> str:
    """Hex SHA-256 over every parameter's name, shape, dtype and up to ``samples_per_tensor`` evenly spaced values.

    Sampling keeps this under a second even for 7B models; any fine-tune, quantisation or conversion
    changes many sampled values, so the digest tells checkpoints apart in practice (it is not a proof of
    identity). Tied parameters are hashed once.
    """
    digest = hashlib.sha256()
    seen: set[int] = set()
    for name, param in sorted(model.named_parameters(remove_duplicate=False), key=lambda item: item[0]):
        key = param.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        flat = param.detach().reshape(-1)
        if flat.numel() > samples_per_tensor:
            step = flat.numel() // samples_per_tensor
            flat = flat[::step][:samples_per_tensor]
        values = flat.to("cpu", torch.float32).contiguous().numpy().tobytes()
        digest.update(f"{name}|{tuple(param.shape)}|{param.dtype}|".encode())
        digest.update(values)
    return digest.hexdigest()


def model_fingerprint(config: Any, model: torch.nn.Module) -> tuple[str, dict[str, Any]]:
    """Return ``(fingerprint, info)``: a 16-hex-digit key and the dict it was computed from.

    ``info`` holds the canonical config, the weights digest and the dtype, so it can be stored in a run
    record and compared later.
    """
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    info = {
        "version": FINGERPRINT_VERSION,
        "config": canonical_config(config),
        "weights_sha256_sampled": weights_digest(model),
        "dtype": dtype,
    }
    blob = json.dumps(info, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16], info
