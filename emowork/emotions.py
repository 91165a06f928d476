"""The six emotions of the method, in the order of docs/method.md section 1, and validation of emotion names."""

from __future__ import annotations

from typing import Iterable

from .errors import EmoworkError

EMOTIONS: tuple[str, ...] = ("anger", "sadness", "happiness", "fear", "surprise", "disgust")
_ALIASES = {"joy": "happiness", "happy": "happiness", "angry": "anger", "sad": "sadness", "afraid": "fear",
            "surprised": "surprise", "disgusted": "disgust"}


class UnknownEmotionError(EmoworkError, ValueError):
    """An emotion name outside the six."""


def check_emotion(name: str) -> str:
    """Return the canonical emotion name (``"joy"`` -> ``"happiness"``); raise naming the six otherwise."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in EMOTIONS:
        raise UnknownEmotionError(f"Unknown emotion {name!r}: use one of {', '.join(EMOTIONS)}.")
    return key


def check_emotions(names: Iterable[str] | None) -> list[str]:
    """Validate a list of emotions (``None`` = all six, in order); duplicates are refused."""
    if names is None:
        return list(EMOTIONS)
    if isinstance(names, str):
        names = [names]
    result = [check_emotion(n) for n in names]
    if len(set(result)) != len(result):
        raise UnknownEmotionError(f"Emotion list {list(names)} names an emotion twice.")
    if not result:
        raise UnknownEmotionError("Empty emotion list: use one or more of " + ", ".join(EMOTIONS) + ".")
    return result
