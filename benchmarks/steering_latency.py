"""Live steering latency: time to first token and tokens/s at batch 1, side by side in one run.

    python benchmarks/steering_latency.py [--model embedded] [--device auto] [--tokens 64] [--repeats 3]

Paths, same prompt (a neutral test-split prompt), greedy, best of ``--repeats``:
  generate          plain transformers ``generate`` on an unwrapped copy of the model (what you get without emowork)
  generate_wrapped  plain ``generate`` on the model as wrapped by TransformerBridge (its hook points in place)
  unsteered         the panel's path (streamer, cancel check, per-token gauge recording), no steering
  steered           the panel's path with direction steering at the last prompt token over a mid-depth window
  generate_static   plain ``generate`` on the copy with a static KV cache (on CUDA transformers compiles the step)
  *_dynamic         the panel's path on the unwrapped model (emowork.model.unwrapped: same weights, plain forward hooks)
  *_static          the same with the static cache and persistent steering slots (the static backend of emowork.hooks.executors)
  *_bridge          the same through the bridge-wrapped model (``handle.use_unwrapped = False``)
"unsteered"/"steered" repeat the panel's default (``handle.static_cache``, off unless set). Each path
gets one untimed warm-up call (its time is printed as "first call": it includes any compilation).
The last line is JSON: {"device", "generate": {"ttft_s", "tokens_per_s"}, "steered": {...}, ...}.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

import emowork
from emowork.data import load_sev
from emowork.analysis.directions import extract
from emowork.generation.generate import DecodingConfig, generation_kwargs
from emowork.panels.live_steering import LiveSteering, SteeringRequest
from emowork.prompts import NEUTRAL_SYSTEM
from emowork.model.unwrapped import unwrapped_model


class _FirstToken:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.count = -1  # the first put() is the prompt

    def put(self, value: torch.Tensor) -> None:
        self.count += 1
        if self.count == 1:
            self.first = time.perf_counter() - self.start

    def end(self) -> None:
        pass


def timed_generate(model: torch.nn.Module, ids: torch.Tensor, kwargs: dict) -> tuple[float, float]:
    """(ttft_s, tokens_per_s) of one ``generate`` call."""
    streamer = _FirstToken()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    total = time.perf_counter() - streamer.start
    n = out.shape[1] - ids.shape[1]
    ttft = streamer.first if streamer.first is not None else total
    return ttft, (n - 1) / max(total - ttft, 1e-9)


def best(runs: list[tuple[float, float]]) -> dict[str, float]:
    return {"ttft_s": min(r[0] for r in runs), "tokens_per_s": max(r[1] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    handle = emowork.load_model(args.model, device=args.device)
    directions = extract(handle, load_sev("analysis").select(per_theme=1), groups="all", progress=False)
    message = load_sev("test").groups[1].message
    prompt = handle.format_chat(message, NEUTRAL_SYSTEM)
    ids = handle.encode([prompt])["input_ids"]
    config = DecodingConfig(max_new_tokens=args.tokens)
    kwargs = generation_kwargs(handle, config)
    kwargs["eos_token_id"] = None  # always decode the full length, so every path does the same amount of work
    kwargs["min_new_tokens"] = args.tokens

    # An independent copy of the unwrapped model: the same weights in a plain transformers model of their own.
    plain = copy.deepcopy(unwrapped_model(handle))
    plain.generation_config.pad_token_id = handle.tokenizer.pad_token_id
    with torch.inference_mode():
        same = torch.equal(plain.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False),
                           handle.hf_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False))
    print(f"unwrapped copy gives the same greedy tokens as the wrapped model: {same}")

    print(handle)
    engine = LiveSteering(handle, directions, judge=None)
    layers = engine.default_layers()
    default_static = handle.static_cache
    results: dict[str, dict[str, float]] = {}
    first_call: dict[str, float] = {}
    timed_generate(plain, ids, kwargs)  # warm-up
    results["generate"] = best([timed_generate(plain, ids, kwargs) for _ in range(args.repeats)])
    _row("generate", results, first_call)
    static_kwargs = {**kwargs, "cache_implementation": "static"}
    started = time.perf_counter()
    timed_generate(plain, ids, static_kwargs)  # warm-up; on CUDA transformers compiles the decoding step here
    first_call["generate_static"] = time.perf_counter() - started
    results["generate_static"] = best([timed_generate(plain, ids, static_kwargs) for _ in range(args.repeats)])
    _row("generate_static", results, first_call)
    results["generate_wrapped"] = best([timed_generate(handle.hf_model, ids, kwargs) for _ in range(args.repeats)])
    _row("generate_wrapped", results, first_call)
    import emowork.generation.streaming as streaming

    original = streaming.generation_kwargs
    streaming.generation_kwargs = lambda h, c, s=None: dict(kwargs)  # same fixed-length decoding for the panel path
    try:
        for suffix, fast, static in (("_dynamic", True, False), ("_static", True, True), ("_bridge", False, False)):
            handle.use_unwrapped, handle.static_cache = fast, static
            for name, emotion in (("unsteered", None), ("steered", "anger")):
                request = SteeringRequest(message, emotion, 4.0, layers, max_new_tokens=args.tokens)
                started = time.perf_counter()
                _panel(engine, request)  # warm-up (compilation, for the static cache on CUDA)
                first_call[name + suffix] = time.perf_counter() - started
                results[name + suffix] = best([_panel(engine, request) for _ in range(args.repeats)])
                _row(name + suffix, results, first_call)
    finally:
        streaming.generation_kwargs = original
        handle.use_unwrapped, handle.static_cache = True, default_static
    default = "_static" if default_static else "_dynamic"
    results["unsteered"], results["steered"] = results["unsteered" + default], results["steered" + default]
    print(f"batch 1, {args.tokens} new tokens, best of {args.repeats} after one warm-up call; "
          f"the panel's default: {'static' if default_static else 'dynamic'} cache")
    ratio = results["steered"]["tokens_per_s"] / results["generate"]["tokens_per_s"]
    print(f"steered (panel default) / plain generate tokens/s: {ratio:.2f}")
    print(json.dumps({"device": torch.cuda.get_device_name(0) if handle.device.type == "cuda" else str(handle.device),
                      **results, "steered_over_generate": ratio, "first_call_s": first_call}))


def _row(name: str, results: dict[str, dict[str, float]], first_call: dict[str, float]) -> None:
    """Print one measured path as soon as it is done (so a run cut short still reports what it measured)."""
    r = results[name]
    warm = f"   first call {first_call[name]:6.2f} s" if name in first_call else ""
    print(f"{name:<18} ttft {r['ttft_s'] * 1000:7.1f} ms   {r['tokens_per_s']:7.1f} tokens/s{warm}", flush=True)


def _panel(engine: LiveSteering, request: SteeringRequest) -> tuple[float, float]:
    """(ttft_s, tokens_per_s) of one panel reply (the baseline cache cleared for unsteered requests)."""
    if request.emotion is None:
        engine._baselines.clear()
        reply = engine.baseline(request, judge=False)
    else:
        reply = engine.steered(request, judge=False)
    return reply.ttft_s, reply.tokens_per_s


if __name__ == "__main__":
    main()
