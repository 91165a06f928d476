"""Check a writer's file: python3 check.py wN  (reads wN_groups.jsonl and wN_replies.jsonl beside this script)."""
import json, sys, collections, pathlib
here = pathlib.Path(__file__).parent
w = sys.argv[1]
groups = {json.loads(l)["group"] for l in (here / f"{w}_groups.jsonl").read_text().splitlines() if l.strip()}
EMO = ["anger", "sadness", "happiness", "fear", "surprise", "disgust"]
problems, seen, texts = [], set(), collections.Counter()
rows = []
for i, line in enumerate((here / f"{w}_replies.jsonl").read_text(encoding="utf-8").splitlines(), 1):
    if not line.strip():
        continue
    try:
        r = json.loads(line)
    except json.JSONDecodeError as e:
        problems.append(f"line {i}: bad JSON ({e})"); continue
    if set(r) != {"group", "emotion", "take", "text"}:
        problems.append(f"line {i}: fields must be exactly group, emotion, take, text (got {sorted(r)})"); continue
    if r["group"] not in groups: problems.append(f"line {i}: unknown group {r['group']}")
    if r["emotion"] not in EMO + ["neutral"]: problems.append(f"line {i}: unknown emotion {r['emotion']!r}")
    if r["take"] not in (1, 2): problems.append(f"line {i}: take must be 1 or 2")
    if not isinstance(r["text"], str) or len(r["text"].split()) < 2: problems.append(f"line {i}: text too short")
    key = (r["group"], r["emotion"], r["take"])
    if key in seen: problems.append(f"line {i}: duplicate (group, emotion, take) {key}")
    seen.add(key); texts[r["text"].strip().lower()] += 1; rows.append(r)
for t, c in texts.items():
    if c > 1: problems.append(f"text written {c} times: {t[:60]!r}")
need = set()
for g in groups:
    for e in EMO: need.add((g, e, 1))
    need.add((g, "neutral", 1)); need.add((g, "neutral", 2))
    if g <= 10:
        for e in EMO: need.add((g, e, 2))
missing = sorted(need - seen)
extra = sorted(seen - need)
print(f"{len(rows)} rows; per label:", dict(collections.Counter(r["emotion"] for r in rows)))
print(f"missing {len(missing)} of {len(need)} required rows", (missing[:10] if missing else ""))
if extra: print("rows not asked for:", extra[:10])
for p in problems[:30]: print("PROBLEM", p)
print("OK" if not problems and not missing and not extra else "NOT DONE")
