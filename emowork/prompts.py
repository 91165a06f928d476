"""Prompt builders of docs/method.md section 2: the emotion-elicited prompt and the neutral prompt, in the model's chat format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .emotions import check_emotion, check_emotions

if TYPE_CHECKING:  # pragma: no cover
    from .data.sev import Group
    from .model.handle import ModelHandle

EMOTION_SYSTEM = "Always reply in {emotion}.\nKeep the reply to at most two sentences."
NEUTRAL_SYSTEM = "Keep the reply to at most two sentences."

# Words a template can use: {emotion} (the noun of docs/method.md section 2), {adjective}, {intense}.
EMOTION_WORDS: dict[str, dict[str, str]] = {
    "anger": {"adjective": "angry", "intense": "furious"},
    "sadness": {"adjective": "sad", "intense": "heartbroken"},
    "happiness": {"adjective": "happy", "intense": "overjoyed"},
    "fear": {"adjective": "afraid", "intense": "terrified"},
    "surprise": {"adjective": "surprised", "intense": "astonished"},
    "disgust": {"adjective": "disgusted", "intense": "revolted"},
}
# Paraphrased instructions for the cross-wording consistency test (the first is the paper's).
PARAPHRASE_TEMPLATES: dict[str, str] = {
    "reply_in": EMOTION_SYSTEM,
    "feels": "Answer as someone who feels {adjective}.\nKeep the reply to at most two sentences.",
    "sound": "Your reply should sound {intense}.\nKeep the reply to at most two sentences.",
}
_SLOTS = ("{emotion}", "{adjective}", "{intense}")


def system_instruction(template: str, emotion: str) -> str:
    """``template`` with its emotion slot filled (``{emotion}``, ``{adjective}`` or ``{intense}``)."""
    if not any(slot in template for slot in _SLOTS):
        raise ValueError(f"An emotion template needs an emotion slot ({', '.join(_SLOTS)}): {template!r}")
    name = check_emotion(emotion)
    return template.format(emotion=name, **EMOTION_WORDS[name])


def emotion_prompt(handle: "ModelHandle", group: "Group", emotion: str, template: str = EMOTION_SYSTEM) -> str:
    """The emotion-elicited prompt: system ``template`` with its emotion slot filled, user ``"{scenario}\\n{event}"``,
    in the model's chat template with the generation prompt appended (plain-text fallback without one)."""
    return handle.format_chat(group.message, system_instruction(template, emotion))


def neutral_prompt(handle: "ModelHandle", group: "Group", system: str = NEUTRAL_SYSTEM) -> str:
    """The neutral prompt (used for steering, sublayer importance and circuit modulation)."""
    return handle.format_chat(group.message, system)


@dataclass
class PromptBatch:
    """Prompts for a list of (group, emotion) pairs.

    ``texts[i]`` is the prompt of ``groups[i]`` with ``emotions[i]`` (None for the neutral prompt);
    ``last_index[i]`` is the index of its last prompt token in its own (unpadded) token sequence, i.e.
    ``n_tokens[i] - 1``. In a left-padded batch that token is at index ``-1`` for every row.
    """

    texts: list[str]
    groups: list["Group"]
    emotions: list[str | None]
    n_tokens: list[int]

    @property
    def last_index(self) -> list[int]:
        return [n - 1 for n in self.n_tokens]

    def __len__(self) -> int:
        return len(self.texts)


def build_prompts(handle: "ModelHandle", groups: Sequence["Group"], emotions: Sequence[str] | None | str = "all",
                  template: str = EMOTION_SYSTEM) -> PromptBatch:
    """Prompts for every group x emotion (group-major: the six emotions of a group are adjacent).

    ``emotions="all"`` gives the six emotions in the order of docs/method.md section 1; a list picks some; ``None`` gives one neutral
    prompt per group.
    """
    groups = list(groups)
    texts: list[str] = []
    out_groups: list["Group"] = []
    out_emotions: list[str | None] = []
    if emotions is None:
        for g in groups:
            texts.append(neutral_prompt(handle, g))
            out_groups.append(g)
            out_emotions.append(None)
    else:
        chosen = check_emotions(None if emotions == "all" else emotions)
        for g in groups:
            for e in chosen:
                texts.append(emotion_prompt(handle, g, e, template))
                out_groups.append(g)
                out_emotions.append(e)
    return PromptBatch(texts, out_groups, out_emotions, handle.n_tokens(texts) if texts else [])
