"""Attribution graphs (docs/method.md section 10): how a circuit's neurons and heads pass an emotion to each other and
to the output, on one prompt, with exact edges.

**The linearisation.** On the prompt, every normalisation scale, every attention pattern and every gate of a gated
MLP is frozen at its value on that prompt; every sublayer output that is not a node is frozen too (its error node).
The residual stream is then a sum of writes, and each node's *input* is an affine function of the residual it reads:

- a **neuron** ``(L, i, q)`` reads the residual after block L's attention at position q; its input is its
  pre-activation (the up projection ``u_i`` of a gated MLP, whose gate is frozen; the input of the activation function
  otherwise). Its write is ``a_i * W_out[L][i]`` (``a`` the actual activation);
- a **head** ``(L, h, q)`` reads the residual entering block L at every position ``k <= q`` through its frozen
  pattern ``A[h, q, k]``; its input is the size of its write along that write's own direction,
  ``<z_h,q W_O[h], u>`` with ``u`` the write's unit vector (so it equals ``|write|`` on the prompt);
- the **target** is ``<h_final, v_ref[e]>``: the last block's ``resid_post`` at the last token on the emotion's
  reference direction.

The **edge** ``s -> t`` is the direct effect of ``s``'s write on ``t``'s input: ``read_t(write_s)``, with
``read_t`` the linear part of ``t``'s input. For every node, the incoming edges plus its bias (the input with a zero
residual) add up to its actual input, and removing ``s``'s write from a forward pass that freezes all of the above
changes ``t``'s input by exactly the edge weight (``tests/test_graphs.py`` checks both).

**The computation.** The linear read maps do not depend on the prompt apart from the frozen scales and patterns, so
all of them come from *one* batched backward pass through one-token rows: one row per circuit neuron and per circuit
head's output coordinate, the residual replaced by a zero leaf at every block and every scale set to 1 (the
gradients are the read vectors, the values the biases). The edges are then matrix products of the writes with these
read vectors, scaled by the frozen ``1 / scale`` and patterns: no forward pass per edge or per source.

Nodes are placed on the last ``positions`` tokens of the prompt (all of them by default); outside that window the
circuit's components are part of their error node. Token nodes and error nodes cover every position.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..hooks.attach import StopForward, attach_hooks
from ..hooks.sites import hook_name
from .assembly import Circuit, CircuitError

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

@contextmanager
def _quiet_norm_edits():
    """TransformerLens warns that a hooked normalisation scale is recomputed at rounding scale: that is the point here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A forward hook edited hook_scale")
        yield


# Small caches (oldest dropped first): read maps of the last two (circuit, emotion) pairs, reused for their next
# prompts, and the clean captures of the last four prompts, reused across emotions and circuits.
_READ_MAPS: dict[tuple[int, str, str, str], Any] = {}
_CLEAN: dict[tuple[int, str, str], Any] = {}
NODE_KINDS = ("token", "head", "neuron", "error", "target")
SITES = ("attn", "mlp")


@dataclass(frozen=True)
class Node:
    """One node. ``layer``: block (-1 for tokens, ``n_layers`` for the target); ``site``: ``attn`` for heads and
    attention errors, ``mlp`` for neurons and MLP errors, ``""`` otherwise; ``index``: neuron, head or token id;
    ``position``: token position (``position - n_tokens`` counts from the end); ``activation``: the neuron's
    activation, the size of a head's or error's write, the target's value; ``value``: the node's input (see the
    module docstring; for token and error nodes their write's size)."""

    kind: str
    layer: int
    site: str
    index: int
    position: int
    activation: float
    value: float
    label: str

    @property
    def key(self) -> str:
        """A name that identifies the node across prompts of one length, e.g. ``neuron:L3:i17:p-1``."""
        return f"{self.kind}:L{self.layer}:{self.site or '-'}:i{self.index}:p{self.position}"

    @property
    def order(self) -> int:
        """Where the node writes in the forward pass: -1 tokens, ``2L`` attention, ``2L + 1`` MLP, ``2 n_layers`` target."""
        if self.kind == "token":
            return -1
        return 2 * self.layer + (1 if self.site == "mlp" else 0)


@dataclass
class AttributionGraph:
    """Nodes and signed edges ``sources[m] -> targets[m]`` with ``weights[m]`` (direct effects, see the module
    docstring); ``bias[n]`` is node n's input with a zero residual, so ``value[n] = sum of incoming + bias[n]``."""

    nodes: list[Node]
    sources: np.ndarray  # [M] int
    targets: np.ndarray  # [M] int
    weights: np.ndarray  # [M] float64
    bias: np.ndarray  # [N] float64
    tokens: list[str]
    prompt: str
    emotion: str
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ reading
    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def target_index(self) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.kind == "target")

    def values(self) -> np.ndarray:
        """``[N]`` every node's actual input on the prompt."""
        return np.array([n.value for n in self.nodes], dtype=np.float64)

    def incoming_sum(self) -> np.ndarray:
        """``[N]``: the sum of every node's incoming edges plus its bias (equals :meth:`values` up to rounding)."""
        total = self.bias.copy()
        np.add.at(total, self.targets, self.weights)
        return total

    def adjacency(self) -> torch.Tensor:
        """Dense ``[N, N]`` with ``A[t, s]`` the edge weight ``s -> t``."""
        A = torch.zeros(self.n_nodes, self.n_nodes, dtype=torch.float64)
        A[torch.as_tensor(self.targets), torch.as_tensor(self.sources)] = torch.as_tensor(self.weights)
        return A

    def influence(self) -> tuple[np.ndarray, np.ndarray]:
        """``(node_influence [N], edge_influence [M])`` on the target, as the attribution-graph literature scores them:
        with ``B = |A|`` row-normalised (each node's incoming edges share 1), a node's influence is the sum over all
        paths from it to the target of the products of ``B`` along them (``e_target (B + B^2 + ...)``, the target
        itself 1); an edge's is ``B[t, s]`` times the influence of ``t``."""
        absolute = np.abs(self.weights)
        row = np.zeros(self.n_nodes)
        np.add.at(row, self.targets, absolute)
        share = np.divide(absolute, row[self.targets], out=np.zeros_like(absolute), where=row[self.targets] > 0)
        influence = np.zeros(self.n_nodes)
        influence[self.target_index] = 1.0
        orders = np.array([n.order for n in self.nodes])
        order_of_target = orders[self.targets]
        # a DAG ordered by where nodes write: settle targets from the top down, then push to their sources
        for level in sorted(set(orders.tolist()), reverse=True):
            mask = order_of_target == level
            if mask.any():
                np.add.at(influence, self.sources[mask], share[mask] * influence[self.targets[mask]])
        return influence, share * influence[self.targets]

    # ------------------------------------------------------------------ pruning
    def prune(self, share: float = 0.8) -> "AttributionGraph":
        """The subgraph carrying ``share`` of the influence on the target: first the fewest nodes whose influence adds
        up to ``share`` of all nodes' influence (the target always kept; token nodes kept when an edge keeps them),
        then, among edges between kept nodes, the fewest carrying ``share`` of their influence; nodes left without an
        edge are dropped. Biases and values are kept, so pruned nodes' inputs still read in full."""
        if not 0 < share <= 1:
            raise CircuitError(f"the pruning share must be in (0, 1], not {share}.")
        node_inf, edge_inf = self.influence()
        keep = np.zeros(self.n_nodes, bool)
        keep[_top_share(np.where(np.arange(self.n_nodes) == self.target_index, 0.0, node_inf), share)] = True
        keep[self.target_index] = True
        among = keep[self.sources] & keep[self.targets]
        kept_edges = np.flatnonzero(among)[_top_share(edge_inf[among], share)]
        used = np.zeros(self.n_nodes, bool)
        used[self.sources[kept_edges]] = used[self.targets[kept_edges]] = True
        used[self.target_index] = True
        return self._subgraph(used, kept_edges, {"pruned_share": share})

    def _subgraph(self, keep_nodes: np.ndarray, keep_edges: np.ndarray, extra: dict[str, Any]) -> "AttributionGraph":
        new_index = np.full(self.n_nodes, -1)
        new_index[keep_nodes] = np.arange(int(keep_nodes.sum()))
        return AttributionGraph([n for n, k in zip(self.nodes, keep_nodes) if k], new_index[self.sources[keep_edges]],
                                new_index[self.targets[keep_edges]], self.weights[keep_edges], self.bias[keep_nodes],
                                self.tokens, self.prompt, self.emotion, {**self.meta, **extra})

    # ------------------------------------------------------------------ files
    def to_json(self, path: Any, slug: str | None = None) -> Any:
        """Write the viewer JSON of circuit-tracer / Neuronpedia (validated against the schema in the repository)."""
        from .graph_files import write_viewer_json

        return write_viewer_json(self, path, slug)

    def save(self, folder: Any, name: str = "graph") -> Any:
        """Lossless files (``{name}.json`` + ``{name}.safetensors``); :func:`emowork.circuits.load_graph` reads them."""
        from .graph_files import save_graph

        return save_graph(self, folder, name)

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: nodes per kind, edges, the target's value and how much of it the error nodes carry."""
        kinds = {k: sum(n.kind == k for n in self.nodes) for k in NODE_KINDS}
        t = self.target_index
        into = self.targets == t
        from_errors = float(sum(w for s, w in zip(self.sources[into], self.weights[into]) if self.nodes[s].kind == "error"))
        return {"nodes": kinds, "edges": int(len(self.weights)), "target_value": self.nodes[t].value,
                "target_from_errors": from_errors, "emotion": self.emotion, **self.meta}


def _top_share(scores: np.ndarray, share: float) -> np.ndarray:
    """Indices of the fewest largest ``scores`` whose sum reaches ``share`` of the total (all when the total is 0)."""
    scores = np.clip(np.asarray(scores, float), 0, None)
    total = scores.sum()
    if total <= 0:
        return np.arange(len(scores))[:0]
    order = np.argsort(-scores, kind="stable")
    cumulative = np.cumsum(scores[order])
    count = int(np.searchsorted(cumulative, share * total - 1e-12 * total)) + 1
    return order[:min(count, len(order))]


# ---------------------------------------------------------------------- building
@dataclass
class _Clean:
    """What one clean forward pass leaves: per layer ``[T, ...]`` float64 tensors."""

    embed: torch.Tensor  # [T, D]
    attn_out: list[torch.Tensor]  # [T, D]
    mlp_out: list[torch.Tensor]  # [T, D]
    z: list[torch.Tensor]  # [T, H, dh]
    pattern: list[torch.Tensor]  # [H, T, T] (query, key)
    scale1: list[torch.Tensor]  # [T]
    scale2: list[torch.Tensor]  # [T]
    pre: list[torch.Tensor]  # [T, d_mlp] the neurons' pre-activation
    post: list[torch.Tensor]  # [T, d_mlp]
    final: torch.Tensor  # [D] last block's resid_post at the last token


def _clean_for(handle: "ModelHandle", prompt: str, enc: dict[str, torch.Tensor]) -> _Clean:
    """The clean capture of ``prompt`` (cached: one capture serves every emotion and circuit on that prompt)."""
    key = (id(handle), handle.fingerprint, prompt)
    if key not in _CLEAN:
        while len(_CLEAN) >= 4:
            _CLEAN.pop(next(iter(_CLEAN)))
        _CLEAN[key] = _capture_clean(handle, enc)
    return _CLEAN[key]


def pre_activation_site(handle: "ModelHandle") -> str:
    """The hook holding the neurons' pre-activation: the up projection of a gated MLP, else the activation's input."""
    return "mlp.hook_pre_linear" if handle.facts.gated_mlp else "mlp.hook_pre"


def freezing_hooks(handle: "ModelHandle", clean: _Clean) -> list[tuple[str, Any]]:
    """Hooks that freeze every normalisation scale and attention pattern at their values in ``clean`` (for checking
    edges against a real forward pass; the build itself never needs them). A gated MLP's gate needs no freezing: the
    neurons' input is the up projection, and the frozen pass replaces every MLP's output."""
    hooks: list[tuple[str, Any]] = []
    dtype = next(handle.hf_model.parameters()).dtype
    for L in range(handle.facts.n_layers):
        hooks += [(f"blocks.{L}.ln1.hook_scale", _const(clean.scale1[L][None, :, None], dtype)),
                  (f"blocks.{L}.ln2.hook_scale", _const(clean.scale2[L][None, :, None], dtype)),
                  (f"blocks.{L}.attn.hook_pattern", _const(clean.pattern[L][None], dtype))]
    return hooks


def _const(value: torch.Tensor, dtype: torch.dtype) -> Any:
    return lambda act, hook: value.to(act.device, act.dtype if act.is_floating_point() else dtype).expand_as(act).clone()


def _capture_clean(handle: "ModelHandle", enc: dict[str, torch.Tensor]) -> _Clean:
    f = handle.facts
    pre_site = pre_activation_site(handle)
    names = [hook_name("resid_pre", 0), hook_name("resid_post", f.n_layers - 1)]
    for L in range(f.n_layers):
        names += [hook_name(site, L) for site in ("attn_out", "mlp_out", "z", "mlp_post")]
        names += [f"blocks.{L}.{s}" for s in ("attn.hook_pattern", "ln1.hook_scale", "ln2.hook_scale", pre_site)]
    seen: dict[str, torch.Tensor] = {}
    hooks = [(n, lambda act, hook, _n=n: seen.__setitem__(_n, act[0].detach().double().cpu())) for n in names]
    with torch.no_grad(), attach_hooks(handle, hooks):
        handle.hf_model(**enc, use_cache=False)
    T = enc["input_ids"].shape[1]
    g = lambda L, s: seen[hook_name(s, L) if s in ("attn_out", "mlp_out", "z", "mlp_post") else f"blocks.{L}.{s}"]  # noqa: E731
    return _Clean(
        embed=seen[hook_name("resid_pre", 0)],
        attn_out=[g(L, "attn_out") for L in range(f.n_layers)],
        mlp_out=[g(L, "mlp_out") for L in range(f.n_layers)],
        z=[g(L, "z").reshape(T, f.n_heads, f.d_head) for L in range(f.n_layers)],
        pattern=[g(L, "attn.hook_pattern") for L in range(f.n_layers)],
        scale1=[g(L, "ln1.hook_scale").reshape(T) for L in range(f.n_layers)],
        scale2=[g(L, "ln2.hook_scale").reshape(T) for L in range(f.n_layers)],
        pre=[g(L, pre_site) for L in range(f.n_layers)],
        post=[g(L, "mlp_post") for L in range(f.n_layers)],
        final=seen[hook_name("resid_post", f.n_layers - 1)][-1],
    )


def _one_device(handle: "ModelHandle") -> None:
    """Attribution graphs index every block's activations with tensors on one device: refuse a split model."""
    if handle.split:
        raise CircuitError("attribution graphs need the model on one device, and this one is split over several "
                           "(loaded with gpus > 1): load it on one GPU (gpus=1), or leave the graphs stage out of the run.")


def read_maps(handle: "ModelHandle", neurons: dict[int, list[int]], heads: dict[int, list[int]],
              rows_per_pass: int | None = None) -> dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """The affine read maps of circuit neurons and heads with every scale set to 1, from batched backward passes.

    Returns ``{"neuron": {L: (R [n, D], b [n])}, "head": {L: (J [n_h, d_head, D], c [n_h, d_head])}}``: a neuron's
    pre-activation is ``R @ centre(x) / scale + b`` on the residual ``x`` it reads (``centre`` subtracts the mean on
    LayerNorm models: it is part of ``R`` here), a head's output ``z = sum_k A[k] (J @ x_k / scale_k) + c``.
    Row ``r`` of the one-token batch serves the ``r``-th neuron and the ``r``-th head coordinate of every block at
    once; ``rows_per_pass`` splits the rows into several passes (default: all in one on CPU, as many as 80% of the
    free memory holds on CUDA, by :func:`emowork.model.memory.forward_bytes_per_token`).
    """
    _one_device(handle)
    f = handle.facts
    layers = sorted(set(neurons) | set(heads))
    if not layers:
        return {"neuron": {}, "head": {}}
    rows = max([len(v) for v in neurons.values()] + [len(v) * f.d_head for v in heads.values()] + [1])
    device = next(handle.hf_model.parameters()).device
    if rows_per_pass is not None and (not isinstance(rows_per_pass, int) or rows_per_pass < 1):
        raise ValueError(f"rows_per_pass={rows_per_pass!r}: give a positive whole number, or None to choose from memory.")
    if rows_per_pass is None:
        rows_per_pass = rows
        if device.type == "cuda":
            from ..model.memory import cuda_free_bytes, forward_bytes_per_token, rows_that_fit

            per_row = 2 * (max(layers) + 1) * forward_bytes_per_token(f, handle.dtype, 1)
            rows_per_pass = rows_that_fit(cuda_free_bytes(device), per_row, cap=rows)
    parts = [_read_rows(handle, neurons, heads, start, min(rows, start + rows_per_pass))
             for start in range(0, rows, max(1, rows_per_pass))]
    out: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]] = {"neuron": {}, "head": {}}
    for L, units in neurons.items():
        out["neuron"][L] = (torch.cat([p["neuron"][L][0] for p in parts if L in p["neuron"]]),
                            torch.cat([p["neuron"][L][1] for p in parts if L in p["neuron"]]))
    for L, hs in heads.items():
        grads = torch.cat([p["head"][L][0] for p in parts if L in p["head"]])
        bias = torch.cat([p["head"][L][1] for p in parts if L in p["head"]])
        out["head"][L] = (grads.reshape(len(hs), f.d_head, -1), bias.reshape(len(hs), f.d_head))
    return out


def _read_rows(handle: "ModelHandle", neurons: dict[int, list[int]], heads: dict[int, list[int]], start: int,
               stop: int) -> dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Rows ``start:stop`` of :func:`read_maps`, one forward and one backward: per block, the neurons and head
    coordinates whose row falls in the range (head rows flattened ``[n_h * d_head, D]``)."""
    f = handle.facts
    n_rows = stop - start
    device = next(handle.hf_model.parameters()).device
    dtype = next(handle.hf_model.parameters()).dtype
    mine_n = {L: units[start:stop] for L, units in neurons.items() if len(units) > start}
    mine_h = {L: (start, min(stop, len(hs) * f.d_head)) for L, hs in heads.items() if len(hs) * f.d_head > start}
    last = max(list(mine_n) + list(mine_h))
    leaves: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}
    pre_site = pre_activation_site(handle)

    def leaf(name: str):
        def hook(act, hook):
            leaves[name] = torch.zeros_like(act, dtype=torch.float32 if dtype in (torch.float16, torch.bfloat16) else act.dtype).requires_grad_(True)
            return leaves[name].to(act.dtype)
        return hook

    def keep(name: str, stop_here: bool = False):
        def hook(act, hook):
            outputs[name] = act
            if stop_here:
                raise StopForward
        return hook

    hooks: list[tuple[str, Any]] = []
    for L in range(last + 1):
        hooks += [(hook_name("resid_pre", L), leaf(f"pre{L}")), (hook_name("resid_mid", L), leaf(f"mid{L}")),
                  (f"blocks.{L}.ln1.hook_scale", lambda a, hook: torch.ones_like(a)),
                  (f"blocks.{L}.ln2.hook_scale", lambda a, hook: torch.ones_like(a))]
        if L in mine_h:
            hooks.append((hook_name("z", L), keep(f"z{L}")))
        if L in mine_n:
            hooks.append((f"blocks.{L}.{pre_site}", keep(f"u{L}", stop_here=L == last)))
    if last not in mine_n:
        hooks.append((hook_name("resid_mid", last), keep("end", stop_here=True)))
    ids = torch.zeros(n_rows, 1, dtype=torch.long, device=device)

    def picked_neurons(L: int) -> torch.Tensor:
        units = mine_n[L]
        return outputs[f"u{L}"][torch.arange(len(units)), 0, torch.tensor(units, device=device)]

    def picked_heads(L: int) -> torch.Tensor:
        lo, hi = mine_h[L]
        z = outputs[f"z{L}"].reshape(n_rows, -1, f.n_heads, f.d_head)[:, 0]  # [rows, H, dh]
        r = torch.arange(lo, hi, device=device)
        return z[r - start, torch.tensor(heads[L], device=device)[r // f.d_head], r % f.d_head]

    with torch.enable_grad(), _quiet_norm_edits(), attach_hooks(handle, hooks):
        try:
            handle.hf_model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
        except StopForward:
            pass
        total = torch.cat([picked_neurons(L).float() for L in mine_n] + [picked_heads(L).float() for L in mine_h]).sum()
        grads = dict(zip(leaves, torch.autograd.grad(total, list(leaves.values()), allow_unused=True)))
    out: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]] = {"neuron": {}, "head": {}}
    for L, units in mine_n.items():
        out["neuron"][L] = (grads[f"mid{L}"][:len(units), 0].detach().double().cpu(), picked_neurons(L).detach().double().cpu())
    for L, (lo, hi) in mine_h.items():
        out["head"][L] = (grads[f"pre{L}"][:hi - lo, 0].detach().double().cpu(), picked_heads(L).detach().double().cpu())
    return out


def _window(T: int, positions: int | None) -> list[int]:
    if positions is None:
        return list(range(T))
    if positions < 1:
        raise CircuitError(f"positions must be at least 1 (the last token) or None for every token, not {positions}.")
    return list(range(max(0, T - positions), T))


def attribution_graph(handle: "ModelHandle", circuit: Circuit, prompt: str, emotion: str, reference: torch.Tensor,
                      positions: int | None = None) -> AttributionGraph:
    """The attribution graph of ``emotion``'s part of ``circuit`` on ``prompt`` (already chat-formatted), towards
    ``<h_final, reference>`` (``reference`` ``[D]``, or ``[E, D]`` indexed by the circuit's emotions).

    Nodes: every token; the circuit's neurons and heads on the last ``positions`` tokens (all when None); one error
    node per block, sublayer and position; the target. Edges: exact direct effects (module docstring). A model split
    over several devices is refused (:class:`CircuitError`)."""
    _one_device(handle)
    f = handle.facts
    if emotion not in circuit.emotions:
        raise CircuitError(f"this circuit has no {emotion!r} part; it has {', '.join(circuit.emotions)}.")
    if (f.n_layers, f.d_mlp, f.n_heads, f.d_head) != (circuit.n_layers, circuit.d_mlp, circuit.n_heads, circuit.d_head):
        raise CircuitError(f"the circuit was built for another model ({circuit.n_layers} layers, d_mlp {circuit.d_mlp}, "
                           f"{circuit.n_heads} heads); load the model it was built on.")
    ref = reference[circuit.emotions.index(emotion)] if reference.dim() == 2 else reference
    if ref.shape[-1] != f.d_model:
        raise CircuitError(f"the reference direction has width {ref.shape[-1]}; this model's residual has {f.d_model}.")
    ref = ref.detach().double().cpu()
    enc = handle.encode([prompt])
    T = int(enc["input_ids"].shape[1])
    window = _window(T, positions)
    clean = _clean_for(handle, prompt, enc)
    neuron_units: dict[int, list[int]] = {}
    for L, i in circuit.units[emotion]["neuron"].tolist():
        neuron_units.setdefault(int(L), []).append(int(i))
    head_units: dict[int, list[int]] = {}
    for L, h in circuit.units[emotion]["head"].tolist():
        head_units.setdefault(int(L), []).append(int(h))
    cache_key = (id(handle), handle.fingerprint, circuit.sha256, emotion)
    if cache_key not in _READ_MAPS:  # the maps depend on the weights and the circuit, not on the prompt
        while len(_READ_MAPS) >= 2:
            _READ_MAPS.pop(next(iter(_READ_MAPS)))
        _READ_MAPS[cache_key] = read_maps(handle, neuron_units, head_units)
    maps = _READ_MAPS[cache_key]

    W_O = {L: handle.W_O(L).detach().double().cpu() for L in head_units}  # [H, dh, D]
    W_out = {L: handle.W_out(L).detach().double().cpu() for L in neuron_units}  # [d_mlp, D]
    token_ids = enc["input_ids"][0].tolist()
    tokens = [handle.tokenizer.decode([t]) for t in token_ids]

    nodes: list[Node] = []
    writes: list[torch.Tensor] = []  # one [D] write per source node (the target's entry is never used)
    bias: list[float] = []
    for k in range(T):  # token nodes
        writes.append(clean.embed[k])
        nodes.append(Node("token", -1, "", token_ids[k], k, float(clean.embed[k].norm()), float(clean.embed[k].norm()), repr(tokens[k])))
        bias.append(0.0)
    # component nodes (reads filled below) and the writes they take out of their sublayer's error
    removed = {(L, s, k): torch.zeros(f.d_model, dtype=torch.float64) for L in range(f.n_layers) for s in SITES for k in range(T)}
    head_rows: list[tuple[int, int, int, int]] = []  # (node, L, h, q)
    neuron_rows: list[tuple[int, int, int, int]] = []  # (node, L, i, q)
    for q in window:
        for L in sorted(head_units):
            for h in head_units[L]:
                write = clean.z[L][q, h] @ W_O[L][h]
                removed[(L, "attn", q)] += write
                size = float(write.norm())
                head_rows.append((len(nodes), L, h, q))
                nodes.append(Node("head", L, "attn", h, q, size, size, f"L{L}H{h}@{q}"))
                writes.append(write)
                bias.append(0.0)
        for L in sorted(neuron_units):
            for i in neuron_units[L]:
                write = clean.post[L][q, i] * W_out[L][i]
                removed[(L, "mlp", q)] += write
                neuron_rows.append((len(nodes), L, i, q))
                nodes.append(Node("neuron", L, "mlp", i, q, float(clean.post[L][q, i]), float(clean.pre[L][q, i]), f"L{L}N{i}@{q}"))
                writes.append(write)
                bias.append(0.0)
    for L in range(f.n_layers):
        for s, out in (("attn", clean.attn_out[L]), ("mlp", clean.mlp_out[L])):
            for k in range(T):
                write = out[k] - removed[(L, s, k)]
                size = float(write.norm())
                nodes.append(Node("error", L, s, 0, k, size, size, f"{s} error L{L}@{k}"))
                writes.append(write)
                bias.append(0.0)
    target_value = float(clean.final @ ref)
    nodes.append(Node("target", f.n_layers, "", 0, T - 1, target_value, target_value, f"{emotion} direction"))
    writes.append(torch.zeros(f.d_model, dtype=torch.float64))
    bias.append(0.0)
    target = len(nodes) - 1

    write_matrix = torch.stack(writes)  # [N, D]
    order = torch.tensor([n.order for n in nodes])
    position = torch.tensor([n.position for n in nodes])
    src: list[torch.Tensor] = []
    dst: list[torch.Tensor] = []
    wgt: list[torch.Tensor] = []

    def add(sources: torch.Tensor, targets: torch.Tensor, effect: torch.Tensor) -> None:
        """Keep the non-zero entries of ``effect [S, n]`` as edges ``sources[s] -> targets[j]``."""
        rows, cols = torch.nonzero(effect, as_tuple=True)
        src.append(sources[rows])
        dst.append(targets[cols])
        wgt.append(effect[rows, cols])

    # neurons: read the residual at their own position after their block's attention
    by_block: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for node, L, i, q in neuron_rows:
        by_block.setdefault((L, q), []).append((node, neuron_units[L].index(i)))
    for (L, q), members in by_block.items():
        R, b = maps["neuron"][L]
        slots = torch.tensor([j for _, j in members])
        sources = torch.nonzero((position == q) & (order < 2 * L + 1)).flatten()
        effect = (write_matrix[sources] @ R[slots].T) / clean.scale2[L][q]  # [S, n]
        add(sources, torch.tensor([node for node, _ in members]), effect)
        for node, j in members:
            bias[node] = float(b[j])
    # heads: read every earlier position through their frozen pattern; one product per block
    for L in sorted(head_units):
        rows = [(node, h, q) for node, L2, h, q in head_rows if L2 == L]
        if not rows:
            continue
        J, c = maps["head"][L]
        nodes_L = torch.tensor([node for node, _, _ in rows])
        slots = torch.tensor([head_units[L].index(h) for _, h, _ in rows])
        hs = torch.tensor([h for _, h, _ in rows])
        qs = torch.tensor([q for _, _, q in rows])
        writes_L = write_matrix[nodes_L]
        units = writes_L / writes_L.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        w_z = torch.einsum("ndD,nD->nd", W_O[L][hs], units)  # [n, dh]: the write's direction seen from z
        g = torch.einsum("ndD,nd->nD", J[slots], w_z)  # [n, D]: the read vector of each head node
        sources = torch.nonzero(order < 2 * L).flatten()
        k = position[sources]
        effect = (write_matrix[sources] @ g.T) / clean.scale1[L][k][:, None]  # [S, n]
        effect = effect * clean.pattern[L][hs[None, :], qs[None, :], k[:, None]]  # zero where k > q (causal)
        add(sources, nodes_L, torch.where(k[:, None] <= qs[None, :], effect, 0.0))
        for column, (node, _, _) in enumerate(rows):
            bias[node] = float(c[slots[column]] @ w_z[column])
    # the target: every write at the last position
    sources = torch.nonzero((position == T - 1) & (order < 2 * f.n_layers)).flatten()
    add(sources, torch.tensor([target]), (write_matrix[sources] @ ref)[:, None])

    meta = {"model": handle.name, "positions": positions, "n_tokens": T, "circuit_sha256": circuit.sha256,
            "n_layers": f.n_layers, "d_mlp": f.d_mlp, "n_heads": f.n_heads}
    return AttributionGraph(nodes, torch.cat(src).numpy(), torch.cat(dst).numpy(), torch.cat(wgt).numpy(),
                            np.asarray(bias, dtype=np.float64), tokens, prompt, emotion, meta)


# ---------------------------------------------------------------------- checking by patching
def _node_writes(handle: "ModelHandle", clean: _Clean, graph: AttributionGraph, wanted: Sequence[int]) -> dict[int, torch.Tensor]:
    """``{node: write [D]}`` recomputed from a clean capture (an error node's write is its sublayer's output minus the
    graph's component nodes there)."""
    W_O: dict[int, torch.Tensor] = {}
    W_out: dict[int, torch.Tensor] = {}

    def component(node: Node) -> torch.Tensor:
        if node.kind == "head":
            if node.layer not in W_O:
                W_O[node.layer] = handle.W_O(node.layer).detach().double().cpu()
            return clean.z[node.layer][node.position, node.index] @ W_O[node.layer][node.index]
        if node.layer not in W_out:
            W_out[node.layer] = handle.W_out(node.layer).detach().double().cpu()
        return clean.post[node.layer][node.position, node.index] * W_out[node.layer][node.index]

    taken: dict[tuple[int, str, int], torch.Tensor] = {}
    if any(graph.nodes[n].kind == "error" for n in wanted):
        for m in graph.nodes:
            if m.kind in ("head", "neuron"):
                key = (m.layer, m.site, m.position)
                taken[key] = taken.get(key, 0) + component(m)
    out: dict[int, torch.Tensor] = {}
    for n in wanted:
        node = graph.nodes[n]
        if node.kind == "token":
            out[n] = clean.embed[node.position]
        elif node.kind in ("head", "neuron"):
            out[n] = component(node)
        elif node.kind == "error":
            total = (clean.attn_out if node.site == "attn" else clean.mlp_out)[node.layer][node.position]
            out[n] = total - taken.get((node.layer, node.site, node.position), 0)
        else:
            raise CircuitError("the target node writes nothing.")
    return out


def edges_by_patching(handle: "ModelHandle", graph: AttributionGraph, reference: torch.Tensor, sources: Sequence[int],
                      frozen: bool = True, batch: int = 1) -> np.ndarray:
    """``[len(sources), N]``: how much every node's input changes when one source's write is taken out of a forward
    pass, one source per row, ``batch`` rows per pass (the slow reference for the edges). ``frozen=True`` freezes the
    normalisation scales, attention patterns and every sublayer's output (only the residual carries the change: the
    edge weights exactly, with the opposite sign); ``frozen=False`` is plain activation patching (direct and indirect
    effects, scales and patterns free)."""
    f = handle.facts
    enc = handle.encode([graph.prompt])
    clean = _capture_clean(handle, enc)
    ref = (reference[graph.meta.get("emotion_index", 0)] if reference.dim() == 2 else reference).double().cpu()
    writes = _node_writes(handle, clean, graph, sources)
    dtype = next(handle.hf_model.parameters()).dtype
    device = next(handle.hf_model.parameters()).device
    T = clean.embed.shape[0]
    pre_site = pre_activation_site(handle)
    # what each read node's input is, as an index into one forward pass's captures
    neuron_reads = [(i, n.layer, n.position, n.index) for i, n in enumerate(graph.nodes) if n.kind == "neuron"]
    head_reads = [(i, n.layer, n.position, n.index) for i, n in enumerate(graph.nodes) if n.kind == "head"]
    head_writes = _node_writes(handle, clean, graph, [i for i, *_ in head_reads])
    W_O = {L: handle.W_O(L).detach().double().cpu() for L in {r[1] for r in head_reads}}
    w_z = torch.stack([W_O[L][h] @ (head_writes[i] / head_writes[i].norm().clamp_min(1e-300)) for i, L, _, h in head_reads]) \
        if head_reads else torch.zeros(0, f.d_head, dtype=torch.float64)  # [n_heads_read, dh]
    base = np.array([n.value for n in graph.nodes])
    result = np.zeros((len(sources), graph.n_nodes))
    for start in range(0, len(sources), batch):
        chunk = list(sources[start:start + batch])
        B = len(chunk)
        minus: dict[tuple[int, str], torch.Tensor] = {}
        for row, s in enumerate(chunk):
            node = graph.nodes[s]
            where = (-1, "embed") if node.kind == "token" else (node.layer, node.site)
            minus.setdefault(where, torch.zeros(B, T, f.d_model, dtype=torch.float64))[row, node.position] += writes[s]
        seen: dict[str, torch.Tensor] = {}

        def replace(base: torch.Tensor, where: tuple[int, str], from_clean: bool):
            def hook(act, hook):
                new = (base[None].expand(B, -1, -1).clone() if from_clean else act.double())
                if where in minus:
                    new = new - minus[where]
                return new.to(act.device, act.dtype)
            return hook

        hooks: list[tuple[str, Any]] = [(hook_name("resid_pre", 0), replace(clean.embed, (-1, "embed"), False))]
        if frozen:
            hooks += freezing_hooks(handle, clean)
        for L in range(f.n_layers):
            hooks += [(hook_name("attn_out", L), replace(clean.attn_out[L], (L, "attn"), frozen)),
                      (hook_name("mlp_out", L), replace(clean.mlp_out[L], (L, "mlp"), frozen))]
            hooks += [(name, lambda act, hook, _n=name: seen.__setitem__(_n, act.detach().double().cpu()))
                      for name in (hook_name("z", L), f"blocks.{L}.{pre_site}")]
        last = hook_name("resid_post", f.n_layers - 1)
        hooks.append((last, lambda act, hook: seen.__setitem__("final", act.detach().double().cpu())))
        with torch.no_grad(), _quiet_norm_edits(), attach_hooks(handle, hooks):
            ids = enc["input_ids"].to(device).expand(B, -1)
            handle.hf_model(input_ids=ids, attention_mask=enc["attention_mask"].to(device).expand(B, -1), use_cache=False)
        if neuron_reads:
            idx = np.array([r[0] for r in neuron_reads])
            stacked = torch.stack([seen[f"blocks.{L}.{pre_site}"][:, q, i] for _, L, q, i in neuron_reads], 1)  # [B, n]
            result[start:start + B, idx] = stacked.numpy()
        if head_reads:
            idx = np.array([r[0] for r in head_reads])
            z = torch.stack([seen[hook_name("z", L)].reshape(B, T, f.n_heads, f.d_head)[:, q, h] for _, L, q, h in head_reads], 1)
            result[start:start + B, idx] = torch.einsum("bnd,nd->bn", z, w_z).numpy()
        t = graph.target_index
        result[start:start + B, t] = (seen["final"][:, -1] @ ref).numpy()
    read = np.zeros(graph.n_nodes, bool)
    read[[r[0] for r in neuron_reads + head_reads] + [graph.target_index]] = True
    result[:, read] -= base[read]
    result[:, ~read] = 0.0
    return result


def circuit_write_into_target(graph: AttributionGraph) -> tuple[float, float]:
    """``(signed, share)``: the sum of the circuit nodes' (neurons' and heads') edges into the target, and their share
    of the target's absolute direct input (tokens and error nodes make up the rest)."""
    into = graph.targets == graph.target_index
    kinds = np.array([graph.nodes[s].kind for s in graph.sources[into]])
    weights = graph.weights[into]
    mine = np.isin(kinds, ["head", "neuron"])
    total = float(np.abs(weights).sum())
    return float(weights[mine].sum()), (float(np.abs(weights[mine]).sum()) / total if total > 0 else float("nan"))


def direct_write(handle: "ModelHandle", circuit: Circuit, prompt: str, emotion: str, reference: torch.Tensor) -> float:
    """What ``emotion``'s part of ``circuit`` writes straight onto ``reference`` ``[D]`` at the last token of ``prompt``:
    the sum of its neurons' and heads' edges into the target of :func:`attribution_graph`, without building the graph
    (one clean capture, shared with the graphs of that prompt)."""
    _one_device(handle)
    clean = _clean_for(handle, prompt, handle.encode([prompt]))
    ref = reference.detach().double().cpu()
    total = 0.0
    heads, neurons = circuit.units[emotion]["head"], circuit.units[emotion]["neuron"]
    for L in sorted(set(heads[:, 0].tolist())):  # per block: the circuit's heads' writes at the last token, on ref
        hs = heads[heads[:, 0] == L, 1]
        on_ref = handle.W_O(L)[hs].detach().double().cpu() @ ref  # [n, dh]
        total += float((clean.z[L][-1, hs] * on_ref).sum())
    for L in sorted(set(neurons[:, 0].tolist())):
        idx = neurons[neurons[:, 0] == L, 1]
        total += float(clean.post[L][-1, idx] @ (handle.W_out(L)[idx].detach().double().cpu() @ ref))
    return total
