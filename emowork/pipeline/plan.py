"""``emowork plan``: before loading any weight, what each stage of a run needs in memory on a device, whether it
fits, and the batch size it would use (formulas in :mod:`emowork.model.memory`).

Per stage: the weights on each GPU (split evenly over ``gpus`` with ``device_map``), the largest batch that fits the
rest, the KV cache and transient activations at that batch, and what the stage keeps in host memory (captured
activations, graph edges). Prompt lengths are not known without the tokenizer, so the plan assumes
``PROMPT_TOKENS`` per chat prompt (the project's prompts are 60-110 tokens with the chat template of the models it
was tried on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..model.handle import ModelFacts
from ..model.memory import (BYTES, CAPTURE_SHARE, GIB, capture_rows, forward_bytes_per_token, kv_bytes_per_token, rows_that_fit,
                            weight_bytes)
from .presets import Preset

PROMPT_TOKENS = 128
EMOTIONS = 6
ANALYSIS_GROUPS = 480  # the SEV analysis split (8 themes x 60 skeletons); tests check the count
TEST_GROUPS = 240
THEMES = 8
HEAD_SHARE = 0.3  # of a circuit's budget (emowork.circuits.assembly)
BUDGET_PER_SUBLAYER = 10


@dataclass(frozen=True)
class StagePlan:
    """One stage's memory on the device: ``weights_gib`` per GPU, ``batch`` rows at once, ``kv_gib`` (what is split
    over the devices with the layers: the KV cache, or the activations a backward pass keeps) and ``activations_gib``
    (one layer's transient activations and the logits, whole on one device) at that batch, ``host_gib`` kept in host memory; ``rows``: how many rows the stage
    runs in all; ``fits``: everything fits with the batch (at least 1 row)."""

    stage: str
    work: str
    rows: int
    batch: int
    weights_gib: float
    kv_gib: float
    activations_gib: float
    host_gib: float
    fits: bool

    @property
    def device_gib(self) -> float:
        return self.weights_gib + self.kv_gib + self.activations_gib


def _groups(preset: Preset) -> tuple[int, int]:
    analysis = ANALYSIS_GROUPS if preset.analysis_per_theme is None else preset.analysis_per_theme * THEMES
    neutral_test = TEST_GROUPS // 3 if preset.circuit_groups is None else preset.circuit_groups
    return analysis, neutral_test


def plan_run(shape: ModelFacts, preset: Preset, memory_gib: float, gpus: int = 1, dtype: torch.dtype = torch.bfloat16,
             share: float = 0.8) -> list[StagePlan]:
    """The per-stage plan of a ``preset`` run of a model of ``shape`` on ``gpus`` devices of ``memory_gib`` each."""
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, not {gpus}.")
    if memory_gib <= 0:
        raise ValueError(f"memory per device must be positive, not {memory_gib} GiB.")
    memory = memory_gib * GIB
    weights = weight_bytes(shape, dtype) / gpus
    free = memory - weights
    analysis, neutral_test = _groups(preset)
    new = preset.max_new_tokens
    plans: list[StagePlan] = []

    def add(stage: str, work: str, rows: int, kv_row: int, transient_row: int, host: float, batch: int | None = None) -> None:
        """``kv_row`` (KV cache, split over the devices with the layers) and ``transient_row`` (one layer's
        activations and the logits, needed whole on the device that runs them) per row; ``batch``: a fixed rule."""
        per_gpu_row = kv_row / gpus + transient_row
        fits = free > 0 and per_gpu_row <= share * free
        if batch is None:
            batch = rows_that_fit(free, int(per_gpu_row), share) if fits else 0
        batch = min(rows, batch) if fits else 0
        plans.append(StagePlan(stage, work, rows, batch, weights / GIB, batch * kv_row / gpus / GIB,
                               batch * transient_row / GIB, host / GIB, fits and batch * per_gpu_row <= free))

    kv_row = kv_bytes_per_token(shape, dtype) * (PROMPT_TOKENS + new)
    prefill_row = forward_bytes_per_token(shape, dtype, PROMPT_TOKENS) * PROMPT_TOKENS + 2 * 4 * shape.d_vocab
    fwd_row = forward_bytes_per_token(shape, dtype, PROMPT_TOKENS) * PROMPT_TOKENS + 4 * shape.d_vocab
    capture_batch = capture_rows(shape, dtype, max(free, 0), PROMPT_TOKENS)  # the rule capture(batch_size="auto") uses
    add("load", "weights onto the device(s)", 0, 0, 0, 0.0)
    add("elicitation", f"{analysis * EMOTIONS} replies of up to {new} tokens", analysis * EMOTIONS, kv_row, prefill_row, 0.0)
    directions_host = analysis * EMOTIONS * shape.n_layers * 2 * shape.d_model * 4
    add("directions", f"{analysis * EMOTIONS} prompts captured at 2 sites x {shape.n_layers} layers", analysis * EMOTIONS,
        0, fwd_row, directions_host, capture_batch)
    sweep_rows = len(preset.sweep) * preset.sweep_per_theme * THEMES * EMOTIONS
    add("steering", f"{sweep_rows} steered replies ({len(preset.sweep)} settings)", sweep_rows, kv_row, prefill_row, 0.0)
    samples = preset.sample_groups * EMOTIONS
    components_host = samples * shape.n_layers * (2 * shape.d_model + shape.d_mlp + shape.n_heads * shape.d_head) * 4
    add("components", f"{samples} prompts captured at 4 sites x {shape.n_layers} layers", samples, 0, fwd_row,
        components_host, capture_batch)
    circuit_rows = (len(preset.circuit_scales) + preset.random_seeds + 4) * neutral_test * EMOTIONS
    add("circuits", f"~{circuit_rows} judged replies (scales, random circuits, controls)", circuit_rows, kv_row, prefill_row, 0.0)
    # graphs: the read maps' backward through one-token rows, one row per head coordinate of the busiest block
    heads_per_block = min(shape.n_heads, int(HEAD_SHARE * 2 * BUDGET_PER_SUBLAYER * shape.n_layers))
    read_rows = heads_per_block * shape.d_head
    backward_row = 2 * shape.n_layers * BYTES[dtype] * (6 * shape.d_model + 3 * shape.d_mlp + 2 * shape.n_heads)
    size = 2 * BUDGET_PER_SUBLAYER * shape.n_layers
    nodes = preset.graph_positions * size + 2 * shape.n_layers * PROMPT_TOKENS + PROMPT_TOKENS
    edges_host = 24.0 * nodes * preset.graph_positions * size / 2  # float64 weight + two int64 indices per edge
    add("graphs", f"read maps of {read_rows} one-token rows; ~{nodes} nodes per graph", read_rows, backward_row, 0,
        EMOTIONS * edges_host, rows_that_fit(max(free, 0), int(backward_row / gpus), share, cap=read_rows))
    # (the retained activations of the backward pass sit with their layers; read_maps chooses its passes this way)
    return plans


def format_plan(name: str, shape: ModelFacts, plans: list[StagePlan], memory_gib: float, gpus: int, dtype: torch.dtype,
                preset: Preset, share: float = 0.8) -> str:
    """The plan of model ``name`` as a text table with a verdict line."""
    lines = [f"{name}: {shape.architecture}, {shape.n_params / 1e9:.2f}B parameters, {shape.n_layers} layers, "
             f"d_model {shape.d_model}, {shape.n_heads} heads ({shape.n_kv_heads} KV) x {shape.d_head}, d_mlp {shape.d_mlp}, "
             f"vocab {shape.d_vocab}",
             f"{preset.name} run, {str(dtype).replace('torch.', '')}, {gpus} device(s) of {memory_gib:.0f} GiB; prompts assumed "
             f"{PROMPT_TOKENS} tokens; generation uses at most {share:.0%} of what the weights leave free, capture "
             f"{CAPTURE_SHARE:.0%} as a token budget.", "",
             f"{'stage':<12} {'rows':>6} {'batch':>6} {'weights':>9} {'KV/kept':>8} {'activ.':>8} {'device':>9} {'host':>8}  fits  work"]
    for p in plans:
        lines.append(f"{p.stage:<12} {p.rows:>6} {p.batch:>6} {p.weights_gib:>8.1f}G {p.kv_gib:>7.1f}G {p.activations_gib:>7.1f}G "
                     f"{p.device_gib:>8.1f}G {p.host_gib:>7.2f}G  {'yes' if p.fits else 'NO':>4}  {p.work}")
    failing = [p.stage for p in plans if not p.fits]
    if not failing:
        lines.append("\nEvery stage fits.")
    else:
        total = plans[0].weights_gib * gpus
        enough = next((n for n in range(gpus + 1, 65) if all(p.fits for p in plan_run(shape, preset, memory_gib, n, dtype))), None)
        hint = f"--gpus {enough}" if enough else "devices with more memory"
        lines.append(f"\nDoes not fit: {', '.join(failing)}. The weights alone are {total:.1f} GiB; try {hint}, "
                     "a device with more memory, or a smaller dtype.")
    return "\n".join(lines)


def plan_as_dict(plans: list[StagePlan]) -> list[dict[str, Any]]:
    return [{**asdict(p), "device_gib": p.device_gib} for p in plans]
