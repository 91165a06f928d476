import json
from pathlib import Path

import pytest

from emowork.cli import main


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_run_writes_record_report_and_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--model", "tiny-llama", "--fast", "--out", str(out)]) == 0
    record = read(out / "run.json")
    assert record["complete"] is True
    assert record["check"]["ok"] is True
    assert record["model"]["fingerprint"] and record["dataset"]["sha256"]
    assert {"torch", "transformers", "transformer-lens"} <= set(record["versions"])
    assert record["profile"]["n_prompts"] > 0 and len(record["profile"]["rms_by_layer"]["resid_post"]) == 4
    assert {"load_model", "check", "data", "profile", "judge", "elicitation", "total"} <= set(record["timings"])
    peaks = record["memory_gib"]
    assert set(peaks) == set(record["stages"]) and all(p["host_max_rss"] > 0 for p in peaks.values())
    rss = [peaks[s]["host_max_rss"] for s in record["stages"]]
    assert rss == sorted(rss), "the host peak is a running maximum"
    assert "Memory peaks per stage" in (out / "findings.md").read_text()
    elicitation = record["elicitation"]
    assert elicitation["n_prompts"] == 6 * 24 and 0 <= elicitation["accuracy"] <= 1
    assert set(elicitation["accuracy_by_emotion"]) == {"anger", "sadness", "happiness", "fear", "surprise", "disgust"}
    assert isinstance(elicitation["complete_groups"], list)
    judge = record["judge"]
    assert {"name", "version", "threshold", "rule", "heldout_accuracy", "heldout_writers"} <= set(judge)
    measured, card = judge["heldout_accuracy_6way_measured"], judge["card_heldout_accuracy"]
    assert judge["matches_card"] is True and card["low"] <= measured["value"] <= card["high"]
    assert judge["n_emotion_replies"] > 0 and judge["n_style_neutral_replies"] > 0
    assert (out / "artifacts" / "elicitation.jsonl").exists()
    directions = record["directions"]
    n_layers = record["model"]["facts"]["n_layers"]
    for key in ("template_consistency_by_layer", "transfer_accuracy_by_layer", "transfer_shuffled_by_layer"):
        assert len(directions[key]) == n_layers and all(-1 <= v <= 1 for v in directions[key])
    assert directions["groups_used"] == 24 and directions["group_policy"] in {"all", "complete"}
    steering = record["steering"]
    assert {"layers", "alpha", "accuracy", "accuracy_by_emotion", "perplexity", "baseline_accuracy"} <= set(steering)
    assert all(0 <= layer < n_layers for layer in steering["layers"]) and 0 <= steering["accuracy"] <= 1
    assert (out / "artifacts" / "directions" / "directions.safetensors").exists()
    components = record["components"]
    assert components["heads_fast_vs_masked_max_abs_diff"] < 1e-4 and components["heads_speedup"] > 1
    assert set(components["topk_effect"]) == set(components["random_effect"]) and "1" in components["topk_effect"]
    assert set(components["judged_edits"]["conditions"]) >= {"ablate-top", "ablate-random", "enhance-top", "enhance-random"}
    assert record["data"]["problems"] == 0 and record["data"]["analysis"]["n_skeletons"] >= 96
    assert record["data"]["used_by_run"]["n_groups"] == record["profile"]["n_prompts"] == 24
    assert record["dataset"]["splits"]["analysis"]["sha256"] == record["data"]["analysis"]["sha256"]
    report = (out / "report.html").read_text()
    assert "Hook self-check" in report and "figures/check_errors.html" in report
    for figure in ("check_errors", "dataset_counts", "dataset_lengths", "residual_profile", "judge_confusion",
                   "elicitation_heatmap", "elicitation_by_emotion", "elicitation_confusion", "directions_cosines",
                   "directions_pca", "consistency_templates", "consistency_transfer", "consistency_halves",
                   "steering_tradeoff", "steering_by_emotion", "components_dose_response", "components_heads",
                   "components_neurons"):
        assert (out / "figures" / f"{figure}.html").stat().st_size > 1000
    assert (out / "figures" / "plotly.min.js").exists(), "figures must open offline"
    # Every figure is also saved as plotly JSON (for `emowork figures`), and the report opens with the findings.
    assert (out / "figures" / "steering_tradeoff.json").exists() and (out / "figures" / "findings_summary.json").exists()
    assert report.index("id='findings'") < report.index("id='stage-check'")
    assert "circuits" not in record["stages"]  # opt-in
    assert report.count("What to look at:") >= 18 and "href='#stage-elicitation'" in report
    findings = (out / "findings.md").read_text()
    assert "| prompting |" in findings and "## steering" in findings and f"{elicitation['accuracy']:.1%}" in findings
    assert f"{elicitation['accuracy']:.1%}" in report.split("id='stage-check'")[0]
    # A second run reuses every finished stage.
    capsys.readouterr()
    assert main(["run", "--model", "tiny-llama", "--fast", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("reusing the finished") == len(record["stages"]) == 8
    # The opt-in circuits stage: named (or "all"), it runs after the finished stages, which are reused.
    assert main(["run", "--model", "tiny-llama", "--fast", "--out", str(out), "--stages", "all"]) == 0
    assert capsys.readouterr().out.count("reusing the finished") == 8
    record = read(out / "run.json")
    circuits = record["circuits"]
    n_layers = record["model"]["facts"]["n_layers"]
    assert record["complete"] and record["stages"][-2:] == ["circuits", "graphs"]
    assert set(circuits["influence"]) == set(record["elicitation"]["accuracy_by_emotion"])
    assert len(circuits["influence"]["anger"]["mlp"]) == n_layers and circuits["stable_layers"]
    assert circuits["size"] == 10 * 2 * n_layers and len(circuits["random_accuracy"]["per_seed"]) == 5
    for key in ("modulation_accuracy", "prompting_accuracy", "steering_accuracy", "baseline_accuracy", "neurons_only_accuracy"):
        low, high = circuits[key]["ci95"]
        assert low <= circuits[key]["accuracy"] <= high, key
    assert set(circuits["budget_curve"]) == {"1", "10"}
    assert circuits["ablation_drop"]["low"] <= circuits["ablation_drop"]["mean"] <= circuits["ablation_drop"]["high"]
    for figure in ("circuits_influence", "circuits_composition", "circuits_comparison", "circuits_budget", "circuits_overlap"):
        assert (out / "figures" / f"{figure}.html").stat().st_size > 1000
    assert (out / "artifacts" / "circuits" / "circuit.json").exists()
    from emowork.circuits import Circuit

    assert Circuit.load(out / "artifacts" / "circuits").size() == circuits["size"]
    # The opt-in graphs stage: one viewer file per emotion, valid against the schema; the control's numbers
    graphs = record["graphs"]
    assert set(graphs["by_emotion"]) == set(circuits["influence"]) and graphs["n_prompts"] == 2
    for row in graphs["by_emotion"].values():
        for key in ("direct", "random_direct", "share"):
            assert row[key]["low"] <= row[key]["mean"] <= row[key]["high"], key
    from emowork.circuits import validate_viewer_json

    validate_viewer_json(read(out / "artifacts" / "graphs" / "anger.json"))
    assert (out / "figures" / "graphs_direct.html").exists() and (out / "figures" / "graphs_anger.html").exists()
    explorer = (out / "artifacts" / "graphs" / "graphs.html").read_text()
    assert all(f"<option value='{e}'>" in explorer for e in graphs["by_emotion"]) and "plotly_click" in explorer
    assert "href='artifacts/graphs/graphs.html'" in (out / "report.html").read_text()
    # Comparing runs (the mechanics: this run against a copy of itself)
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(out, twin)
    assert main(["compare", str(out), str(twin), "--out", str(tmp_path / "cmp")]) == 0
    compared = read(tmp_path / "cmp" / "compare.json")
    pair = compared["geometry"]["pairs"][0]
    assert pair["r"] == pytest.approx(1.0) and pair["r"] > pair["null_high"]
    labels = [r["label"] for r in compared["runs"]]
    assert compared["headline"][labels[0]] == compared["headline"][labels[1]] and "prompting" in compared["headline"][labels[0]]
    assert len(compared["influence"][labels[0]]["mlp"]) == n_layers and "circuit modulation" in compared["headline"][labels[0]]
    assert any("not distinguishable" in s for s in compared["findings"]) and any("share more" in s for s in compared["findings"])
    for stem in ("compare_headline", "compare_influence", "compare_geometry", "compare_stability"):
        assert (tmp_path / "cmp" / "figures" / f"{stem}.json").exists()
    capsys.readouterr()
    assert main(["run", "--model", "tiny-llama", "--fast", "--out", str(out), "--stages", "circuitz"]) == 2
    assert "stages are: check" in capsys.readouterr().err


def test_failed_check_stops_the_run_with_a_clear_message(tmp_path, monkeypatch, capsys):
    from emowork.hooks.self_check import CheckReport, CheckResult
    from emowork.model.handle import ModelHandle

    def failing(self, prompt=None):
        return CheckReport(self.name, "X", "float32", "cpu", 3, [CheckResult("steering: KV cache = no cache", False, 1.0, 1.0, 1e-4)])

    monkeypatch.setattr(ModelHandle, "check", failing)
    out = tmp_path / "run"
    assert main(["run", "--model", "tiny-llama", "--fast", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "hook self-check failed" in err and "stopped" in err
    record = read(out / "run.json")
    assert record["complete"] is False and "error" in record
    assert "stopped" in (out / "report.html").read_text()


def test_judge_stage_fails_when_the_judge_does_not_match_its_card(tmp_path, monkeypatch, capsys):
    from emowork.judge import EmbeddingJudge

    monkeypatch.setattr(EmbeddingJudge, "heldout_accuracy", lambda self: {"value": 0.999, "low": 0.998, "high": 1.0})
    assert main(["run", "--model", "tiny-llama", "--fast", "--stages", "judge", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "outside its model card's 95% interval" in err and "stopped" in err


def test_bad_inputs_exit_2_with_a_message(tmp_path, capsys):
    assert main(["run", "--model", "nobody/nothing-here", "--out", str(tmp_path / "x")]) == 2
    assert "cannot be downloaded" in capsys.readouterr().err
    assert main(["run", "--model", "tiny-llama", "--stages", "check,nope", "--out", str(tmp_path / "y")]) == 2
    assert "Unknown stage" in capsys.readouterr().err
    assert main(["check", "--model", "tiny-llama", "--device", "tpu"]) == 2


def test_check_and_cache_commands(capsys, fresh_cache):
    assert main(["check", "--model", "tiny-gpt2"]) == 0
    assert "ALL PASS" in capsys.readouterr().out
    assert main(["cache", "info"]) == 0
    assert "activation captures" in capsys.readouterr().out
    assert main(["cache", "info", "--json"]) == 0
    assert "captures" in json.loads(capsys.readouterr().out)
    assert main(["cache", "clear", "--what", "activations"]) == 0


@pytest.mark.embedded
def test_main_job_fast_on_the_embedded_model(tmp_path):
    out = tmp_path / "embedded"
    assert main(["run", "--fast", "--out", str(out)]) == 0
    record = read(out / "run.json")
    assert record["complete"] and record["check"]["ok"]
    assert 0 <= record["elicitation"]["accuracy"] <= 1 and record["elicitation"]["n_prompts"] == 144
    assert max(record["directions"]["transfer_accuracy_by_layer"]) > record["directions"]["transfer_chance"]
    assert record["steering"]["n_prompts"] == 48
    assert record["components"]["heads_fast_vs_masked_max_abs_diff"] < 1e-4
    assert record["model"]["name"] == "embedded" and record["model"]["facts"]["architecture"] == "LlamaForCausalLM"
    assert len(record["profile"]["rms_by_layer"]["resid_post"]) == record["model"]["facts"]["n_layers"]


def test_a_run_killed_in_the_middle_of_a_stage_resumes_and_loses_nothing(tmp_path, fresh_cache):
    """SIGKILL during the elicitation stage (replies being generated), then the same command again: the finished
    stages are reused, the replies generated before the kill come from the reply cache, and the run completes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "emowork.cli", "run", "--model", "tiny-llama", "--fast", "--out", str(out),
               "--stages", "check,data,profile,judge,elicitation"]
    env = {**os.environ, "EMOWORK_PROGRESS": "0"}
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    replies = fresh_cache / "generations"
    deadline = time.time() + 300
    written: dict = {}
    while time.time() < deadline and first.poll() is None:
        started = "stage 5/5: elicitation" in (tmp_path / "first.log").read_text()
        written = {p: p.read_text() for p in replies.glob("*.jsonl")} if replies.exists() else {}
        if started and any(text.count("\n") for text in written.values()):  # some replies were written: kill mid-stage
            break
        time.sleep(0.1)
    assert first.poll() is None, "the run ended before it could be killed mid-stage:\n" + (tmp_path / "first.log").read_text()
    first.send_signal(signal.SIGKILL)
    first.wait()
    record = read(out / "run.json")  # written atomically: readable after a kill
    assert record["complete"] is False and {"check", "data", "profile", "judge"} <= set(record["stage_pages"])
    assert "elicitation" not in record["stage_pages"]
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("reusing the finished") == 4, second.stdout
    record = read(out / "run.json")
    assert record["complete"] is True and record["elicitation"]["n_prompts"] == 6 * 24
    assert record["reused"] == ["check", "data", "profile", "judge"], "run.json names the stages taken from the first run"
    assert "were reused from an earlier invocation" in (out / "findings.md").read_text()
    for path, text in written.items():  # the replies generated before the kill are kept, not generated again
        kept = text[: text.rfind("\n") + 1]
        after = path.read_text()
        assert after.startswith(kept), f"{path.name}: replies written before the kill were lost"
        keys = [json.loads(line)["key"] for line in after.splitlines() if line.strip()]
        assert len(keys) == len(set(keys)), f"{path.name}: replies cached before the kill were generated again"
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*.tmp")), "no half-written files are left behind"


def test_run_sizes_are_presets_with_clear_errors(capsys):
    from emowork.pipeline import RunSettings
    from emowork.pipeline.presets import PRESETS, get_preset

    assert [RunSettings(model="org/Model-1", preset=p).out_dir().name for p in ("fast", "standard", "full")] == \
        ["Model-1-fast", "Model-1", "Model-1-full"]
    assert RunSettings(preset="fast").fast and not RunSettings().fast
    sizes = [PRESETS[p] for p in ("fast", "standard", "full")]
    assert [p.sample_groups for p in sizes] == sorted(p.sample_groups for p in sizes), "sizes grow from fast to full"
    assert sizes[2].analysis_per_theme is None and sizes[2].final_on_all_test and sizes[2].max_new_tokens == 100
    with pytest.raises(ValueError, match="fast, standard"):
        get_preset("huge")
    with pytest.raises(SystemExit):
        main(["run", "--fast", "--full"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="Unknown run size"):
        RunSettings(preset="huge")


def test_a_run_folder_of_another_size_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"settings": {"model": "tiny-llama", "fast": False}}))  # a run from before sizes
    assert main(["run", "--model", "tiny-llama", "--fast", "--stages", "check", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a run of the 'full' size" in err and "--force" in err
    assert main(["run", "--model", "tiny-llama", "--fast", "--stages", "check", "--out", str(out), "--force"]) == 0
