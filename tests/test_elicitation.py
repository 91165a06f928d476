import numpy as np
import pytest

from emowork.generation import reply_cache as generation_cache
from emowork.data import load_sev
from emowork.analysis.elicitation import ElicitationResult, run_elicitation
from emowork.emotions import EMOTIONS
from emowork.generation.generate import DecodingConfig, Generation
from emowork.generation.reply_cache import GenerationStore, generate_cached
from .helpers import LengthJudge


def count_generations(monkeypatch):
    calls = []
    original = generation_cache.generate

    def counting(handle, prompts, config, **kw):
        calls.append(len(prompts))
        return original(handle, prompts, config, **kw)

    monkeypatch.setattr(generation_cache, "generate", counting)
    return calls


def test_elicitation_rows_accuracy_and_complete_groups(tiny_llama, fresh_cache, monkeypatch):
    groups = load_sev("analysis").select(per_theme=1).groups[:4]
    config = DecodingConfig(max_new_tokens=6)
    result = run_elicitation(tiny_llama, groups, LengthJudge(), config, progress=False)
    assert len(result) == 24 and [r["emotion"] for r in result.rows[:6]] == list(EMOTIONS)
    expected = [len(r["reply"]) % 6 == EMOTIONS.index(r["emotion"]) for r in result.rows]
    assert [r["accepted"] for r in result.rows] == expected
    assert result.accuracy == pytest.approx(np.mean(expected))
    s = result.summary()
    assert s["n_prompts"] == 24 and s["n_groups"] == 4 and set(s["accuracy_by_emotion"]) == set(EMOTIONS)
    assert s["accuracy_ci95"][0] <= s["accuracy"] <= s["accuracy_ci95"][1]
    for g in s["complete_groups"]:
        assert all(r["accepted"] for r in result.rows if r["group_id"] == g)
    cells = result.by_emotion_valence()
    assert sum(c["n"] for e in cells.values() for c in e.values()) == 24
    targets, labels, matrix = result.confusion()
    assert matrix.sum() == 24 and labels[-1] == "neutral"

    calls = count_generations(monkeypatch)
    again = run_elicitation(tiny_llama, groups, LengthJudge(), config, progress=False)
    assert calls == [] and [r["reply"] for r in again.rows] == [r["reply"] for r in result.rows]


def test_result_roundtrip(tiny_llama, fresh_cache, tmp_path):
    groups = load_sev("test").groups[:1]
    result = run_elicitation(tiny_llama, groups, LengthJudge(), DecodingConfig(max_new_tokens=3), progress=False)
    result.save(tmp_path / "e.jsonl")
    loaded = ElicitationResult.load(tmp_path / "e.jsonl")
    assert loaded.rows == result.rows and loaded.summary()["accuracy"] == result.summary()["accuracy"]


def test_generation_store_resumes_and_survives_a_torn_line(tiny_llama, fresh_cache, monkeypatch):
    prompts = [tiny_llama.format_chat(f"message {i}") for i in range(5)]
    config = DecodingConfig(max_new_tokens=4)
    first = generate_cached(tiny_llama, prompts[:3], config, chunk=2, progress=False)
    store = GenerationStore(tiny_llama.fingerprint, str(tiny_llama.dtype), config, "none")
    with open(store.path, "a") as handle:
        handle.write('{"key": "abc", "te')  # a crash in the middle of a line
    calls = count_generations(monkeypatch)
    both = generate_cached(tiny_llama, prompts, config, chunk=2, progress=False)
    assert calls == [2]
    assert [g.text for g in both[:3]] == [g.text for g in first]
    reread = GenerationStore(tiny_llama.fingerprint, str(tiny_llama.dtype), config, "none")
    assert all(p in reread for p in prompts)
    other_tag = GenerationStore(tiny_llama.fingerprint, str(tiny_llama.dtype), config, "steer:anger")
    assert not any(p in other_tag for p in prompts)
    assert isinstance(reread.get(prompts[4]), Generation)
