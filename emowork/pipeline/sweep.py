"""``emowork sweep CONFIG.yaml [--ray-address ADDR]``: one ``emowork run`` per (model, size, settings) as Ray tasks.

Ray (not a home-made scheduler) places the runs: each task asks for the GPUs and CPUs the config gives it, a failed
task is retried (``max_retries``) and then reported, and every run writes its own ``<out>/<name>/`` folder, which
resumes stage by stage (a retried or restarted run reuses its finished stages). Without ``--ray-address`` a local
Ray instance is started on this machine.

The config (YAML)::

    out: runs/sweep              # one folder per run below it
    resources: {gpus: 1, cpus: 4}  # per run (default: 1 GPU when this machine's Ray sees one, else 0; 1 CPU)
    max_retries: 1
    runs:                        # explicit runs ...
      - {model: meta-llama/Llama-3.2-3B-Instruct, preset: standard}
      - {model: Qwen/Qwen2.5-7B-Instruct, preset: standard, stages: [check, data, directions]}
    grid:                        # ... and/or every combination of these
      model: [embedded, tiny-llama]
      preset: [fast]

Each run may set ``model``, ``preset`` (fast, standard, full), ``stages``, ``judge``, ``dtype``, ``device``,
``name`` (default: from the model and preset). ``sweep.json`` in ``out`` records every run's status, attempts,
folder and headline numbers; ``emowork compare`` reads the folders.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EmoworkError
from ..storage import atomic_write_json

RUN_KEYS = {"model", "preset", "stages", "judge", "dtype", "device", "name"}


class SweepError(EmoworkError):
    """A sweep config that cannot be run (what to fix is in the message)."""


@dataclass
class SweepConfig:
    out: Path
    runs: list[dict[str, Any]]
    gpus: float | None = None
    cpus: float = 1.0
    max_retries: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def _name(run: dict[str, Any]) -> str:
    base = run.get("name") or f"{Path(str(run['model'])).name}-{run.get('preset', 'standard')}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base)


def read_config(path: str | Path) -> SweepConfig:
    """Read and check a sweep config; every problem fails here, before Ray starts."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path} does not exist: give a YAML sweep config (see `emowork sweep --help`).")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SweepError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SweepError(f"{path} must hold a mapping with 'runs' and/or 'grid'.")
    unknown = set(raw) - {"out", "resources", "max_retries", "runs", "grid"}
    if unknown:
        raise SweepError(f"{path}: unknown keys {sorted(unknown)}; use out, resources, max_retries, runs, grid.")
    runs = [dict(r) for r in raw.get("runs") or []]
    grid = raw.get("grid") or {}
    if grid:
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise SweepError(f"{path}: 'grid' maps run keys to non-empty lists, e.g. grid: {{model: [embedded], preset: [fast]}}.")
        keys = list(grid)
        runs += [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    if not runs:
        raise SweepError(f"{path} lists no runs: add 'runs' (a list of {{model: ..., preset: ...}}) or a 'grid'.")
    from .presets import PRESETS

    for i, run in enumerate(runs):
        bad = set(run) - RUN_KEYS
        if bad:
            raise SweepError(f"{path}: run {i + 1} has unknown keys {sorted(bad)}; a run may set {sorted(RUN_KEYS)}.")
        if "model" not in run:
            raise SweepError(f"{path}: run {i + 1} has no 'model'.")
        if run.get("preset", "standard") not in PRESETS:
            raise SweepError(f"{path}: run {i + 1} has preset {run['preset']!r}; choose {', '.join(PRESETS)}.")
        if isinstance(run.get("stages"), str):
            run["stages"] = [s.strip() for s in run["stages"].split(",") if s.strip()]
    names = [_name(r) for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SweepError(f"{path}: several runs would write {twice}; give them distinct 'name's.")
    resources = raw.get("resources") or {}
    if not isinstance(resources, dict) or set(resources) - {"gpus", "cpus"}:
        raise SweepError(f"{path}: 'resources' takes gpus and cpus per run, e.g. resources: {{gpus: 1, cpus: 4}} "
                         f"(got {resources!r}).")
    retries = raw.get("max_retries", 1)
    if not isinstance(retries, int) or retries < 0:
        raise SweepError(f"{path}: max_retries must be a whole number >= 0, not {retries!r}.")
    return SweepConfig(out=Path(raw.get("out") or "runs/sweep"), runs=[{**r, "name": n} for r, n in zip(runs, names)],
                       gpus=resources.get("gpus"), cpus=float(resources.get("cpus", 1)), max_retries=retries)


def run_one(run: dict[str, Any], out: str, sweep_id: str = "") -> dict[str, Any]:
    """One run (inside a Ray task): writes ``<out>/<name>/``; returns its status and headline numbers. Each attempt
    is appended to ``attempts.log`` in the run's folder (``<time> <sweep_id> start``, and the traceback when it
    fails)."""
    import traceback

    from .headline import headline_rows
    from .runner import run_pipeline
    from .settings import RunSettings

    folder = Path(out) / run["name"]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "attempts.log", "a") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {sweep_id} start\n")
    stages = tuple(run["stages"]) if run.get("stages") else None
    settings = RunSettings(model=str(run["model"]), preset=run.get("preset", "standard"), out=str(folder),
                           device=run.get("device", "auto"), dtype=run.get("dtype", "auto"), stages=stages,
                           judge=run.get("judge", "default"), gpus=int(run.get("gpus", 1)))
    start = time.perf_counter()
    try:
        record = run_pipeline(settings)
    except Exception:
        with open(folder / "attempts.log", "a") as log:
            log.write("".join(f"    {line}" for line in traceback.format_exc().splitlines(True)))
        raise
    return {"name": run["name"], "status": "ok" if record.get("complete") else "incomplete", "folder": str(folder),
            "seconds": round(time.perf_counter() - start, 1),
            "headline": {r["name"]: r["summary"] for r in headline_rows(record)}}


def run_sweep(config: SweepConfig, address: str | None = None) -> dict[str, Any]:
    """Run every run of ``config`` as a Ray task (local Ray when ``address`` is None); write and return
    ``sweep.json`` (``{"runs": [{name, status, attempts, folder, error?, headline?}]}``)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        passed = {k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS_", "EMOWORK_", "PYTHONHASHSEED"))}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 runtime_env={"env_vars": passed} if passed else None)
    try:
        have = ray.cluster_resources()
        gpus = config.gpus if config.gpus is not None else (1 if have.get("GPU", 0) >= 1 else 0)
        if gpus > have.get("GPU", 0) or config.cpus > have.get("CPU", 0):
            raise SweepError(f"each run asks for {gpus} GPU(s) and {config.cpus:g} CPU(s) but the Ray cluster has "
                             f"{have.get('GPU', 0):g} GPU(s) and {have.get('CPU', 0):g} CPU(s): lower 'resources' or "
                             "give --ray-address of a cluster that has them.")
        task = ray.remote(run_one).options(num_gpus=gpus, num_cpus=config.cpus, max_retries=config.max_retries,
                                           retry_exceptions=True)
        out = str(config.out.resolve())
        sweep_id = f"sweep-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        split = int(gpus) if float(gpus).is_integer() and gpus > 1 else 1  # a run given several GPUs splits its model over them
        pending = {task.remote({"gpus": split, **run}, out, sweep_id): run for run in config.runs}
        results: list[dict[str, Any]] = []
        settings = {"out": str(config.out), "gpus_per_run": gpus, "cpus_per_run": config.cpus,
                    "max_retries": config.max_retries, "ray_address": address or "local", "sweep_id": sweep_id}
        while pending:  # in the order runs finish; sweep.json is rewritten after each, so a stopped sweep keeps them
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            run = pending.pop(ref)
            try:
                results.append(ray.get(ref))
            except Exception as exc:  # reported, never lost: the other runs and this run's finished stages stay
                cause = getattr(exc, "cause", None) or exc
                text = str(cause).strip().splitlines()
                results.append({"name": run["name"], "status": "failed", "folder": str(config.out / run["name"]),
                                "error": f"{type(cause).__name__}: {text[-1] if text else ''} (traceback: attempts.log)"})
            _count_attempts(results[-1], config.out, sweep_id)
            atomic_write_json(config.out / "sweep.json", {"config": settings, "runs": results,
                                                          "pending": [r["name"] for r in pending.values()]})
    finally:
        if started_here:
            ray.shutdown()
    return {"config": settings, "runs": results, "pending": []}


def _count_attempts(result: dict[str, Any], out: Path, sweep_id: str) -> None:
    log = out / result["name"] / "attempts.log"
    lines = log.read_text().splitlines() if log.exists() else []
    result["attempts"] = sum(1 for line in lines if not line.startswith(" ") and f" {sweep_id} start" in line)


def format_sweep(summary: dict[str, Any]) -> str:
    lines = [f"{'run':<32} {'status':<10} {'attempts':>8}  details"]
    for r in summary["runs"]:
        detail = r.get("error") or ", ".join(f"{k} {v['accuracy']:.1%}" for k, v in (r.get("headline") or {}).items() if k != "chance")
        lines.append(f"{r['name']:<32} {r['status']:<10} {r['attempts']:>8}  {detail}")
    return "\n".join(lines) + f"\nsweep.json: {json.dumps(summary['config'])}"
