"""Time `emowork run` at each size from an empty cache, one clean run each, and keep what the README cites.

    python benchmarks/run_sizes.py --sizes fast,standard [--model embedded] --out benchmarks/results/<date>-run-sizes

For each size: a fresh, empty EMOWORK_CACHE_DIR (so model conversion, captures and generations all count), then
`emowork run --model M [--fast|--full] --out <tmp>` in a subprocess; the wall time of the whole command, the stage
times from run.json, and the run's `findings.md` and `run.json` are written to ``<out>/<size>/``; ``<out>/times.md``
holds the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="fast,standard", help="comma-separated: fast, standard, full")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "EMOWORK_CACHE_DIR": str(Path(tmp) / "cache"), "HF_HUB_OFFLINE": "1", "EMOWORK_PROGRESS": "0"}
            run_dir = Path(tmp) / "run"
            command = ["emowork", "run", "--model", args.model, "--out", str(run_dir)] + (
                [] if size == "standard" else [f"--{size}"])
            print(f"[run_sizes] {' '.join(command)} (empty cache)", flush=True)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "emowork.cli", *command[1:]], env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            (out / size).mkdir(exist_ok=True)
            (out / size / "log.txt").write_text(done.stdout + done.stderr)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{size}: emowork run failed (exit {done.returncode}); log in {out / size / 'log.txt'}")
            for name in ("run.json", "findings.md"):
                shutil.copy(run_dir / name, out / size / name)
            record = json.loads((run_dir / "run.json").read_text())
            rows.append({"size": size, "wall_s": wall, "timings": record["timings"], "command": " ".join(command)})
            print(f"[run_sizes] {size}: {wall:.0f} s", flush=True)
    stages = [k for k in rows[0]["timings"] if k != "total"]
    lines = [f"# `emowork run` at each size, empty cache ({platform.platform()}, {os.cpu_count()} CPUs, one run each)", "",
             "| size | command | whole command (s) | " + " | ".join(stages) + " |", "|" + "---|" * (len(stages) + 3)]
    for r in rows:
        lines.append(f"| {r['size']} | `{r['command']}` | {r['wall_s']:.0f} | "
                     + " | ".join(f"{r['timings'].get(s, float('nan')):.0f}" for s in stages) + " |")
    (out / "times.md").write_text("\n".join(lines) + "\n")
    (out / "times.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
