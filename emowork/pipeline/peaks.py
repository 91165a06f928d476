"""Memory peaks of one stage: the peak allocation on each CUDA device the model uses during the stage, and the peak
resident memory of the process that ran it, up to the stage's end (the operating system keeps only the maximum since
the process started, so on the host it is a running maximum, not a per-stage figure; a stage reused on resume keeps the
figure of the run that computed it)."""

from __future__ import annotations

import resource
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch

GIB = 1024 ** 3


@contextmanager
def memory_peaks(devices: Iterable[torch.device] = ()) -> Iterator[dict[str, float]]:
    """Context: the dict it yields is filled on exit with ``{"cuda:N": peak GiB allocated during the block, ...,
    "host_max_rss": GiB}`` for the CUDA ``devices`` given (those the model uses: other GPUs are not touched, so no CUDA
    context is created on them)."""
    peaks: dict[str, float] = {}
    devices = sorted({d.index or 0 for d in map(torch.device, devices) if d.type == "cuda"})
    for index in devices:
        torch.cuda.reset_peak_memory_stats(index)
    try:
        yield peaks
    finally:
        for index in devices:
            peaks[f"cuda:{index}"] = round(torch.cuda.max_memory_allocated(index) / GIB, 3)
        peaks["host_max_rss"] = round(host_max_rss_bytes() / GIB, 3)


def host_max_rss_bytes() -> int:
    """The process's peak resident memory in bytes (Linux reports kilobytes, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)
