"""Run the pipeline: load the model, run each stage (reusing finished ones), write run.json and report.html."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import EmoworkError
from ..plots import save_figure
from ..storage import atomic_write_json
from .base import RunContext, Stage
from .peaks import memory_peaks
from .settings import RunSettings
from .report import write_findings_markdown, write_report
from .stages import STAGES


def versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages a result depends on."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("emowork", "torch", "transformers", "transformer-lens", "numpy", "safetensors", "gguf", "plotly"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    try:
        import torch

        if torch.cuda.is_available():
            out["cuda_device"] = torch.cuda.get_device_name(0)
    except Exception:  # pragma: no cover
        pass
    return out


PAGE_VERSION = 3  # bump when what a stage writes changes (2: generated findings, captions, figures as JSON;
#                    3: sentences generated where they were fixed, graph captions)


def _stage_key(stage: Stage, ctx: RunContext) -> str:
    blob = json.dumps({"stage": stage.name, "fingerprint": ctx.handle.fingerprint, "settings": stage.settings(ctx),
                       "page_version": PAGE_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def select_stages(names: tuple[str, ...] | None) -> list[Stage]:
    """The stages to run, in pipeline order: the default ones when ``names`` is empty (opt-in stages only when
    named; ``all`` names every stage); raises ValueError naming the valid stages for an unknown one."""
    if not names:
        return [s for s in STAGES if s.in_default]
    if "all" in names:
        return list(STAGES)
    known = {s.name: s for s in STAGES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Unknown stage(s) {unknown}; stages are: {', '.join(known)} (or 'all').")
    return [s for s in STAGES if s.name in names]


def run_pipeline(settings: RunSettings, handle: Any = None) -> dict[str, Any]:
    """Run the selected stages and return the run record (also written to ``<out>/run.json``).

    A stage whose result file exists with the same model fingerprint and settings is reused, unless
    ``settings.force``; so a run interrupted at stage k resumes at stage k. When a stage fails, the record
    (with the error) and the report are still written, then the error is raised.
    """
    from ..model.loading import load_model

    stages = select_stages(settings.stages)
    out = settings.out_dir()
    _refuse_other_size(out, settings)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "stages").mkdir(parents=True, exist_ok=True)
    started = time.time()
    timings: dict[str, float] = {}
    memory: dict[str, dict[str, float]] = {}  # per stage: CUDA peaks during it, the host's running peak (peaks.py)
    if handle is None:
        print(f"[emowork] loading model {settings.model!r}...", flush=True)
        t = time.perf_counter()
        handle = load_model(settings.model, device=settings.device, dtype=settings.dtype, gpus=settings.gpus)
        timings["load_model"] = round(time.perf_counter() - t, 3)
    print(f"[emowork] {handle}", flush=True)
    ctx = RunContext(handle=handle, settings=settings, out_dir=out)
    record: dict[str, Any] = {
        "emowork_run_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "complete": False,
        "model": {**handle.describe(), "fingerprint_info": {k: v for k, v in handle.fingerprint_info.items() if k != "config"}},
        "dataset": dataset_record(),
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
        "versions": versions(),
        "timings": timings,
        "memory_gib": memory,
        "stages": [s.name for s in stages],
        "reused": [],  # stages whose result (and time) comes from an earlier invocation on this folder
        "stage_pages": {},
    }
    try:
        for number, stage in enumerate(stages, 1):
            print(f"[emowork] stage {number}/{len(stages)}: {stage.name} - {stage.title}", flush=True)
            record[stage.name] = _run_stage(stage, ctx, record)
            ctx.results[stage.name] = record[stage.name]
            timings[stage.name] = record["stage_pages"][stage.name]["seconds"]
            if "memory_gib" in record["stage_pages"][stage.name]:  # stages finished before peaks were recorded have none
                memory[stage.name] = record["stage_pages"][stage.name]["memory_gib"]
            atomic_write_json(out / "run.json", record)
        record["complete"] = True
    except EmoworkError as exc:
        record["error"] = str(exc)
        raise
    finally:
        timings["total"] = round(time.time() - started, 3)
        atomic_write_json(out / "run.json", record)
        write_report(out, record)
        write_findings_markdown(out, record)
    print(f"[emowork] done in {timings['total']:.0f} s: {out / 'report.html'}", flush=True)
    return record


class RunFolderError(EmoworkError):
    """The run folder holds a run that this command would overwrite with a different one."""


def _refuse_other_size(out: Path, settings: RunSettings) -> None:
    """A run folder made at another size (e.g. an hours-long ``--full`` run in ``runs/embedded``, the standard size's
    folder since sizes exist) is not overwritten unless ``--force``."""
    try:
        previous = json.loads((out / "run.json").read_text())["settings"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return
    size = previous.get("preset") or ("fast" if previous.get("fast") else "full")  # runs from before sizes existed
    if size != settings.preset and not settings.force:
        flag = {"fast": " --fast", "full": " --full"}.get(size, "")
        raise RunFolderError(f"{out} holds a run of the '{size}' size; this is a '{settings.preset}' run. Give another "
                             f"folder with --out, rerun that size (emowork run{flag} --out {out}), or overwrite it with --force.")


def _run_stage(stage: Stage, ctx: RunContext, record: dict[str, Any]) -> dict[str, Any]:
    out = ctx.out_dir
    key = _stage_key(stage, ctx)
    path = out / "stages" / f"{stage.name}.json"
    if path.exists() and not ctx.settings.force:
        try:
            saved = json.loads(path.read_text())
            figures = saved["page"]["figures"].values()
            if saved.get("key") == key and all((out / f).exists() and (out / f).with_suffix(".json").exists() for f in figures):
                print(f"[emowork]   reusing the finished '{stage.name}' stage ({path})", flush=True)
                record["stage_pages"][stage.name] = saved["page"]
                record.setdefault("reused", []).append(stage.name)
                return saved["numbers"]
        except (OSError, json.JSONDecodeError, KeyError):
            pass
    t = time.perf_counter()
    handle = ctx.handle
    with memory_peaks({handle.device, *(handle.layer_device(layer) for layer in range(handle.facts.n_layers))}) as peaks:
        result = stage.run(ctx)
    seconds = round(time.perf_counter() - t, 3)
    figures = {}
    for stem, fig in result.figures.items():
        relative = f"figures/{stem}.html"
        save_figure(fig, out / relative)  # HTML to view, JSON to export
        figures[stem] = relative
    page = {"title": stage.title, "description": stage.description, "summary": result.summary,
            "tables": result.tables, "figures": figures, "captions": stage.captions, "links": result.links, "seconds": seconds,
            "memory_gib": peaks}
    atomic_write_json(path, {"key": key, "numbers": result.numbers, "page": page})
    record["stage_pages"][stage.name] = page
    return result.numbers


def dataset_record() -> dict[str, Any]:
    """Name and SHA-256 of the SEV splits (the hash covers both splits' content)."""
    from ..data import load_sev
    from ..data.sev import SPLITS

    splits = {s: load_sev(s) for s in SPLITS}
    blob = json.dumps({s: d.sha256 for s, d in splits.items()}, sort_keys=True).encode()
    return {"name": "sev", "sha256": hashlib.sha256(blob).hexdigest(),
            "splits": {s: {"sha256": d.sha256, "n_skeletons": len(d), "path": d.path} for s, d in splits.items()}}
