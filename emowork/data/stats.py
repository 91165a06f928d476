"""Dataset statistics: counts per theme and valence, lengths in words and in a model's tokens."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import mean
from typing import Any

from .sev import VALENCES, SEVDataset


@dataclass
class DatasetStats:
    """Counts and lengths of a dataset.

    ``lengths_words`` / ``lengths_tokens`` map a field (``scenario``, ``event.positive``, ..., ``message``, and
    ``prompt`` when a model handle was given) to one length per item; tokens are None without a tokenizer.
    """

    name: str
    sha256: str
    n_skeletons: int
    n_groups: int
    skeletons_per_theme: dict[str, int]
    lengths_words: dict[str, list[int]]
    lengths_tokens: dict[str, list[int]] | None = None
    tokenizer: str | None = None
    themes_of_items: list[str] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """One row per theme: skeletons, groups, mean scenario/event words (and message tokens)."""
        rows = []
        for theme, count in self.skeletons_per_theme.items():
            idx = [i for i, t in enumerate(self.themes_of_items) if t == theme]
            row = {"theme": theme, "skeletons": count, "groups": count * len(VALENCES),
                   "scenario words": round(mean(self.lengths_words["scenario"][i] for i in idx), 1),
                   "event words": round(mean(self.lengths_words[f"event.{v}"][i] for i in idx for v in VALENCES), 1)}
            if self.lengths_tokens:
                row["message tokens"] = round(mean(self.lengths_tokens["message"][i * 3 + k] for i in idx for k in range(3)), 1)
            rows.append(row)
        return rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the per-item length lists)."""
        out = {k: v for k, v in asdict(self).items() if k not in {"lengths_words", "lengths_tokens", "themes_of_items"}}
        out["mean_words"] = {k: round(mean(v), 2) for k, v in self.lengths_words.items()}
        if self.lengths_tokens:
            out["mean_tokens"] = {k: round(mean(v), 2) for k, v in self.lengths_tokens.items()}
            out["max_tokens"] = {k: max(v) for k, v in self.lengths_tokens.items()}
        return out


def stats(ds: SEVDataset, tokenizer: Any = None) -> DatasetStats:
    """Statistics of ``ds``. ``tokenizer``: a HF tokenizer or a :class:`~emowork.model.handle.ModelHandle` (which also
    gives the length of the full neutral chat prompt)."""
    from ..prompts import NEUTRAL_SYSTEM

    handle = tokenizer if hasattr(tokenizer, "format_chat") else None
    tok = handle.tokenizer if handle is not None else tokenizer
    per_theme: dict[str, int] = {}
    for s in ds:
        per_theme[s.theme] = per_theme.get(s.theme, 0) + 1
    texts: dict[str, list[str]] = {"scenario": [s.scenario for s in ds]}
    for v in VALENCES:
        texts[f"event.{v}"] = [s.event(v) for s in ds]
    texts["message"] = [g.message for g in ds.groups]
    words = {k: [len(t.split()) for t in v] for k, v in texts.items()}
    tokens = None
    if tok is not None:
        tokens = {k: [len(ids) for ids in tok(v, add_special_tokens=False)["input_ids"]] for k, v in texts.items()}
        if handle is not None:
            prompts = [handle.format_chat(g.message, NEUTRAL_SYSTEM) for g in ds.groups]
            tokens["prompt"] = handle.n_tokens(prompts)
    return DatasetStats(
        name=ds.name, sha256=ds.sha256, n_skeletons=len(ds), n_groups=len(ds.groups), skeletons_per_theme=per_theme,
        lengths_words=words, lengths_tokens=tokens, tokenizer=getattr(tok, "name_or_path", None) if tok is not None else None,
        themes_of_items=[s.theme for s in ds],
    )
