"""Save a random-weight model with the exact shape of a real one, for speed and memory figures without weights.

    python benchmarks/random_model.py --config benchmarks/configs/llama-3.2-3b-shape.json --out /tmp/llama-3b-shape

Timings depend on the shapes, not on the weight values, so a model built from a published config (here
Llama-3.2-3B-Instruct's sizes) measures what the real one would, on a machine that cannot download it. The folder
gets the config, bf16 safetensors weights (bf16 on a GPU, else fp32) and the project's byte-level tokenizer with a
ChatML template, so every benchmark and ``emowork check`` accept it as ``--model FOLDER``. Its text is noise.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from emowork.model.tiny_models import byte_level_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a config.json (model_type and sizes)")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    raw = json.loads(Path(args.config).read_text())
    config = AutoConfig.for_model(**raw)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(args.seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tokenizer = byte_level_tokenizer()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: {type(model).__name__}, {n / 1e9:.2f}B parameters, {dtype}, written in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
