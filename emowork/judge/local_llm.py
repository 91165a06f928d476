"""A local chat model as the judge: ``load_judge("hf:<model id, folder or built-in name>")``.

It asks the same rubric as the OpenAI-compatible :class:`~emowork.judge.llm.LLMJudge`, but reads the answer from
the next-token distribution instead of parsing free text: ``accept`` compares the probability of "yes" with that of
"no" (each summed over its spellings' first tokens: ``yes``, ``Yes``, `` yes``...), and ``scores`` gives the
probabilities of the six emotion names, renormalised over the six. One batched forward pass per batch of prompts
(left-padded, the last position read), on the unwrapped Hugging Face model (no hooks). Any model
:func:`emowork.load_model` can load works: a Hugging Face id in the local cache, a folder, ``embedded``, ``tiny-llama``.
A 7B instruct model on a GPU is a strong offline judge; the embedded 135M model is not (it tests the mechanics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..emotions import EMOTIONS, check_emotion
from .base import Judge
from .llm import CLASSIFY_RUBRIC, MATCH_RUBRIC, TEXT_SLOT

if TYPE_CHECKING:
    from ..model.handle import ModelHandle

LOCAL_SYSTEM = "You are a careful annotator of the emotional style of short texts. Answer with one word."
MATCH_PROMPT = MATCH_RUBRIC + "Answer with one word: yes or no." + TEXT_SLOT
CLASSIFY_PROMPT = CLASSIFY_RUBRIC + "Answer with one word: the emotion." + TEXT_SLOT
YES, NO = ("yes", "Yes", "YES"), ("no", "No", "NO")


def first_token_ids(tokenizer: Any, words: Sequence[str]) -> set[int]:
    """The first token of each spelling of ``words``, bare and after a space (an answer may start either way)."""
    ids = set()
    for word in words:
        for spelling in (word, " " + word):
            tokens = tokenizer(spelling, add_special_tokens=False)["input_ids"]
            if tokens:
                ids.add(int(tokens[0]))
    return ids


def answer_token_sets(tokenizer: Any, answers: Sequence[Sequence[str]]) -> list[list[int]]:
    """Token ids per answer, keeping only first tokens that no other answer shares.

    Raises ``ValueError`` when an answer has no token of its own (the tokenizer cannot tell it apart by one token).
    """
    sets = [first_token_ids(tokenizer, words) for words in answers]
    out = []
    for i, ids in enumerate(sets):
        others = set().union(*(s for j, s in enumerate(sets) if j != i))
        own = sorted(ids - others)
        if not own:
            raise ValueError(f"the tokenizer gives the answer {answers[i][0]!r} no first token of its own; this model "
                             "cannot be used as a local judge")
        out.append(own)
    return out


class LocalLLMJudge(Judge):
    """Judge with a local causal LM by the probability of its one-word answer; ``threshold`` applies to p(yes)."""

    def __init__(self, model: "str | ModelHandle", batch_size: int = 16, device: str = "auto", dtype: str = "auto",
                 threshold: float = 0.5) -> None:
        from ..model.handle import ModelHandle
        from ..model.loading import load_model

        self.handle = model if isinstance(model, ModelHandle) else load_model(model, device=device, dtype=dtype)
        self.batch_size = batch_size
        self.threshold = threshold
        self.name = f"local-llm-{self.handle.name}"
        self.version = f"{self.handle.name}@{self.handle.fingerprint}; paper's match question, answer-token probability v1"
        tokenizer = self.handle.tokenizer
        self._yes_no = self._answers((YES, NO))
        self._emotions = self._answers([(e, e.capitalize()) for e in EMOTIONS])

    def _answers(self, answers: Sequence[Sequence[str]]) -> list[list[int]] | list[str]:
        """First-token ids per answer when the tokenizer tells every answer apart by its first token; else the
        answers' words, scored by the probability of their whole token sequence (slower: one row per answer)."""
        try:
            return answer_token_sets(self.handle.tokenizer, answers)
        except ValueError:
            return [words[0] for words in answers]

    def __repr__(self) -> str:
        return f"LocalLLMJudge({self.handle.name!r}, threshold {self.threshold})"

    def _answer_probabilities(self, questions: Sequence[str], answers: list[list[int]] | list[str]) -> np.ndarray:
        """``[n, len(answers)]``: each answer's probability as the reply, renormalised over the answers.

        Token-id answers: the next-token probability summed over the ids (one row per question). Word answers: the
        probability of the word's whole token sequence after the prompt (one row per question and answer).
        """
        prompts = [self.handle.format_chat(q, LOCAL_SYSTEM) for q in questions]
        if answers and isinstance(answers[0], str):
            words = [str(a) for a in answers]
            lengths = self.handle.n_tokens(words)
            rows = [p + w for p in prompts for w in words]
            logp = self._last_token_logprobs(rows, [lengths[j] for _ in prompts for j in range(len(words))])
            logp = logp.reshape(len(prompts), len(words))
            logp -= logp.max(1, keepdims=True)
            probs = np.exp(logp)
            return probs / probs.sum(1, keepdims=True)
        ids = [torch.tensor(a) for a in answers]
        return self._forward(prompts, lambda logits, _: torch.stack(
            [torch.softmax(logits[:, -1], -1)[:, i].sum(-1) for i in ids], -1), len(answers))

    def _forward(self, prompts: Sequence[str], read: Any, width: int) -> np.ndarray:
        """Batched forward passes (sorted by length, left-padded); ``read(logits [b, t, V] float, batch)`` gives
        ``[b, width]`` per batch. Rows whose values do not sum to 1 are renormalised when ``width > 1``."""
        from ..model.unwrapped import unwrapped_model

        model = unwrapped_model(self.handle)
        out = np.zeros((len(prompts), width), dtype=np.float64)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self.handle.encode([prompts[i] for i in idx])
                values = read(model(**batch, use_cache=False).logits.float(), batch).reshape(len(idx), width)
                if width > 1:
                    values = values / values.sum(-1, keepdim=True).clamp(min=1e-30)
                out[idx] = values.cpu().numpy()
        return out

    def _last_token_logprobs(self, texts: Sequence[str], n_last: Sequence[int]) -> np.ndarray:
        """``[n]``: the log-probability of each text's last ``n_last[i]`` tokens given the tokens before them."""
        lengths = dict(enumerate(n_last))
        order_lengths: list[int] = []

        def read(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
            k = torch.tensor(order_lengths[:len(logp)], device=logp.device)
            del order_lengths[:len(logp)]
            steps = torch.arange(logp.shape[1], device=logp.device)
            return (logp * (steps[None] >= logp.shape[1] - k[:, None])).sum(-1)

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        order_lengths.extend(lengths[i] for i in order)
        return self._forward(texts, read, 1)[:, 0]

    def match_probabilities(self, texts: Sequence[str], targets: Sequence[str]) -> np.ndarray:
        """p(yes) ``[n]`` for "does text i's style match targets[i]?"."""
        questions = [MATCH_PROMPT.format(target=check_emotion(t), text=x) for x, t in zip(texts, targets)]
        return self._answer_probabilities(questions, self._yes_no)[:, 0]

    def accept(self, texts: Sequence[str], targets: Sequence[str]) -> np.ndarray:
        texts, targets = list(texts), list(targets)
        if len(texts) != len(targets):
            raise ValueError(f"accept() needs one target per text ({len(texts)} texts, {len(targets)} targets)")
        if not texts:
            return np.zeros(0, dtype=bool)
        return self.match_probabilities(texts, targets) >= self.threshold

    def verdicts(self, texts: Sequence[str], targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        scores = self.scores(texts)
        return scores, self.accept(texts, targets), self.predict_from_scores(scores)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """``[n, 6]`` probabilities of the six emotion names as the answer to the classification question."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        return self._answer_probabilities([CLASSIFY_PROMPT.format(text=t) for t in texts], self._emotions).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.handle.name, "fingerprint": self.handle.fingerprint}
