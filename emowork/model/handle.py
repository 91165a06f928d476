"""``ModelHandle``: one object holding a loaded model behind TransformerLens, its tokenizer and its facts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# Chat templates that insert today's date (Llama 3.x) get this one, so prompts are the same every day.
FIXED_DATE = "26 Jul 2024"


@dataclass
class HandleCaches:
    """Everything a :class:`ModelHandle` builds lazily and keeps for its lifetime (declared here, nowhere else).

    Attributes:
        unwrapped_model: the plain Hugging Face model sharing the wrapped model's tensors (:mod:`emowork.model.unwrapped`).
        unwrapped_names: the wrapped model's module names by module id, wrapper segments removed (module lookup).
        static_slots: the persistent steering hooks of static-cache decoding (:class:`emowork.hooks.executors.StaticSlots`).
        static_cache: the reused :class:`~transformers.StaticCache` of streamed decoding, and ``static_cache_len`` its size.
    """

    unwrapped_model: Any = None
    unwrapped_names: dict[int, str] | None = None
    static_slots: Any = None
    static_cache: Any = None
    static_cache_len: int = 0


@dataclass(frozen=True)
class ModelFacts:
    """Sizes and kind of a model, read from the loaded model (never hard-coded)."""

    architecture: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    gated_mlp: bool
    normalization: str
    n_params: int

    def as_dict(self) -> dict[str, Any]:
        """The facts as a JSON-ready dict."""
        return asdict(self)


class ModelHandle:
    """A loaded model: the TransformerBridge, the HF model it wraps, the tokenizer and the model's facts.

    Attributes:
        name: the name it was loaded by (``"embedded"``, a Hugging Face id, a folder, ``"tiny-llama"``...).
        bridge: the TransformerLens ``TransformerBridge``; hooks use its vocabulary (``blocks.L.hook_resid_post``).
        hf_model: the wrapped Hugging Face model (the bridge's components live inside it, so its own
            ``forward``/``generate`` fire the same hook points).
        tokenizer: the model's tokenizer, left-padding, untouched by the bridge.
        facts: :class:`ModelFacts`.
        fingerprint: 16 hex digits from the config and a weight hash; the key of every cache entry.
        fingerprint_info: the dict the fingerprint was computed from.
        device, dtype: where the model takes its input (the embedding's device) and the weights' precision; a model
            loaded with a ``device_map`` keeps each block on its own device (:meth:`layer_device`, :attr:`split`).
        use_unwrapped: when True (the default), generation without interventions, or with interventions the
            unwrapped model supports (every site on Llama/Qwen-style models), runs on the unwrapped model
            (:mod:`emowork.model.unwrapped`: the same weights without the bridge's per-module overhead); set False to
            always generate through the bridge. The rule is :func:`emowork.hooks.executors.choose_backend`.
        static_cache: when True (default False), :func:`emowork.generation.streaming.stream_generate` decodes unsteered or
            direction-steered replies with a static KV cache, which transformers compiles on CUDA (the ``static``
            backend of :mod:`emowork.hooks.executors`); the first such reply pays for the compilation. Opt-in until
            its speed on a large model is measured (see the README).
        caches: :class:`HandleCaches`, what the handle builds lazily and keeps.
    """

    def __init__(
        self,
        name: str,
        bridge: "TransformerBridge",
        hf_model: "PreTrainedModel",
        tokenizer: "PreTrainedTokenizerBase",
        fingerprint: str,
        fingerprint_info: dict[str, Any],
        source: str,
        n_params: int | None = None,
    ) -> None:
        self.name = name
        self.bridge = bridge
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint
        self.fingerprint_info = fingerprint_info
        self.source = source
        self.facts = _read_facts(bridge, hf_model, n_params)
        first = next(hf_model.parameters())
        self.device: torch.device = first.device
        self.dtype: torch.dtype = first.dtype
        self._adds_bos = _tokenizer_adds_bos(tokenizer)
        self.use_unwrapped = True
        self.static_cache = False
        self.caches = HandleCaches()

    # ----------------------------------------------------------------- description
    def __repr__(self) -> str:
        f = self.facts
        return (
            f"ModelHandle({self.name!r}: {f.architecture}, {f.n_layers} layers, d_model {f.d_model}, "
            f"{f.n_heads} heads ({f.n_kv_heads} kv) x {f.d_head}, d_mlp {f.d_mlp}, {f.n_params / 1e6:.1f}M params, "
            f"{self.device}, {str(self.dtype).replace('torch.', '')}, fingerprint {self.fingerprint})"
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: name, source, device, dtype, fingerprint and facts."""
        return {
            "name": self.name,
            "source": self.source,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "fingerprint": self.fingerprint,
            "facts": self.facts.as_dict(),
            **({"layer_devices": [str(self.layer_device(layer)) for layer in range(self.facts.n_layers)]} if self.split else {}),
        }

    # ----------------------------------------------------------------- text
    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer carries a chat template (else a plain-text format is used)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def format_chat(self, user: str, system: str | None = None) -> str:
        """Return the prompt text for one user turn (and optional system turn), generation prompt appended.

        Uses the model's own chat template with a fixed date for templates that insert one. Templates that
        refuse a system turn get it merged into the user turn. Without a template: a plain-text fallback
        ``"{system}\\n\\nUser: {user}\\nAssistant:"`` (prefixed with the BOS token when the tokenizer uses one).
        The text already contains every special token: encode it with :meth:`encode`, which adds none.
        """
        if self.has_chat_template:
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
            try:
                return self._apply_template(messages)
            except Exception as exc:  # jinja2 TemplateError: e.g. "System role not supported"
                if not system or "system" not in str(exc).lower():
                    raise
                return self._apply_template([{"role": "user", "content": f"{system}\n\n{user}"}])
        text = (f"{system}\n\n" if system else "") + f"User: {user}\nAssistant:"
        bos = self.tokenizer.bos_token if self._adds_bos else None
        return f"{bos}{text}" if bos else text

    def _apply_template(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, date_string=FIXED_DATE
        )

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize ``texts`` as one left-padded batch on the model's device, adding no special tokens.

        Returns ``input_ids`` and ``attention_mask`` ``[batch, seq]`` and ``position_ids`` ``[batch, seq]``
        counted from each text's first real token (so absolute-position models see the same positions
        padded or not). Index ``-1`` is every text's last token.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not a single string")
        batch = self.tokenizer(
            list(texts), return_tensors="pt", padding=True, add_special_tokens=False, padding_side="left"
        )
        mask = batch["attention_mask"]
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        return {
            "input_ids": batch["input_ids"].to(self.device),
            "attention_mask": mask.to(self.device),
            "position_ids": position_ids.to(self.device),
        }

    def n_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text (as :meth:`encode` tokenizes it)."""
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    # ----------------------------------------------------------------- devices
    def layer_device(self, layer: int) -> torch.device:
        """The device of block ``layer``'s weights: where its activations live and its interventions are compiled
        (:attr:`device` for a model on one device)."""
        for tensor in self.bridge.blocks[layer].parameters():
            return tensor.device
        return self.device

    @property
    def split(self) -> bool:
        """Whether the blocks sit on more than one device (a model loaded with a ``device_map``)."""
        return len({self.layer_device(layer) for layer in range(self.facts.n_layers)} | {self.device}) > 1

    # ----------------------------------------------------------------- weights
    def W_O(self, layer: int) -> torch.Tensor:
        """Attention output weights of ``layer``: ``[n_heads, d_head, d_model]`` (z_h @ W_O[h] sums to attn_out)."""
        return self.bridge.blocks[layer].attn.W_O

    def b_O(self, layer: int) -> torch.Tensor | None:
        """Attention output bias ``[d_model]`` of ``layer``, or None when the model has none."""
        return self.bridge.blocks[layer].attn.b_O

    def W_out(self, layer: int) -> torch.Tensor:
        """MLP output weights of ``layer``: ``[d_mlp, d_model]`` (mlp_post @ W_out gives mlp_out)."""
        return self.bridge.blocks[layer].mlp.W_out

    def b_out(self, layer: int) -> torch.Tensor | None:
        """MLP output bias ``[d_model]`` of ``layer``, or None when the model has none."""
        return self.bridge.blocks[layer].mlp.b_out

    def base_model(self) -> torch.nn.Module:
        """The HF decoder stack (e.g. ``LlamaModel``): the module whose forward receives the KV cache."""
        return self.hf_model.base_model

    # ----------------------------------------------------------------- checks
    def check(self, prompt: str | None = None) -> Any:
        """Run the hook self-check (see :mod:`emowork.hooks.self_check`) and return its :class:`~emowork.hooks.self_check.CheckReport` (``.ok``, a table)."""
        from ..hooks.self_check import run_check  # the hooks layer sits above the model layer

        return run_check(self, prompt=prompt)


def _read_facts(bridge: Any, hf_model: Any, n_params: int | None = None) -> ModelFacts:
    """Read the model's sizes from the bridge config, cross-checked against the weights' shapes. ``n_params``: the
    model's own parameters counted before the bridge booted (it adds split q/k/v copies to fused-qkv models such
    as GPT-2); without it, the unique parameters now, which may include those copies."""
    cfg = bridge.cfg
    w_o = bridge.blocks[0].attn.W_O
    w_out = bridge.blocks[0].mlp.W_out
    n_heads, d_head, d_model = (int(s) for s in w_o.shape)
    d_mlp = int(w_out.shape[0])
    n_kv = getattr(cfg, "n_key_value_heads", None) or n_heads
    norm = str(getattr(cfg, "normalization_type", "") or "")
    unique = {p.data_ptr(): p.numel() for p in hf_model.parameters()}
    return ModelFacts(
        architecture=str(getattr(cfg, "architecture", type(hf_model).__name__)),
        n_layers=len(bridge.blocks),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=int(n_kv),
        d_head=d_head,
        d_mlp=d_mlp,
        d_vocab=int(cfg.d_vocab),
        gated_mlp=bool(getattr(cfg, "gated_mlp", False)),
        normalization=norm,
        n_params=int(n_params if n_params is not None else sum(unique.values())),
    )


def _tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` puts its BOS token in front of plain text by default."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return len(ids) > 1 and ids[0] == tokenizer.bos_token_id
