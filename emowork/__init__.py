"""emowork: find and control emotion circuits in language models (a notebook-first research workbench).

Main entry points::

    import emowork
    handle = emowork.load_model("embedded")          # SmolLM2-135M-Instruct behind TransformerLens
    print(handle.check())                             # hook self-check: a table of identities
    acts = emowork.capture(handle, prompts, sites=["resid_mid", "resid_post"])   # {site: [n, n_layers, d]}
    with emowork.intervene(handle, [emowork.Intervention("mlp_post", 3, "ablate", units=(7,))], T) as run: ...

The package is layered (docs/architecture.md): model -> hooks -> generation -> data, judge, analysis -> components
-> plots -> panels, pipeline, cli.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .hooks.capture import capture
from .errors import (
    CacheError,
    CheckFailedError,
    DeviceError,
    EmoworkError,
    ModelNotAvailableError,
    SiteError,
)
from .model.handle import ModelFacts, ModelHandle
from .model.loading import available_names, load_model
from .hooks import Intervention, intervene
from .hooks.sites import SITE_HOOKS

__all__ = [
    "__version__",
    "capture",
    "load_model",
    "available_names",
    "ModelHandle",
    "ModelFacts",
    "SITE_HOOKS",
    "Intervention",
    "intervene",
    "EmoworkError",
    "ModelNotAvailableError",
    "DeviceError",
    "SiteError",
    "CacheError",
    "CheckFailedError",
]
