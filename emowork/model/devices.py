"""Choosing a device and a dtype: ``"auto"`` picks CUDA, then MPS, then CPU; bf16 on CUDA, fp32 elsewhere."""

from __future__ import annotations

import torch

from ..errors import DeviceError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return a usable ``torch.device`` for ``device``.

    ``"auto"`` gives ``cuda`` when a CUDA GPU is visible, else ``mps`` when available, else ``cpu``.
    An explicit device that is not present (``"cuda"`` on a machine without a GPU, ``"cuda:3"`` with
    two GPUs, a misspelt name) raises :class:`DeviceError` saying what is available.
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(
            f"Unknown device {device!r}. Use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Available here: {available_devices()}."
        ) from exc
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"Device {device!r} was requested but no CUDA GPU is visible (torch {torch.__version__}, "
                f"cuda build: {torch.version.cuda}). Use device='cpu' or 'auto', or install a CUDA build of torch."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"Device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible. Available: {available_devices()}."
            )
        return dev
    if dev.type == "mps":
        if not _mps_available():
            raise DeviceError(f"Device {device!r} was requested but MPS is not available. Available: {available_devices()}.")
        return dev
    raise DeviceError(f"Device type {dev.type!r} is not supported by emowork. Available: {available_devices()}.")


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """Return the torch dtype for ``dtype``; ``"auto"`` is bfloat16 on CUDA and float32 on CPU and MPS.

    Half precision on the CPU is allowed (it halves memory for large models) but slow.
    Raises :class:`DeviceError` for an unknown name.
    """
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    else:
        name = str(dtype).strip().lower().replace("torch.", "")
        if name == "auto":
            return torch.bfloat16 if device is not None and device.type == "cuda" else torch.float32
        if name not in DTYPES:
            raise DeviceError(f"Unknown dtype {dtype!r}. Use 'auto', 'float32', 'bfloat16' or 'float16'.")
        resolved = DTYPES[name]
    if resolved not in (torch.float32, torch.bfloat16, torch.float16):
        raise DeviceError(f"dtype {resolved} is not supported: use float32, bfloat16 or float16.")
    return resolved


def available_devices() -> list[str]:
    """Names of the devices torch can use on this machine, e.g. ``['cpu', 'cuda:0']``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
