import plotly.graph_objects as go

from emowork.hooks.capture import token_activations
from widgets.activation_explorer import ActivationExplorer, explore


def test_token_activations_cover_every_token(tiny_llama):
    prompt = tiny_llama.format_chat("Hi there")
    tokens, acts = token_activations(tiny_llama, prompt, "mlp_post", layers=[0, 2])
    assert len(tokens) == len(tiny_llama.encode([prompt])["input_ids"][0])
    assert acts.shape == (2, len(tokens), tiny_llama.facts.d_mlp)
    assert "".join(tokens) == prompt


def test_explorer_callbacks_headless(tiny_llama):
    fig = explore(tiny_llama, tiny_llama.format_chat("Hi"), "resid_mid", 1, 2)
    assert isinstance(fig, go.Figure) and len(fig.data[0].z) == 2
    panel = ActivationExplorer(tiny_llama)
    panel.site.value = "attn_out"
    panel.layers.value = (0, 1)
    fig = panel.figure()
    assert "attn_out" in fig.layout.title.text and len(fig.data[0].z) == 2
    panel.refresh()  # draws into the Output widget without a browser


def test_draft_reviewer_edit_accept_reject_and_atomic_save(tmp_path):
    import json

    from emowork.data import drafting
    from emowork.data.sev import read_records
    from widgets.draft_review import DraftReviewer

    good = {"skeleton_id": "travel_draft0", "theme": "Travel", "scenario": "I asked the airline to move my flight to Sunday.",
            "event": {"positive": "They moved it and upgraded my seat.", "neutral": "They said the request is in the queue.",
                      "negative": "They said the Sunday flight is full and kept my booking."}}
    bad = json.loads(json.dumps(good))
    bad["skeleton_id"] = "travel_draft1"
    bad["scenario"] = "I asked the hotel to keep my luggage after checkout."
    bad["event"] = {"positive": "They stored it for free and called me a taxi.", "neutral": "They gave me a ticket for the bag.",
                    "negative": "They said no and I was furious."}
    drafts = [drafting.Draft("raw", good), drafting.Draft("raw", bad), drafting.Draft("gibberish", None)]
    out = tmp_path / "accepted.jsonl"
    out.write_text(json.dumps({**good, "skeleton_id": "old_00", "scenario": "An older accepted scenario about trains.",
                               "event": {"positive": "p one two.", "neutral": "n one two.", "negative": "m one two."}}) + "\n")
    reviewer = DraftReviewer(drafts, out)
    assert reviewer.accept() is True
    assert not reviewer.accept(), "an emotion word must block acceptance"
    assert any("furious" in p.message for p in reviewer.last_problems)
    reviewer.edit("event.positive", good["event"]["positive"])
    assert not reviewer.accept() and any(p.kind == "duplicate_text" for p in reviewer.last_problems)
    reviewer.edit("event.positive", "They stored it for free and called me a taxi.")
    reviewer.edit("event.negative", "They said the storage room is full and refused the bag.")
    assert reviewer.accept() is True
    assert reviewer.current()["scenario"] == "gibberish"
    reviewer.reject()
    assert reviewer.done and reviewer.current() is None
    saved = [r.data["skeleton_id"] for r in read_records(out)]
    assert saved == ["old_00", "travel_draft0", "travel_draft1"]
    assert not list(tmp_path.glob("*.tmp"))
    with __import__("pytest").raises(IndexError):
        reviewer.edit("scenario", "x")
    reviewer._build()  # the widget builds headless
    assert "Done." in reviewer._raw.value


def test_dataset_browser_shows_the_exact_prompt(tiny_llama):
    from emowork.data import load_sev
    from widgets.dataset_browser import DatasetBrowser

    ds = load_sev("test")
    browser = DatasetBrowser(ds, tiny_llama)
    browser.theme.value = "Health"
    browser.index.value = 2
    browser.valence.value = "negative"
    browser.emotion.value = "disgust"
    skeleton = [s for s in ds if s.theme == "Health"][2]
    assert skeleton.skeleton_id in browser.card.value
    assert "Always reply in disgust." in browser.prompt.value
    import html
    assert html.escape(skeleton.event("negative")) in browser.prompt.value


def test_reply_browser_filters():
    from widgets.reply_browser import ReplyBrowser, filter_rows

    rows = [{"group_id": f"g{i}", "emotion": e, "valence": v, "predicted": e, "accepted": a, "reply": f"<b>{i}</b>"}
            for i, (e, v, a) in enumerate([("anger", "positive", True), ("anger", "negative", False), ("fear", "negative", True)])]
    assert [r["group_id"] for r in filter_rows(rows, emotion="anger")] == ["g0", "g1"]
    assert [r["group_id"] for r in filter_rows(rows, valence="negative", verdict="accepted")] == ["g2"]
    browser = ReplyBrowser(rows)
    browser.emotion.value = "anger"
    browser.verdict.value = "rejected"
    assert [r["group_id"] for r in browser.selected()] == ["g1"]
    assert "<b>1</b>" not in browser.table.value and "&lt;b&gt;1&lt;/b&gt;" in browser.table.value
    assert "<b>1</b> replies" in browser.count.value
