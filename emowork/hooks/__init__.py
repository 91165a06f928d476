"""Reading and writing activations: sites, capture, the activation store, interventions and their executors, and the
hook self-check.

    from emowork.hooks import Intervention, intervene
    with intervene(handle, [Intervention("z", 3, "ablate", units=(0, 2))], prompt_length=T) as run:
        logits = run.model(input_ids=ids).logits        # run.backend: "unwrapped", "bridge" or "static"
"""

from .executors import BACKENDS, choose_backend, intervene
from .intervention import Intervention, position_mask
from .sites import SITE_HOOKS

__all__ = ["Intervention", "intervene", "choose_backend", "position_mask", "BACKENDS", "SITE_HOOKS"]
