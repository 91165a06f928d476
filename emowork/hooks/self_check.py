"""The hook self-check: numerical identities that must hold if the hooks read what their names say.

Each check compares two tensors and reports the largest absolute error and the largest error relative to
the reference tensor's scale (max |a - b| / max |b|, per layer, worst layer). Tolerances on that relative
error, per dtype: float32 1e-4, float16 1e-2, bfloat16 3e-2 (bf16 keeps ~3 significant digits; sums over
heads reorder additions). Comparisons of two runs through the whole stack (KV cache against none, a padded
batch against one prompt) get a looser half-precision tolerance, float16 5e-2 and bfloat16 1e-1: half-precision
kernels round differently for different shapes and the difference grows layer by layer (5.3e-2 on a random-weight
Llama-3.2-3B shape in bf16 on an H200, 2026-11-26), while a hook in the wrong place gives errors of order 1.
Steering at 4 x rms must move the next-token logits by at least 5% of their scale, and by more than twice the
end-to-end tolerance, to count as "it does something" (measured: 1.24 on the embedded model).
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..depth import layer_window
from ..errors import SiteError
from ..model.unwrapped import site_module
from .capture import capture
from .executors import intervene
from .intervention import Intervention

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

TOLERANCES: dict[torch.dtype, float] = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}
DEFAULT_PROMPT = "I handed in the signed lease at the housing office this morning and the clerk filed it."
DEFAULT_SYSTEM = "Keep the reply to at most two sentences."
END_TO_END_TOLERANCES: dict[torch.dtype, float] = {torch.float32: 1e-4, torch.float16: 5e-2, torch.bfloat16: 1e-1}
# Steering must change the next-token logits by at least this fraction of their scale (and 2 x the end-to-end tolerance).
MIN_STEERING_EFFECT = 0.05
STEER_STRENGTH = 4.0  # x rms of the residual at the steered layer


@dataclass
class CheckResult:
    """One named identity: pass/fail, the largest errors seen, the tolerance and a note."""

    name: str
    ok: bool
    max_abs_error: float
    max_rel_error: float
    tolerance: float
    detail: str = ""


@dataclass
class CheckReport:
    """All checks of one model. ``ok`` is True only when every check passed; ``str()`` gives a table."""

    model: str
    architecture: str
    dtype: str
    device: str
    n_prompt_tokens: int
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"ok", "model", ..., "checks": {name: {...}}}``."""
        return {
            "ok": self.ok,
            "model": self.model,
            "architecture": self.architecture,
            "dtype": self.dtype,
            "device": self.device,
            "n_prompt_tokens": self.n_prompt_tokens,
            "checks": {r.name: {k: v for k, v in asdict(r).items() if k != "name"} for r in self.results},
        }

    def __str__(self) -> str:
        width = max(len(r.name) for r in self.results) if self.results else 10
        lines = [
            f"Hook self-check: {self.model} ({self.architecture}, {self.dtype} on {self.device}), "
            f"prompt of {self.n_prompt_tokens} tokens",
            f"{'check':<{width}}  result  max abs err  max rel err  tolerance  detail",
        ]
        for r in self.results:
            lines.append(
                f"{r.name:<{width}}  {'pass' if r.ok else 'FAIL':<6}  {r.max_abs_error:>11.2e}  {r.max_rel_error:>11.2e}"
                f"  {r.tolerance:>9.0e}  {r.detail}"
            )
        passed = sum(r.ok for r in self.results)
        lines.append(("ALL PASS" if self.ok else "FAILED") + f" ({passed}/{len(self.results)})")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td style='color:{'green' if r.ok else 'red'}'>{'pass' if r.ok else 'FAIL'}</td>"
            f"<td>{r.max_abs_error:.2e}</td><td>{r.max_rel_error:.2e}</td><td>{r.tolerance:.0e}</td><td>{html.escape(r.detail)}</td></tr>"
            for r in self.results
        )
        status = "all checks pass" if self.ok else f"{len(self.failed)} check(s) FAILED"
        return (
            f"<p><b>Hook self-check</b>: {html.escape(self.model)} ({self.architecture}, {self.dtype} on {self.device}): {status}</p>"
            "<table><tr><th>check</th><th>result</th><th>max abs err</th><th>max rel err</th><th>tolerance</th><th>detail</th></tr>"
            f"{rows}</table>"
        )


def _compare(name: str, got: torch.Tensor, want: torch.Tensor, tol: float, detail: str = "", per_layer_dim: int | None = 0) -> CheckResult:
    """Compare ``got`` with ``want`` (relative error per slice of ``per_layer_dim``, worst slice)."""
    got, want = got.double(), want.double()
    if got.shape != want.shape:
        return CheckResult(name, False, math.inf, math.inf, tol, f"shape {tuple(got.shape)} != {tuple(want.shape)}")
    diff = (got - want).abs()
    if per_layer_dim is None:
        max_abs = diff.max().item()
        rel = max_abs / max(want.abs().max().item(), 1e-12)
    else:
        d = diff.movedim(per_layer_dim, 0).reshape(diff.shape[per_layer_dim], -1)
        w = want.movedim(per_layer_dim, 0).reshape(want.shape[per_layer_dim], -1)
        max_abs = d.max().item()
        rel = (d.max(1).values / w.abs().max(1).values.clamp(min=1e-12)).max().item()
    ok = bool(rel <= tol) and math.isfinite(rel)
    return CheckResult(name, ok, max_abs, rel, tol, detail)


def _guard(name: str, tol: float, fn: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; an exception becomes a failed result that names it (the report stays complete)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the point is to report any failure
        return CheckResult(name, False, math.inf, math.inf, tol, f"error: {type(exc).__name__}: {exc}")


@torch.inference_mode()
def run_check(handle: "ModelHandle", prompt: str | None = None) -> CheckReport:
    """Run every check on ``prompt`` (a chat-formatted default when None) and return the report."""
    facts = handle.facts
    tol = TOLERANCES[handle.dtype]
    text = prompt if prompt is not None else handle.format_chat(DEFAULT_PROMPT, DEFAULT_SYSTEM)
    enc = handle.encode([text])
    n_tokens = int(enc["input_ids"].shape[1])
    report = CheckReport(handle.name, facts.architecture, str(handle.dtype).replace("torch.", ""), str(handle.device), n_tokens)

    names = {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "mlp_post", "z"}
    from .sites import SITE_HOOKS

    wanted = {SITE_HOOKS[s].format(layer=L): (s, L) for s in names for L in range(facts.n_layers)}
    _, cache = handle.bridge.run_with_cache(
        enc["input_ids"], attention_mask=enc["attention_mask"], names_filter=lambda n: n in wanted
    )

    def stack(site: str) -> torch.Tensor:  # [n_layers, seq, width...]
        return torch.stack([cache[SITE_HOOKS[site].format(layer=L)][0] for L in range(facts.n_layers)]).float()

    def linear_identities() -> list[CheckResult]:
        pre, mid, post = stack("resid_pre"), stack("resid_mid"), stack("resid_post")
        attn_out, mlp_out = stack("attn_out"), stack("mlp_out")
        out = [
            _compare("resid_pre + attn_out = resid_mid", pre + attn_out, mid, tol),
            _compare("resid_mid + mlp_out = resid_post", mid + mlp_out, post, tol),
        ]
        if facts.n_layers > 1:
            out.append(_compare("resid_post[L] = resid_pre[L+1]", post[:-1], pre[1:], tol))
        return out

    def heads_identity() -> CheckResult:
        z = stack("z")  # [L, seq, n_heads, d_head]
        recon = []
        for L in range(facts.n_layers):
            part = torch.einsum("shd,hdm->sm", z[L].double(), handle.W_O(L).double())
            bias = handle.b_O(L)
            recon.append(part + (bias.double() if bias is not None else 0.0))
        return _compare("sum_h z_h W_O[h] + b_O = attn_out", torch.stack(recon), stack("attn_out"), tol,
                        f"{facts.n_heads} heads x d_head {facts.d_head}")

    def mlp_width() -> CheckResult:
        width = int(cache[SITE_HOOKS["mlp_post"].format(layer=0)].shape[-1])
        ok = width == facts.d_mlp
        return CheckResult("mlp.hook_post width = d_mlp", ok, 0.0 if ok else math.inf, 0.0 if ok else math.inf, tol,
                           f"width {width}, d_mlp {facts.d_mlp}")

    def mlp_identity() -> CheckResult:
        post = stack("mlp_post")
        recon = []
        for L in range(facts.n_layers):
            part = post[L].double() @ handle.W_out(L).double()
            bias = handle.b_out(L)
            recon.append(part + (bias.double() if bias is not None else 0.0))
        kind = "gated" if facts.gated_mlp else "non-gated"
        return _compare("mlp_post W_out + b_out = mlp_out", torch.stack(recon), stack("mlp_out"), tol, f"{kind} MLP, d_mlp {facts.d_mlp}")

    results: list[CheckResult] = []
    results += _guard_many(["resid_pre + attn_out = resid_mid", "resid_mid + mlp_out = resid_post"], tol, linear_identities)
    results.append(_guard("sum_h z_h W_O[h] + b_O = attn_out", tol, heads_identity))
    results.append(_guard("mlp.hook_post width = d_mlp", tol, mlp_width))
    results.append(_guard("mlp_post W_out + b_out = mlp_out", tol, mlp_identity))
    post_rms = stack("resid_post")[:, -1].pow(2).mean(-1).sqrt()  # [n_layers]
    del cache
    whole = END_TO_END_TOLERANCES[handle.dtype]
    results += _guard_many(["steering: KV cache = no cache", "steering changes the next-token logits"], whole,
                           lambda: _steering_checks(handle, enc, post_rms, whole))
    if _unwrapped_sites(handle):
        results += _guard_many(["steering: KV cache = no cache (unwrapped)", "steering changes the next-token logits (unwrapped)"],
                               whole, lambda: _steering_checks(handle, enc, post_rms, whole, backend="unwrapped"))
        results.append(_guard("edits: unwrapped = bridge", whole, lambda: _backends_agree(handle, enc, post_rms, whole)))
    results.append(_guard("batched (left-padded) = unbatched", whole, lambda: _batch_check(handle, text, whole)))
    report.results = results
    return report


def _guard_many(names: list[str], tol: float, fn: Callable[[], list[CheckResult]]) -> list[CheckResult]:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        return [CheckResult(n, False, math.inf, math.inf, tol, f"error: {type(exc).__name__}: {exc}") for n in names]


def steering_layers(n_layers: int) -> list[int]:
    """A mid-depth window (about 40-60% of depth, at least one layer) used by the check's steering tests."""
    return layer_window(n_layers, 0.4, 0.6)


def _unwrapped_sites(handle: "ModelHandle") -> list[str]:
    """The writable sites the unwrapped backend finds modules for on this model (checked at layer 0)."""
    found = []
    for site in ("resid_pre", "resid_post", "attn_out", "mlp_out", "mlp_post", "z"):
        try:
            site_module(handle, site, 0)
            found.append(site)
        except (SiteError, RuntimeError):
            pass
    return found


def _backends_agree(handle: "ModelHandle", enc: dict[str, torch.Tensor], post_rms: torch.Tensor, tol: float) -> CheckResult:
    """One edit per site the unwrapped backend supports (add in RMS units, scale, ablate; add a vector elsewhere), all at once, at every
    position: the logits of both backends must agree."""
    f = handle.facts
    generator = torch.Generator().manual_seed(1)
    layer = steering_layers(f.n_layers)[0]
    sites = _unwrapped_sites(handle)
    edits = []
    for site in sites:
        width = Intervention(site, layer, "ablate").width(f)
        if site == "mlp_post":
            edits.append(Intervention(site, layer, "ablate", units=tuple(range(0, f.d_mlp, 7)), when="all"))
        elif site == "z":
            edits.append(Intervention(site, layer, "scale", 3.0, units=(0,), when="all"))
        elif site == "resid_post":
            direction = torch.randn(width, generator=generator)
            edits.append(Intervention(site, layer, "add", STEER_STRENGTH * direction / direction.norm() * math.sqrt(width),
                                      when="all", rms_units=True))
        else:
            edits.append(Intervention(site, layer, "add", 0.5 * float(post_rms[layer]) * torch.randn(width, generator=generator), when="all"))
    T = int(enc["input_ids"].shape[1])
    outs = {}
    for backend in ("bridge", "unwrapped"):
        with intervene(handle, edits, T, backend=backend) as run:
            outs[backend] = run.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], use_cache=False).logits[:, -1].float()
    result = _compare("edits: unwrapped = bridge", outs["unwrapped"], outs["bridge"], tol, per_layer_dim=None)
    result.detail = f"layer {layer}: {', '.join(sites)}"
    return result


def _steering_checks(handle: "ModelHandle", enc: dict[str, torch.Tensor], post_rms: torch.Tensor, tol: float,
                     backend: str = "bridge") -> list[CheckResult]:
    """Steer the last prompt token on ``backend``; compare logits of no-cache, cached-prefill and split-prefill runs."""
    ids, mask = enc["input_ids"], enc["attention_mask"]
    T = ids.shape[1]
    generator = torch.Generator().manual_seed(0)
    vectors = {}
    for L in steering_layers(handle.facts.n_layers):
        direction = torch.randn(handle.facts.d_model, generator=generator)
        vectors[L] = STEER_STRENGTH * float(post_rms[L]) * direction / direction.norm() * math.sqrt(handle.facts.d_model)
    # (rms(v) = |v| / sqrt(d)); so the added vector has rms STEER_STRENGTH * rms(h).

    items = [Intervention("resid_post", layer, "add", vector, when="last_prompt") for layer, vector in vectors.items()]
    with intervene(handle, [], T, backend=backend) as run:
        plain = run.model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, -1].float()
    with intervene(handle, items, T, backend=backend) as run:
        model = run.model

        def logits(**kw: Any) -> torch.Tensor:
            return model(**kw).logits[:, -1].float()

        full = logits(input_ids=ids, attention_mask=mask, use_cache=False)
        nxt = full.argmax(-1, keepdim=True)
        ids2 = torch.cat([ids, nxt], 1)
        mask2 = torch.cat([mask, torch.ones_like(nxt)], 1)
        full2 = logits(input_ids=ids2, attention_mask=mask2, use_cache=False)
        # (a) whole prompt prefilled with the cache, then one decode step
        out = model(input_ids=ids, attention_mask=mask, use_cache=True)
        pre_a = out.logits[:, -1].float()
        dec_a = model(input_ids=nxt, attention_mask=mask2, past_key_values=out.past_key_values, use_cache=True).logits[:, -1].float()
        # (b) prompt minus its last token prefilled, the last token (steered) on its own, then one decode step
        out = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], use_cache=True)
        out = model(input_ids=ids[:, -1:], attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
        pre_b = out.logits[:, -1].float()
        dec_b = model(input_ids=nxt, attention_mask=mask2, past_key_values=out.past_key_values, use_cache=True).logits[:, -1].float()
    pairs = [(pre_a, full), (pre_b, full), (dec_a, full2), (dec_b, full2)]
    parts = [_compare("kv", got, want, tol, per_layer_dim=None) for got, want in pairs]
    worst = max(parts, key=lambda r: r.max_rel_error)
    suffix = "" if backend == "bridge" else f" ({backend})"
    kv = CheckResult(
        "steering: KV cache = no cache" + suffix, all(p.ok for p in parts), worst.max_abs_error, worst.max_rel_error, tol,
        f"layers {min(vectors)}-{max(vectors)}, prefill whole/split + 1 decode step",
    )
    effect = (full - plain).abs().max().item() / max(plain.abs().max().item(), 1e-12)
    need = max(MIN_STEERING_EFFECT, 2 * tol)
    changed = CheckResult(
        "steering changes the next-token logits" + suffix, effect >= need, (full - plain).abs().max().item(), effect, need,
        f"relative change must be >= {need:.0e} (strength {STEER_STRENGTH:g} x rms)",
    )
    return [kv, changed]


def _batch_check(handle: "ModelHandle", text: str, tol: float) -> CheckResult:
    """Capture last-token activations of 3 prompts of different lengths batched and one at a time."""
    prompts = [text, handle.format_chat("Hi."), handle.format_chat(DEFAULT_PROMPT + " " + DEFAULT_PROMPT, "Be brief.")]
    sites = ["resid_mid", "resid_post", "mlp_post", "z"]
    batched = capture(handle, prompts, sites, batch_size=len(prompts), cache=False, progress=False)
    parts = []
    for i, prompt in enumerate(prompts):
        single = capture(handle, [prompt], sites, batch_size=1, cache=False, progress=False)
        parts += [_compare("batch", batched[site][i], single[site][0], tol) for site in sites]  # [n_layers, width]
    worst = max(parts, key=lambda r: r.max_rel_error)
    lengths = handle.n_tokens(prompts)
    return CheckResult("batched (left-padded) = unbatched", all(p.ok for p in parts), worst.max_abs_error, worst.max_rel_error, tol,
                       f"{len(prompts)} prompts of {min(lengths)}-{max(lengths)} tokens, 4 sites, all layers")
