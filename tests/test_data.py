import csv
import json

import pytest

from emowork import data
from emowork.data import DatasetError, load_sev, validate_files
from emowork.data.sev import VALENCES
from emowork.data.words import parse_word_list

GOOD = {
    "skeleton_id": "x_00", "theme": "Housing", "scenario": "I asked the landlord to fix the heater last week.",
    "event": {"positive": "He replaced it with a new model on Monday.", "neutral": "He said a technician will come next month.",
              "negative": "He said the repair is my cost and sent a bill."},
}


def record(**changes):
    rec = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if key.startswith("event."):
            rec["event"][key[6:]] = value
        elif value is None:
            rec.pop(key)
        else:
            rec[key] = value
    return rec


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def other(i):
    return record(skeleton_id=f"x_{i:02d}", scenario=f"I posted form {i} to the tax office.",
                  **{f"event.{v}": f"Office {i} sent a {v} letter number {i}." for v in VALENCES})


def problems_of(path, **kw):
    report, _ = validate_files({"f": path}, **kw)
    return report


def test_builtin_splits_are_valid_and_large_enough():
    analysis, test = load_sev("analysis"), load_sev("test")
    assert len(analysis.themes) == len(test.themes) == 8
    for ds, minimum in ((analysis, 12), (test, 6)):
        counts = {t: sum(s.theme == t for s in ds) for t in ds.themes}
        assert min(counts.values()) >= minimum
    assert len(analysis.groups) == 3 * len(analysis)
    report, _ = validate_files({"analysis": data.split_path("analysis"), "test": data.split_path("test")})
    assert report.ok and not report.problems, str(report)


@pytest.mark.parametrize("bad, kind, field", [
    ('{"skeleton_id": "x_01", "theme": ', "json", ""),
    (record(theme=None), "missing", "theme"),
    (record(scenario="   "), "empty", "scenario"),
    (record(**{"event.postive": "They paid."}), "valence", "event.postive"),
    (record(event={"positive": "a b c", "neutral": "d e f"}), "missing", "event.negative"),
    (record(event="all good"), "type", "event"),
    (record(**{"event.negative": "I was furious about the bill."}), "emotion_word", "event.negative"),
    (record(scenario="Unfortunately the heater broke again."), "emotion_word", "scenario"),
])
def test_each_kind_of_bad_row_is_named_with_file_and_line(tmp_path, bad, kind, field):
    path = write_jsonl(tmp_path / "bad.jsonl", [other(1), bad if isinstance(bad, str) else {**bad, "skeleton_id": "x_09"}])
    report = problems_of(path)
    assert not report.ok
    (problem,) = [p for p in report.errors if p.kind == kind]
    assert problem.file == str(path) and problem.line == 2 and problem.field == field
    assert f"{path}:2" in str(problem)
    with pytest.raises(DatasetError) as info:
        load_sev(path)
    assert f"{path}:2" in str(info.value) and "How to fix" in str(info.value)


def test_duplicates_within_a_file(tmp_path):
    dup_id = other(2)
    dup_id["skeleton_id"] = "x_01"
    dup_text = other(3)
    dup_text["event"]["neutral"] = other(1)["event"]["neutral"].upper()
    report = problems_of(write_jsonl(tmp_path / "d.jsonl", [other(1), dup_id, dup_text]))
    kinds = {(p.kind, p.line) for p in report.errors}
    assert ("duplicate_id", 2) in kinds and ("duplicate_text", 3) in kinds
    assert "line 1" in [p for p in report.errors if p.kind == "duplicate_id"][0].message


def test_leakage_between_splits(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", [other(1), other(2)])
    leaked = other(5)
    leaked["scenario"] = other(2)["scenario"]
    test = write_jsonl(tmp_path / "test.jsonl", [other(4), leaked])
    report, skeletons = validate_files({"train": train, "test": test})
    (problem,) = report.errors
    assert problem.kind == "leakage" and problem.file == str(test) and problem.line == 2 and "train" in problem.message
    assert [s.skeleton_id for s in skeletons["test"]] == ["x_04"]
    with pytest.raises(DatasetError, match="leakage"):
        load_sev(test, check_against=[train])


def test_every_emotion_word_hit_is_reported(tmp_path):
    bad = other(1)
    bad["scenario"] = "I was happy, then sad, then fed up with the queue."
    report = problems_of(write_jsonl(tmp_path / "w.jsonl", [bad]))
    assert sorted(p.message.split("'")[1] for p in report.emotion_word_hits) == ["fed up", "happy", "sad"]
    warned = problems_of(tmp_path / "w.jsonl", emotion_words="warn")
    assert warned.ok and len(warned.warnings) == 3
    with pytest.warns(UserWarning, match="3 dataset warning"):
        ds = load_sev(tmp_path / "w.jsonl", emotion_words="warn")
    assert len(ds) == 1


def test_paper_format_csv_and_json_are_accepted(tmp_path):
    rows = [other(1), other(2)]
    jsonl = load_sev(write_jsonl(tmp_path / "paper.jsonl", rows))
    (tmp_path / "list.json").write_text(json.dumps(rows))
    with open(tmp_path / "flat.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["skeleton_id", "theme", "scenario", *VALENCES])
        writer.writeheader()
        for r in rows:
            writer.writerow({"skeleton_id": r["skeleton_id"], "theme": r["theme"], "scenario": r["scenario"], **r["event"]})
    with open(tmp_path / "dotted.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["skeleton_id", "theme", "scenario", *(f"event.{v}" for v in VALENCES)])
        writer.writeheader()
        for r in rows:
            writer.writerow({"skeleton_id": r["skeleton_id"], "theme": r["theme"], "scenario": r["scenario"],
                             **{f"event.{v}": t for v, t in r["event"].items()}})
    for name in ("list.json", "flat.csv", "dotted.csv"):
        assert load_sev(tmp_path / name).sha256 == jsonl.sha256


def test_csv_unknown_valence_column_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("skeleton_id,theme,scenario,event.positive,event.neutral,event.negative,event.mixed\n"
                    "x_01,Housing,I went to the office.,They said yes today.,They said wait a week.,They said no today.,?\n")
    (problem,) = problems_of(path).errors
    assert problem.kind == "valence" and problem.field == "event.mixed" and problem.line == 2


def test_unknown_fields_are_warnings(tmp_path):
    report = problems_of(write_jsonl(tmp_path / "u.jsonl", [{**other(1), "source": "paper"}]))
    assert report.ok and [p.kind for p in report.warnings] == ["unknown_field"]


def test_select_is_deterministic_and_theme_balanced():
    ds = load_sev("analysis")
    two = ds.select(per_theme=2)
    assert len(two) == 16 and all(sum(s.theme == t for s in two) == 2 for t in ds.themes)
    assert [s.skeleton_id for s in two] == [s.skeleton_id for s in ds.select(per_theme=2)]
    ten = ds.select(n=10)
    counts = sorted(sum(s.theme == t for s in ten) for t in ds.themes)
    assert len(ten) == 10 and counts == [1] * 6 + [2] * 2
    assert len(ds.select(themes=["Health"])) == sum(s.theme == "Health" for s in ds)
    with pytest.raises(ValueError, match="Unknown theme"):
        ds.select(themes=["Space travel"])
    group = two.groups[4]
    assert two.group(group.group_id) == group and group.message == f"{group.skeleton.scenario}\n{group.skeleton.event(group.valence)}"


def test_stats_counts_and_tokens(tiny_llama):
    ds = load_sev("test").select(per_theme=1)
    st = data.stats(ds, tiny_llama)
    assert st.n_skeletons == 8 and st.n_groups == 24 and sum(st.skeletons_per_theme.values()) == 8
    assert st.lengths_tokens["message"][0] == len(tiny_llama.tokenizer(ds.groups[0].message, add_special_tokens=False)["input_ids"])
    assert len(st.lengths_tokens["prompt"]) == 24 and min(st.lengths_tokens["prompt"]) > max(st.lengths_tokens["scenario"])
    assert len(st.table()) == 8 and "message tokens" in st.table()[0]
    assert data.stats(ds).lengths_tokens is None


def test_word_list_is_large_and_parses_strictly():
    matcher = data.default_matcher()
    counts = matcher.counts_by_category()
    assert len(matcher) >= 300 and all(counts[c] > 0 for c in ("anger", "sadness", "happiness", "fear", "surprise", "disgust", "affect"))
    assert [h.word for h in matcher.find("The fire alarm was tested; awesome.")] == []
    assert [h.word for h in matcher.find("She was Over  the Moon and ANGRY.")] == ["over the moon", "angry"]
    with pytest.raises(ValueError, match="listed twice"):
        parse_word_list("[anger]\nmad\n[fear]\nmad\n")
    with pytest.raises(ValueError, match="before any"):
        parse_word_list("mad\n")
    with pytest.raises(ValueError, match="unknown section"):
        parse_word_list("[joy]\nglad\n")


def test_missing_files_and_splits_have_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="built-in splits"):
        load_sev(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="Unknown split"):
        data.split_path("train")
    monkeypatch.setenv("EMOWORK_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="EMOWORK_DATA_DIR"):
        load_sev("analysis")
