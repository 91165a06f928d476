"""Time of the direction extraction on the analysis split, and how it scales with the number of prompts.

    python benchmarks/directions.py [--model embedded] [--device auto] [--sizes 16,40,160]

Each size is a theme-balanced number of skeletons (x3 valences x6 emotions prompts); the last is the full split.
Captures run without the disk cache, so this is the compute. Prints prompts/s per size; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import emowork
from emowork.data import load_sev
from emowork.analysis.directions import extract


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="16,40,160", help="numbers of skeletons (theme-balanced)")
    args = parser.parse_args()
    handle = emowork.load_model(args.model, device=args.device)
    analysis = load_sev("analysis")
    print(handle)
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        subset = analysis.select(n=min(n, len(analysis)))
        start = time.perf_counter()
        extract(handle, subset, groups="all", cache=False, progress=False)
        seconds = time.perf_counter() - start
        prompts = len(subset.groups) * 6
        rows.append({"skeletons": len(subset), "prompts": prompts, "seconds": seconds, "prompts_per_s": prompts / seconds})
        print(f"{len(subset):4d} skeletons, {prompts:5d} prompts: {seconds:7.1f} s, {prompts / seconds:6.1f} prompts/s", flush=True)
    print(json.dumps({"model": handle.name, "device": str(handle.device), "sizes": rows}))


if __name__ == "__main__":
    main()
