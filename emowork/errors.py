"""Exceptions raised by emowork, each with a message that says what to fix."""

from __future__ import annotations

import math


class EmoworkError(Exception):
    """Base class of every error emowork raises on purpose."""


class ModelNotAvailableError(EmoworkError):
    """A model name could not be resolved to weights on this machine (and no download is possible)."""


class DeviceError(EmoworkError):
    """A requested device or dtype does not exist or is not usable here."""


class SiteError(EmoworkError, ValueError):
    """An activation site or layer that the model does not have."""


class CacheError(EmoworkError):
    """An on-disk cache entry that cannot be used."""


class CheckFailedError(EmoworkError):
    """The hook self-check found an identity that does not hold for this model."""


def check_finite(name: str, value: float) -> float:
    """``value`` as a float; a clear ``ValueError`` for NaN, infinity or a non-number (they would silently corrupt
    every activation they touch)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number.") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}={value!r} must be a finite number (a strength, scale or fraction).")
    return number
