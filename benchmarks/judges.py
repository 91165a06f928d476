"""Judges side by side on the held-out writers' replies: quality, agreement with the labels, speed, in one run.

    python benchmarks/judges.py [--judges default,minilm] [--head NAME=FOLDER ...] [--sample N] [--repeats 3] [--out FOLDER]

For each judge: six-way accuracy on the held-out writers' emotion replies; the share it accepts for their own
emotion and of (style-neutral reply, emotion) pairs, with 95% intervals; the proxy agreement with a strong reference
judge at its acceptance rates on real prompted (99%) and steered (91%) replies; and replies/s on this machine
(2 CPU cores here), timed on the same texts after a warm-up, best of ``--repeats`` rounds in which the judges take
turns. ``--head NAME=FOLDER`` adds a head from a folder (for
example an earlier version, to compare before and after). With ``--out`` the numbers are also written as JSON and
the held-out rows as a validation file (``heldout_pairs.jsonl``: each emotion reply with its own emotion, label 1;
each style-neutral reply with every emotion, label 0) that ``emowork judge validate`` reads.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from emowork.emotions import EMOTIONS
from emowork.judge import EmbeddingJudge, load_judge, validate
from emowork.judge.labels import read_replies
from emowork.judge.train import PROXY_REFERENCE_RATES
from emowork.storage import atomic_write_json, atomic_write_text


def heldout_pairs() -> list[dict]:
    """The held-out writers' rows as labelled (text, emotion, label) pairs."""
    pairs = []
    for r in read_replies():
        if r["split"] != "heldout":
            continue
        if r["emotion"] == "neutral":
            pairs += [{"text": r["text"], "emotion": e, "label": 0, "writer": r["writer"]} for e in EMOTIONS]
        else:
            pairs.append({"text": r["text"], "emotion": r["emotion"], "label": 1, "writer": r["writer"]})
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judges", default="default,minilm", help="comma-separated load_judge names")
    parser.add_argument("--head", action="append", default=[], help="NAME=FOLDER of another trained head")
    parser.add_argument("--sample", type=int, default=None, help="a seeded sample of this many pairs (for slow judges)")
    parser.add_argument("--out", default=None, help="folder for <tag>.json and heldout_pairs.jsonl")
    parser.add_argument("--tag", default="judges", help="name of the JSON file written into --out")
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds (the judges take turns; best of each)")
    args = parser.parse_args()
    judges = {name: load_judge(name) for name in args.judges.split(",") if name}
    for spec in args.head:
        name, folder = spec.split("=", 1)
        judges[name] = EmbeddingJudge.from_folder(folder)
    pairs = heldout_pairs()
    if args.sample is not None and args.sample < len(pairs):
        keep = np.random.default_rng(0).choice(len(pairs), size=args.sample, replace=False)
        pairs = [pairs[i] for i in sorted(keep)]
    texts = sorted({p["text"] for p in pairs})
    results = {}
    for judge in judges.values():
        judge.scores(texts[:16])  # warm-up
    best = {name: 0.0 for name in judges}
    for _ in range(args.repeats):  # judges take turns, so a slow moment of the machine does not fall on one of them
        for name, judge in judges.items():
            start = time.perf_counter()
            judge.scores(texts)
            best[name] = max(best[name], len(texts) / (time.perf_counter() - start))
    for name, judge in judges.items():
        speed = best[name]
        report = validate(judge, pairs)
        own = [p for p in pairs if p["label"] == 1]
        neutral = [p for p in pairs if p["label"] == 0]
        accepted = report.judge_accept
        tpr = float(accepted[[i for i, p in enumerate(pairs) if p["label"] == 1]].mean())
        fpr = float(accepted[[i for i, p in enumerate(pairs) if p["label"] == 0]].mean())
        by_emotion = {e: float(accepted[[i for i, p in enumerate(pairs) if p["label"] == 1 and p["emotion"] == e]].mean())
                      for e in EMOTIONS}
        results[name] = {
            "judge": judge.describe(), "replies_per_s": speed, "n_texts": len(texts),
            "n_emotion_replies": len(own), "n_neutral_pairs": len(neutral),
            "accept_in_register": tpr, "accept_style_neutral_pairs": fpr,
            "validation": report.as_dict(),
            "accept_in_register_by_emotion": by_emotion,
            "proxy": {k: {"agreement": r * tpr + (1 - r) * (1 - fpr), "judge_accepts": r * tpr + (1 - r) * fpr}
                      for k, r in PROXY_REFERENCE_RATES.items()},
        }
        print(f"{name}: {judge.version}")
        print(f"  replies/s {speed:.1f} ({len(texts)} texts)")
        print(f"  accepts emotion replies for their own emotion {tpr:.3f}; style-neutral pairs {fpr:.3f}")
        print("  own-emotion acceptance by emotion: " + ", ".join(f"{e} {v:.2f}" for e, v in by_emotion.items()))
        for k, v in results[name]["proxy"].items():
            print(f"  proxy {k} (reference accepts {PROXY_REFERENCE_RATES[k]:.0%}): agreement {v['agreement']:.3f}, "
                  f"judge accepts {v['judge_accepts']:.3f}")
    if args.out:
        out = Path(args.out)
        atomic_write_json(out / f"{args.tag}.json", {"machine": platform.machine(), "sample": args.sample, "results": results})
        atomic_write_text(out / "heldout_pairs.jsonl", "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    print(json.dumps({k: {"accept_in_register": v["accept_in_register"], "accept_style_neutral_pairs": v["accept_style_neutral_pairs"],
                          "replies_per_s": v["replies_per_s"]} for k, v in results.items()}))


if __name__ == "__main__":
    main()
