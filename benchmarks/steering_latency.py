"""Live steering latency: time to first token and tokens/s at batch 1, side by side in one run.

    python benchmarks/steering_latency.py [--model embedded] [--device auto] [--tokens 64] [--repeats 3]

Paths, same prompt (a neutral test-split prompt), greedy, best of ``--repeats``:
  generate          plain transformers ``generate`` on an unwrapped copy of the model (what you get without emowork)
  generate_wrapped  plain ``generate`` on the model as wrapped by TransformerBridge (its hook points in place)
  unsteered         the panel's path (streamer, cancel check, per-token gauge recording), no steering
  steered           the panel's path with direction steering at the last prompt token over a mid-depth window
  *_bridge          the same two through the bridge-wrapped model (``handle.fast_generation = False``); the panel
                    path runs on the unwrapped model (emowork.unwrapped: same weights, plain forward hooks)
The last line is JSON: {"device", "generate": {"ttft_s", "tokens_per_s"}, "steered": {...}, ...}.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import emowork
from emowork.data import load_sev
from emowork.directions import extract
from emowork.generate import DecodingConfig, generation_kwargs
from emowork.live_steering import LiveSteering, SteeringRequest
from emowork.prompts import NEUTRAL_SYSTEM


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

    # An unwrapped copy: the same weights without the bridge's components.
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_config(handle.hf_model.config).to(handle.device, handle.dtype).eval()
    missing, _ = plain.load_state_dict(_original_state(handle), strict=False)
    if [k for k in missing if "rotary" not in k]:
        raise RuntimeError(f"could not copy the weights into the unwrapped model: missing {missing[:5]}")
    plain.generation_config.pad_token_id = handle.tokenizer.pad_token_id
    with torch.inference_mode():
        same = torch.equal(plain.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False),
                           handle.hf_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False))
    print(f"unwrapped copy gives the same greedy tokens as the wrapped model: {same}")

    engine = LiveSteering(handle, directions, judge=None)
    layers = engine.default_layers()
    results: dict[str, dict[str, float]] = {}
    timed_generate(plain, ids, kwargs)  # warm-up
    results["generate"] = best([timed_generate(plain, ids, kwargs) for _ in range(args.repeats)])
    results["generate_wrapped"] = best([timed_generate(handle.hf_model, ids, kwargs) for _ in range(args.repeats)])
    import emowork.streaming as streaming

    original = streaming.generation_kwargs
    streaming.generation_kwargs = lambda h, c, s=None: kwargs  # same fixed-length decoding for the panel path
    try:
        for fast, suffix in ((True, ""), (False, "_bridge")):
            handle.fast_generation = fast
            for name, emotion in (("unsteered", None), ("steered", "anger")):
                runs = []
                for _ in range(args.repeats):
                    request = SteeringRequest(message, emotion, 4.0, layers, max_new_tokens=args.tokens)
                    reply = engine.steered(request, judge=False) if emotion else _fresh_baseline(engine, request)
                    runs.append((reply.ttft_s, reply.tokens_per_s))
                results[name + suffix] = best(runs)
    finally:
        streaming.generation_kwargs = original
        handle.fast_generation = True
    print(handle)
    print(f"batch 1, {args.tokens} new tokens, best of {args.repeats}")
    for name, r in results.items():
        print(f"{name:<17} ttft {r['ttft_s'] * 1000:7.1f} ms   {r['tokens_per_s']:7.1f} tokens/s")
    ratio = results["steered"]["tokens_per_s"] / results["generate"]["tokens_per_s"]
    print(f"steered / plain generate tokens/s: {ratio:.2f}")
    print(json.dumps({"device": torch.cuda.get_device_name(0) if handle.device.type == "cuda" else str(handle.device),
                      **results, "steered_over_generate": ratio}))


def _original_state(handle: emowork.ModelHandle) -> dict[str, torch.Tensor]:
    """The wrapped model's parameters under their original Hugging Face names."""
    state = {}
    for name, tensor in handle.hf_model.state_dict().items():
        state[name.replace("._original_component", "")] = tensor
    return state


def _fresh_baseline(engine: LiveSteering, request: SteeringRequest):
    engine._baselines.clear()
    return engine.baseline(request, judge=False)


if __name__ == "__main__":
    main()
