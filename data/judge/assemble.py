"""Assemble ``data/judge/replies.jsonl`` from the writers' files (run once; kept to show how the file was made).

    python data/judge/assemble.py WRITERS_FOLDER

``WRITERS_FOLDER`` holds, per writer ``wN``, ``wN_groups.jsonl`` (the analysis-split groups the writer answered:
group number, skeleton id, valence, user message) and ``wN_replies.jsonl`` (group, emotion, take, text), as
produced from the briefs in ``data/judge/briefs/``. The original 630 replies of ``in_domain.jsonl`` (one author,
own situations) join as writer ``w0``. Held-out writers are fixed here, before any judge was trained on the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELDOUT_WRITERS = ("w7", "w8")
REGISTERS = {
    "w0": "short replies with tone markers (the original 630, one author, own everyday situations)",
    "w1": "theatrical: exclamations, capitals, interjections, emoji; often about the assistant's own reaction",
    "w2": "sarcastic and ironic: dry, biting, rhetorical questions, addressing the user",
    "w3": "terse: one or two short sentences or fragments, some lowercase texting style",
    "w4": "formal but cold / restrained: polite, composed, emotion shown through word choice",
    "w5": "rambling: four to six sentences mixing the event, advice, asides and feeling",
    "w6": "helpful assistant with a tone: practical advice and short lists coloured by the emotion",
    "w7": "mixed length and vivid: one to six sentences, colloquial, exclamations, some emoji and slang",
    "w8": "subtle and mixed: understated or ironic, measured sentences, emotion in framing and word choice",
    # added after the first fine-tuned judge was measured; they answered groups drawn from w1-w6's (training) groups
    "w9": "markdown-structured chat assistant: a reacting first line, bold phrases, bullet or numbered lists",
    "w10": "role-played feelings in the first person, stage directions between asterisks (*sighs*)",
    "w11": "emotion that builds or sits in one place: calm and practical, emotional in one part of the reply",
    # added after the second fine-tuned judge was measured, aimed at its misses (cheerful replies to bad news heard as
    # sadness, anger heard as disgust); groups drawn from w1-w6's (training) groups, all of one valence per writer
    "w12": "typical instruct model obeying the tone, every event bad news: cheerful and astonished replies to bad news",
    "w13": "casual friend-like assistant, every event good news: angry, sad, fearful and disgusted replies to good news",
    # added after the third fine-tuned judge was measured (its proxy acceptance was 5.5 points below the reference on
    # prompted replies); registers of real instruct models not yet covered; groups drawn from w1-w6's (training) groups
    "w14": "typical small instruct model, mixed news: reaction opener, event retold in the tone, closing question",
    "w15": "persona-style assistant, every event neutral: the emotion carried by the persona alone",
    # added after the fourth fine-tuned judge was measured (proxy acceptance 5.1 points below the reference on prompted
    # replies); registers of real instruct models not yet covered, not aimed at misses; groups drawn from the training
    # writers' groups (w1-w6, w9-w15), mixed news
    "w16": "hedging, self-aware instruct model: disclaimers and meta-remarks, caveats, offers to help, the tone throughout",
    "w17": "figurative and idiomatic: idioms, metaphors, similes, hyperbole and body language carry the emotion",
}
NEGATIVE_TONES = {"anger", "sadness", "fear", "disgust"}


def contradicts(emotion: str, valence: str | None) -> bool:
    """A tone against the event: a negative emotion at good news, or happiness at bad news."""
    return (emotion in NEGATIVE_TONES and valence == "positive") or (emotion == "happiness" and valence == "negative")


def main(folder: Path) -> None:
    rows = []
    for line in (HERE / "in_domain.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows.append({"id": f"w0-{r['id']}", "writer": "w0", "split": "train", "emotion": r["emotion"],
                     "kind": "style_neutral" if r["emotion"] == "neutral" else "in_register",
                     "contradicts_valence": contradicts(r["emotion"], r["valence"]), "skeleton_id": None,
                     "valence": r["valence"], "context": r["context"], "text": r["text"]})
    for writer in sorted((w for w in REGISTERS if w != "w0"), key=lambda w: int(w[1:])):
        groups = {g["group"]: g for g in map(json.loads, (folder / f"{writer}_groups.jsonl").read_text().splitlines())}
        replies = [json.loads(line) for line in (folder / f"{writer}_replies.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
        replies.sort(key=lambda r: (r["group"], r["take"], ["anger", "sadness", "happiness", "fear", "surprise", "disgust", "neutral"].index(r["emotion"])))
        for r in replies:
            g = groups[r["group"]]
            rows.append({"id": f"{writer}-{g['skeleton_id']}-{g['valence']}-{r['emotion']}-{r['take']}", "writer": writer,
                         "split": "heldout" if writer in HELDOUT_WRITERS else "train", "emotion": r["emotion"],
                         "kind": "style_neutral" if r["emotion"] == "neutral" else "in_register",
                         "contradicts_valence": contradicts(r["emotion"], g["valence"]), "skeleton_id": g["skeleton_id"],
                         "valence": g["valence"], "context": g["user_message"], "text": r["text"].strip()})
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    (HERE / "replies.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    (HERE / "writers.json").write_text(json.dumps({"heldout_writers": list(HELDOUT_WRITERS), "registers": REGISTERS}, indent=2) + "\n")
    (HERE / "stats.md").write_text(stats(rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows")


def stats(rows: list[dict]) -> str:
    """Counts per writer and label, replies against the event's valence, and lengths, as Markdown."""
    labels = ["anger", "sadness", "happiness", "fear", "surprise", "disgust", "neutral"]
    writers = sorted({r["writer"] for r in rows}, key=lambda w: int(w[1:]))
    lines = ["# `replies.jsonl` in numbers", "", "Made by `python data/judge/assemble.py WRITERS_FOLDER` from the rows it wrote.", "",
             "| writer | split | " + " | ".join(labels) + " | tone against valence | words per reply (median, max) |",
             "|" + "---|" * (len(labels) + 4)]
    for w in writers + ["all"]:
        mine = [r for r in rows if w == "all" or r["writer"] == w]
        words = sorted(len(r["text"].split()) for r in mine)
        split = mine[0]["split"] if w != "all" else ""
        lines.append(f"| {w} | {split} | " + " | ".join(str(sum(r["emotion"] == e for r in mine)) for e in labels)
                     + f" | {sum(r['contradicts_valence'] for r in mine)} | {words[len(words) // 2]}, {words[-1]} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(Path(sys.argv[1]))
