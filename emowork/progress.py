"""Progress bars: tqdm (notebook-aware), silenced by ``EMOWORK_PROGRESS=0`` or ``progress=False``."""

from __future__ import annotations

import os
from typing import Any


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "it") -> Any:
    """Return a tqdm bar over ``total`` steps (a disabled one when ``enabled`` is False or progress is off)."""
    from tqdm.auto import tqdm

    off = os.environ.get("EMOWORK_PROGRESS", "1").strip().lower() in {"0", "false", "no", "off"}
    return tqdm(total=total, desc=desc, disable=(not enabled) or off, unit=unit, leave=False, dynamic_ncols=True)
