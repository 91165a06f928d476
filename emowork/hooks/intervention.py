"""One declarative intervention type: where (site, layer, units, rows), when (positions) and what (add, scale, set,
ablate). Every way the workbench changes a forward pass — direction steering, neuron and head ablation or enhancement,
judged edits, circuit modulation — is an :class:`Intervention` or a list of them; an executor
(:mod:`emowork.hooks.executors`) applies the list on one backend.

What each operation does to the activation ``a`` (``[width]`` at one position of one row) on the chosen units ``u``:

=========  =======================================  ==============================================================
op         new value on units ``u``                 ``value``
=========  =======================================  ==============================================================
add        ``a + value`` (``a + rms(a) * value``     ``[width]`` or ``[rows, width]`` (full width; only ``u`` used)
           with ``rms_units``)
scale      ``a * value``                            a number, ``[width]`` or ``[rows, width]``
set        ``value``                                ``[width]`` or ``[rows, width]``
ablate     ``0``                                    None
=========  =======================================  ==============================================================

All four are one affine map ``a -> a * gain + bias`` on the chosen units and positions (:meth:`Intervention.affine`),
which is how every executor applies them. ``rms(a)`` is the root mean square of the whole activation at that position
(so ``add`` with ``rms_units`` and a unit vector times alpha is the steering of docs/method.md section 5).

Width per site: ``d_model`` for the residual sites, ``d_mlp`` for ``mlp_post`` (units are neurons) and
``n_heads * d_head`` for ``z`` (head-major; units are heads, each covering ``d_head`` entries).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence, Union, get_args

import torch

from ..errors import SiteError

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelFacts

Operation = Literal["add", "scale", "set", "ablate"]
NamedWhen = Literal["last_prompt", "from_last_prompt", "prompt", "generated", "all"]
When = Union[NamedWhen, tuple[int, ...]]
OPERATIONS: tuple[str, ...] = get_args(Operation)
NAMED_WHEN: tuple[str, ...] = get_args(NamedWhen)
WRITABLE_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out", "mlp_post", "z")
RESIDUAL_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out")


def position_mask(absolute: torch.Tensor, prompt_length: int, when: When) -> torch.Tensor:
    """Boolean ``[seq]``: which absolute (left-padded) positions of a pass an intervention touches.

    ``last_prompt``: ``prompt_length - 1`` only (the method's setting, applied once, at prefill);
    ``from_last_prompt``: the last prompt token and every generated one; ``prompt``: every prompt position;
    ``generated``: every position after the prompt; ``all``: every position; a tuple: those absolute positions.
    """
    if isinstance(when, tuple):
        return torch.isin(absolute, torch.tensor(when, dtype=absolute.dtype, device=absolute.device))
    if when == "last_prompt":
        return absolute == prompt_length - 1
    if when == "from_last_prompt":
        return absolute >= prompt_length - 1
    if when == "prompt":
        return absolute < prompt_length
    if when == "generated":
        return absolute >= prompt_length
    if when == "all":
        return torch.ones_like(absolute, dtype=torch.bool)
    raise ValueError(f"Unknown position rule {when!r}: use one of {', '.join(NAMED_WHEN)} or a tuple of positions.")


@dataclass(frozen=True, eq=False)
class Intervention:
    """Change one site of one layer: ``op`` with ``value`` on ``units`` (all when None) of ``rows`` (all when None) at
    the positions ``when`` selects.

    Attributes:
        site: ``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out`` (width d_model), ``mlp_post`` (neurons,
            d_mlp) or ``z`` (heads' outputs before W_O, n_heads * d_head).
        layer: the block index (0 .. n_layers - 1).
        op: ``add``, ``scale``, ``set`` or ``ablate`` (see the module's table).
        value: ``[width]``, ``[len(rows) or batch, width]``, or a number for ``scale``; None for ``ablate``.
        units: neuron indices (``mlp_post``) or head indices (``z``); None for the whole width.
        when: a position rule (``last_prompt`` ...) or a tuple of absolute positions.
        rms_units: ``add`` only: ``value`` is multiplied by the activation's RMS at each position and row.
        rows: batch rows it applies to (None: every row); a per-row ``value`` then has one row per listed row.
    """

    site: str
    layer: int
    op: Operation = "add"
    value: torch.Tensor | float | None = None
    units: tuple[int, ...] | None = None
    when: When = "last_prompt"
    rms_units: bool = False
    rows: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.site not in WRITABLE_SITES:
            hint = " (resid_mid is read-only: write resid_post, attn_out or mlp_out)" if self.site == "resid_mid" else ""
            raise SiteError(f"Cannot intervene on site {self.site!r}{hint}; writable sites: {', '.join(WRITABLE_SITES)}.")
        if not isinstance(self.layer, int) or isinstance(self.layer, bool) or self.layer < 0:
            raise SiteError(f"layer={self.layer!r}: give a block index 0 .. n_layers - 1.")
        if self.op not in OPERATIONS:
            raise ValueError(f"op={self.op!r}: use one of {', '.join(OPERATIONS)}.")
        if self.op == "ablate":
            if self.value is not None:
                raise ValueError("ablate takes no value (it sets the chosen units to zero).")
        elif self.value is None:
            raise ValueError(f"op={self.op!r} needs a value.")
        elif isinstance(self.value, torch.Tensor):
            if self.value.dim() not in (1, 2):
                raise ValueError(f"value has shape {tuple(self.value.shape)}: give [width] or [rows, width].")
            if not bool(torch.isfinite(self.value).all()):
                raise ValueError(f"the {self.op} value for layer {self.layer} ({self.site}) holds NaN or infinite numbers "
                                 "(a NaN or infinite strength?); use finite numbers.")
        else:
            if self.op != "scale":
                raise ValueError(f"op={self.op!r} takes a vector value; only scale takes a number.")
            if not isinstance(self.value, (int, float)) or not math.isfinite(float(self.value)):
                raise ValueError(f"scale value {self.value!r} must be a finite number.")
        if self.rms_units and self.op != "add":
            raise ValueError("rms_units applies to op='add' only.")
        if self.units is not None:
            if self.site not in ("mlp_post", "z"):
                raise SiteError(f"units select neurons (mlp_post) or heads (z), not parts of {self.site!r}.")
            if not self.units or any(not isinstance(u, int) or u < 0 for u in self.units):
                raise SiteError(f"units={self.units!r}: give a non-empty tuple of non-negative indices.")
        if isinstance(self.when, tuple):
            if not self.when or any(not isinstance(p, int) or p < 0 for p in self.when):
                raise ValueError(f"when={self.when!r}: positions must be a non-empty tuple of non-negative integers.")
        elif self.when not in NAMED_WHEN:
            raise ValueError(f"when={self.when!r}: use one of {', '.join(NAMED_WHEN)} or a tuple of positions.")
        if self.rows is not None and (not self.rows or any(not isinstance(r, int) or r < 0 for r in self.rows)):
            raise ValueError(f"rows={self.rows!r}: give a non-empty tuple of batch row indices.")

    # ------------------------------------------------------------------ checks against a model
    def width(self, facts: "ModelFacts") -> int:
        """Width of one position's activation at this site for a model with ``facts``."""
        if self.site == "mlp_post":
            return facts.d_mlp
        if self.site == "z":
            return facts.n_heads * facts.d_head
        return facts.d_model

    def check(self, facts: "ModelFacts", prompt_length: int | None = None) -> None:
        """Raise a clear error when the layer, units, value width or positions do not fit the model (or the prompt)."""
        if self.layer >= facts.n_layers:
            raise SiteError(f"layer {self.layer} does not exist: the model has {facts.n_layers} layers (0..{facts.n_layers - 1}).")
        if self.units is not None:
            n_units = facts.d_mlp if self.site == "mlp_post" else facts.n_heads
            bad = [u for u in self.units if u >= n_units]
            if bad:
                kind = "neurons" if self.site == "mlp_post" else "heads"
                raise SiteError(f"{kind} {bad[:5]} do not exist in layer {self.layer}: it has {n_units} {kind} (0..{n_units - 1}).")
        if isinstance(self.value, torch.Tensor) and self.value.shape[-1] != self.width(facts):
            raise ValueError(f"value width {self.value.shape[-1]} does not match site {self.site!r} "
                             f"(width {self.width(facts)} on this model).")
        if isinstance(self.value, torch.Tensor) and self.value.dim() == 2 and self.rows is not None and self.value.shape[0] != len(self.rows):
            raise ValueError(f"a per-row value has {self.value.shape[0]} rows for {len(self.rows)} listed rows.")
        if prompt_length is not None and isinstance(self.when, tuple) and self.when == ():
            raise ValueError("no positions given")

    # ------------------------------------------------------------------ the affine map
    def unit_mask(self, facts: "ModelFacts", device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
        """``[width]``: 1 on the chosen units' entries, 0 elsewhere (all ones when ``units`` is None)."""
        width = self.width(facts)
        if self.units is None:
            return torch.ones(width, device=device, dtype=dtype)
        mask = torch.zeros(width, device=device, dtype=dtype)
        index = torch.tensor(self.units, dtype=torch.long)
        if self.site == "z":
            index = (index[:, None] * facts.d_head + torch.arange(facts.d_head)[None, :]).reshape(-1)
        mask[index.to(device)] = 1
        return mask

    def affine(self, facts: "ModelFacts", device: torch.device | str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gain, bias)``, each ``[width]`` or ``[rows, width]``: on the chosen units the new activation is
        ``a * gain + bias`` (``bias`` still to be multiplied by ``rms(a)`` when ``rms_units``); elsewhere gain 1, bias 0."""
        self.check(facts)
        mask = self.unit_mask(facts, device, dtype)
        value = self.value.to(device, dtype) if isinstance(self.value, torch.Tensor) else self.value
        chosen = mask.bool()
        ones, zeros = torch.ones_like(mask), torch.zeros_like(mask)
        if self.op == "add":
            return ones, torch.where(chosen, value, zeros)
        if self.op == "scale":  # where(), not 1 + mask * (s - 1): that rounds near 1 in half precision
            return torch.where(chosen, torch.as_tensor(value, device=device, dtype=dtype), ones), zeros
        if self.op == "set":
            return torch.where(chosen, zeros, ones), torch.where(chosen, value, zeros)
        return torch.where(chosen, zeros, ones), zeros


def check_all(interventions: Sequence[Intervention], facts: "ModelFacts") -> list[Intervention]:
    """The interventions as a list, each checked against the model (:meth:`Intervention.check`)."""
    items = list(interventions)
    for item in items:
        if not isinstance(item, Intervention):
            raise TypeError(f"expected Intervention objects, got {type(item).__name__}")
        item.check(facts)
    return items
