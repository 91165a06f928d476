import pytest
import torch
import numpy as np

from emowork.analysis import consistency as C
from emowork.analysis import geometry as G
from emowork.data import load_sev
from emowork.analysis.directions import EmotionDirections, choose_groups, directions_from_activations, extract
from emowork.errors import EmoworkError


def synthetic(G_=40, E=6, L=3, D=16, noise=0.1, seed=0, content_scale=5.0):
    g = torch.Generator().manual_seed(seed)
    content = content_scale * torch.randn(G_, 1, L, D, generator=g)
    emotion = torch.randn(1, E, L, D, generator=g)
    return content + emotion + noise * torch.randn(G_, E, L, D, generator=g), emotion[0]


def test_directions_recover_emotion_vectors_despite_content():
    acts, emotion = synthetic()
    dirs, cents, norms = directions_from_activations(acts)
    expected = emotion - emotion.mean(0, keepdim=True)
    cos = torch.nn.functional.cosine_similarity(dirs, expected, dim=-1)
    assert cos.min() > 0.99
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(6, 3), atol=1e-5)
    assert torch.allclose(norms, cents.norm(dim=-1)) and torch.allclose(cents.sum(0), torch.zeros(3, 16), atol=1e-4)


class FakeElicitation:
    def __init__(self, complete):
        self._complete = complete

    def complete_groups(self):
        return self._complete


def test_group_policies():
    groups = load_sev("analysis").select(per_theme=2).groups
    ids = [g.group_id for g in groups]
    chosen, policy, reason = choose_groups(groups, "auto", FakeElicitation(ids[:3]), min_complete=5)
    assert policy == "all" and len(chosen) == len(groups) and "only 3" in reason
    chosen, policy, _ = choose_groups(groups, "auto", FakeElicitation(ids[:6]), min_complete=5)
    assert policy == "complete" and [g.group_id for g in chosen] == ids[:6]
    assert choose_groups(groups, "complete", FakeElicitation(ids[:2]))[1] == "complete"
    assert [g.group_id for g in choose_groups(groups, ids[4:6])[0]] == ids[4:6]
    with pytest.raises(ValueError, match="needs the elicitation"):
        choose_groups(groups, "complete")
    with pytest.raises(ValueError, match="no group"):
        choose_groups(groups, "complete", FakeElicitation([]))
    with pytest.raises(ValueError, match="not in the dataset"):
        choose_groups(groups, ["nope/positive"])
    with pytest.raises(ValueError, match="groups="):
        choose_groups(groups, "most")


def test_extract_on_a_tiny_model_saves_and_loads(tiny_llama, tmp_path):
    ds = load_sev("analysis").select(per_theme=1)
    dirs, acts = extract(tiny_llama, ds, groups="all", progress=False, return_activations=True)
    f = tiny_llama.facts
    assert dirs.directions["mlp"].shape == (6, f.n_layers, f.d_model) and acts["attn"].shape == (24, 6, f.n_layers, f.d_model)
    assert torch.allclose(dirs.directions["attn"].norm(dim=-1), torch.ones(6, f.n_layers), atol=1e-5)
    p = dirs.provenance
    assert p["fingerprint"] == tiny_llama.fingerprint and p["group_policy"] == "all" and p["n_groups"] == 24
    assert p["dataset_sha256"] == ds.sha256 and len(p["groups"]) == 24
    dirs.save(tmp_path / "d")
    loaded = EmotionDirections.load(tmp_path / "d")
    assert loaded.sha256 == dirs.sha256 and loaded.provenance == dirs.provenance
    data = bytearray((tmp_path / "d" / "directions.safetensors").read_bytes())
    data[100] ^= 1
    (tmp_path / "d" / "directions.safetensors").write_bytes(bytes(data))
    with pytest.raises(EmoworkError, match="Re-run the extraction"):
        EmotionDirections.load(tmp_path / "d")
    with pytest.raises(ValueError, match="direction sites"):
        extract(tiny_llama, ds, groups="all", sites=("resid",), progress=False)


def test_geometry_shapes_and_identities():
    acts, _ = synthetic(L=4)
    d = C.as_directions({"attn": acts, "mlp": acts + 0.01})
    cos = G.emotion_cosines(d)
    assert cos.shape == (4, 6, 6) and torch.allclose(cos.diagonal(dim1=1, dim2=2), torch.ones(4, 6), atol=1e-5)
    assert G.adjacent_layer_cosine(d).shape == (6, 3)
    labels, sim = G.site_similarity(d)
    assert labels[:3] == ["attn0", "mlp0", "attn1"] and sim.shape == (8, 8) and sim[0, 1] > 0.99
    coords, explained = G.pca_coordinates(acts, layer=1)
    assert coords.shape == (240, 2) and 0 < explained.sum() <= 1


def test_probe_separates_real_emotions_but_not_shuffled_ones():
    acts, _ = synthetic(G_=48, noise=0.5, content_scale=0.5)
    themes = [f"t{i % 4}" for i in range(48)]
    real = G.probe_accuracy_by_layer(acts, themes, ["t0", "t1"])
    shuffled = G.probe_accuracy_by_layer(C.shuffle_emotions(acts), themes, ["t0", "t1"])
    assert min(real) > 0.9 and max(shuffled) < 0.45
    with pytest.raises(ValueError):
        G.probe_accuracy_by_layer(acts, themes, ["t0", "t1", "t2", "t3"])


def test_shuffling_keeps_each_groups_activations():
    acts, _ = synthetic(G_=5)
    shuffled = C.shuffle_emotions(acts)
    for g in range(5):
        assert sorted(shuffled[g, :, 0, 0].tolist()) == sorted(acts[g, :, 0, 0].tolist())
    assert not torch.equal(shuffled, acts)


def test_split_consistency_and_transfer_with_controls():
    groups = load_sev("analysis").select(per_theme=2).groups
    acts, emotion = synthetic(G_=len(groups), noise=2.0)
    result = C.split_consistency(acts, groups, site="mlp")
    for split in result.values():
        assert min(split["same"]) > 0.6 and max(split["shuffled"]) < 0.5 * min(split["same"])
    d = C.as_directions({"mlp": acts})
    shuffled = C.as_directions({"mlp": C.shuffle_emotions(acts)})
    texts = emotion[None].repeat(10, 1, 1, 1).reshape(60, 3, 16) + 0.5 * torch.randn(60, 3, 16)
    labels = ["anger", "sadness", "happiness", "fear", "surprise", "disgust"] * 10
    assert min(C.transfer_accuracy(texts, labels, d)) > 0.9
    assert max(C.transfer_accuracy(texts, labels, shuffled)) < 0.6


def test_template_consistency_on_a_tiny_model(tiny_llama):
    groups = load_sev("analysis").select(per_theme=1).groups[:6]
    result = C.template_consistency(tiny_llama, groups, progress=False)
    assert set(result["pairs"]) == {"reply_in|feels", "reply_in|sound", "feels|sound"}
    assert len(result["mean_same"]) == tiny_llama.facts.n_layers
    first = C.capture_emotion_activations(tiny_llama, groups, ("mlp",), progress=False)["mlp"]
    reused = C.template_consistency(tiny_llama, groups, progress=False, known={"reply_in": first})
    for pair in result["pairs"]:  # activations handed in give what capturing them again gives
        np.testing.assert_allclose(reused["pairs"][pair]["same"], result["pairs"][pair]["same"], atol=1e-5)
    noise = C.template_consistency(tiny_llama, groups, progress=False, known={"reply_in": torch.randn_like(first)})
    assert not np.allclose(noise["pairs"]["reply_in|feels"]["same"], result["pairs"]["reply_in|feels"]["same"])  # used


def test_text_prompts_modes(tiny_llama):
    data = C.LabelledSet(["Ugh, gross."], ["disgust"], "x", ["My fridge smells."])
    user = C.text_prompts(tiny_llama, data, "user")[0]
    assistant = C.text_prompts(tiny_llama, data, "assistant")[0]
    assert user.endswith("<|im_start|>assistant\n") and "Ugh, gross." in user
    assert assistant.endswith("<|im_start|>assistant\nUgh, gross.") and "My fridge smells." in assistant
    with pytest.raises(ValueError):
        C.text_prompts(tiny_llama, data, "system")


def test_natural_texts_exclude_neutral():
    from emowork.judge.labels import read_replies

    heldout_emotion_rows = [r for r in read_replies() if r["split"] == "heldout" and r["emotion"] != "neutral"]
    (inset,) = C.natural_texts("heldout")
    n = len(heldout_emotion_rows)
    assert n > 0 and len(inset.texts) == n and "neutral" not in inset.emotions and len(inset.contexts) == n
    (sample,) = C.natural_texts("heldout", replies_per_emotion=25)
    assert len(sample.texts) == 150 and all(sample.emotions.count(e) == 25 for e in set(sample.emotions))
    assert sample.texts == C.natural_texts("heldout", replies_per_emotion=25)[0].texts, "the sample is seeded"
