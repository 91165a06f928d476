"""``emowork sweep``: config errors fail before Ray starts; a sweep of tiny models on a local Ray instance (CPU)
writes one run folder each, and a run that fails is retried and reported without stopping the others."""

import json

import pytest

from emowork.cli import main
from emowork.pipeline.sweep import SweepError, read_config


def _write(path, text):
    path.write_text(text)
    return path


def test_bad_configs_say_what_to_fix(tmp_path):
    cases = {
        "runs: [{preset: fast}]": "has no 'model'",
        "runs: [{model: tiny-llama, preset: huge}]": "choose fast",
        "runs: [{model: tiny-llama, colour: red}]": "unknown keys",
        "grid: {model: []}": "non-empty lists",
        "out: x": "lists no runs",
        "runs: [{model: tiny-llama}, {model: tiny-llama}]": "distinct 'name'",
        "max_retries: -1\nruns: [{model: tiny-llama}]": "max_retries",
        "runs: [unclosed": "not valid YAML",
        "sweeps: []": "unknown keys",
        "resources: {gpu: 1}\nruns: [{model: tiny-llama}]": "gpus and cpus",
    }
    for i, (text, message) in enumerate(cases.items()):
        with pytest.raises(SweepError, match=message):
            read_config(_write(tmp_path / f"c{i}.yaml", text))
    with pytest.raises(SweepError, match="does not exist"):
        read_config(tmp_path / "missing.yaml")
    config = read_config(_write(tmp_path / "grid.yaml", "grid: {model: [tiny-llama, tiny-qwen2], preset: [fast, standard]}\n"
                                                        "runs: [{model: embedded, name: mine, stages: 'check,data'}]"))
    assert len(config.runs) == 5 and config.runs[0] == {"model": "embedded", "name": "mine", "stages": ["check", "data"]}
    assert {r["name"] for r in config.runs[1:]} == {"tiny-llama-fast", "tiny-llama-standard", "tiny-qwen2-fast", "tiny-qwen2-standard"}


@pytest.mark.slow
def test_sweep_on_local_ray(tmp_path, capsys):
    pytest.importorskip("ray", reason="ray is not installed (the 'sweep' extra; `make test` installs it)")
    config = _write(tmp_path / "sweep.yaml", f"""
out: {tmp_path / 'out'}
max_retries: 1
runs:
  - {{model: tiny-llama, preset: fast, stages: [check]}}
  - {{model: tiny-qwen2, preset: fast, stages: [check]}}
  - {{model: {tmp_path / 'no-model-here'}, preset: fast, stages: [check], name: broken}}
""")
    assert main(["sweep", str(config)]) == 1  # one run failed
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "sweep.json").read_text())
    by_name = {r["name"]: r for r in summary["runs"]}
    for name in ("tiny-llama-fast", "tiny-qwen2-fast"):
        assert by_name[name]["status"] == "ok" and by_name[name]["attempts"] == 1
        record = json.loads((tmp_path / "out" / name / "run.json").read_text())
        assert record["complete"] and record["stages"] == ["check"]
    broken = by_name["broken"]
    assert broken["status"] == "failed" and broken["attempts"] == 2 and "ModelNotAvailableError" in broken["error"]
    assert "failed" in out and "config.json" in broken["error"]
    log = (tmp_path / "out" / "broken" / "attempts.log").read_text()
    assert log.count(" start") == 2 and "Traceback" in log and summary["pending"] == []
