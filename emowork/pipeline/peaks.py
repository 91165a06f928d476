"""Memory peaks of one stage: every CUDA device's peak allocation during the stage, and the process's peak resident
memory so far (the operating system keeps only the maximum since the process started, so on the host it is a running
maximum, not a per-stage figure)."""

from __future__ import annotations

import resource
import sys
from contextlib import contextmanager
from typing import Iterator

import torch

GIB = 1024 ** 3


@contextmanager
def memory_peaks() -> Iterator[dict[str, float]]:
    """Context: the dict it yields is filled on exit with ``{"cuda:N": peak GiB allocated during the block, ...,
    "host_max_rss": GiB}`` (CUDA keys only where CUDA is available)."""
    peaks: dict[str, float] = {}
    devices = range(torch.cuda.device_count()) if torch.cuda.is_available() else range(0)
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
