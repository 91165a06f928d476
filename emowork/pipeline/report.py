"""``report.html``: one page that links every figure of a run with its key numbers, readable offline."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping

from ..palette import OKABE_ITO, STATUS_COLORS
from ..plots import save_figure
from ..storage import atomic_write_text
from .headline import headline_figure, headline_rows

_CSS = f"""
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
h1{{margin-bottom:.2em}} h2{{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}}
table{{border-collapse:collapse;margin:.6em 0;font-size:.92em}} td,th{{border:1px solid #ddd;padding:.25em .6em;text-align:left}}
th{{background:#f4f4f4}} .fail{{color:{STATUS_COLORS["fail"]};font-weight:bold}} .ok{{color:{STATUS_COLORS["ok"]};font-weight:bold}}
iframe{{width:100%;height:520px;border:1px solid #ddd}} .muted{{color:#666;font-size:.9em}}
.summary{{background:#f7f9fc;border-left:4px solid {OKABE_ITO["blue"]};padding:.5em 1em}}
.findings{{background:#fbfbf5;border:1px solid #ddd;padding:.2em 1em 1em 1em}} .caption{{color:#333;font-size:.92em;margin:.2em 0 1.2em 0}}
"""


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = ""
    for row in rows:
        cells = []
        for cell in row:
            text = html.escape(str(cell))
            cls = " class='fail'" if text == "FAIL" else (" class='ok'" if text == "pass" else "")
            cells.append(f"<td{cls}>{text}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _findings(out_dir: Path, record: dict[str, Any]) -> list[str]:
    """The findings summary: the headline numbers with intervals, a sentence each, a small figure, stage links."""
    rows = headline_rows(record)
    figure = out_dir / "figures" / "findings_summary.html"
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig = headline_figure(rows, record["model"]["name"])
    save_figure(fig, figure)
    table = ["<table><tr><th>result</th><th>accuracy</th><th>95% interval</th><th>n</th><th>in words</th><th>stage</th></tr>"]
    for r in rows:
        s = r["summary"]
        link = f"<a href='#stage-{html.escape(r['stage'])}'>{html.escape(r['stage'])}</a>" if r["stage"] else ""
        table.append(f"<tr><td>{html.escape(r['name'])}</td><td>{s['accuracy']:.1%}</td><td>{s['low']:.1%}-{s['high']:.1%}</td>"
                     f"<td>{'' if r['n'] is None else r['n']}</td><td>{html.escape(r['sentence'])}</td><td>{link}</td></tr>")
    table.append("</table>")
    links = " · ".join(f"<a href='#stage-{html.escape(n)}'>{html.escape(n)}</a>" for n in record["stages"])
    return ["<div class='findings'><h2 id='findings'>Findings</h2>",
            "<p class='muted'>Every number below is read from this run's <code>run.json</code>; every sentence is generated "
            "from those numbers (two results differ only when their 95% intervals do not overlap).</p>", *table,
            "<iframe src='figures/findings_summary.html' style='height:420px'></iframe>",
            "<p class='caption'><b>What to look at:</b> where each bar's interval lies relative to the chance line and to the "
            "unsteered baseline; a method works on this model only when its interval clears the baseline's.</p>",
            f"<p>Stages: {links}</p></div>"]


def write_findings_markdown(out_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``<out_dir>/findings.md``: the headline table, every stage's generated findings and the stage times,
    as Markdown (the file a README or a paper cites; it holds nothing that is not in ``run.json``)."""
    model, settings = record["model"], record["settings"]
    lines = [f"# emowork run: {model['name']} ({settings.get('preset', 'standard')} size)", "",
             f"Made by `emowork run --model {settings['model']}"
             + {"fast": " --fast", "full": " --full"}.get(settings.get("preset", "standard"), "")
             + (f" --judge {settings['judge']}" if settings.get("judge", "default") != "default" else "")
             + (f" --goemotions {settings['goemotions']}" if settings.get("goemotions") else "")
             + (f" --stages {','.join(settings['stages'])}" if settings.get("stages") else "")
             + f"` on {record['created']}; {'complete' if record.get('complete') else 'NOT complete'}; "
             f"{record['versions'].get('platform', '')}, torch {record['versions'].get('torch', '')}, device {model['device']}.", "",
             "| result | accuracy | 95% interval | n | in words |", "|---|---|---|---|---|"]
    for r in headline_rows(record):
        s = r["summary"]
        lines.append(f"| {r['name']} | {s['accuracy']:.1%} | {s['low']:.1%}-{s['high']:.1%} | {'' if r['n'] is None else r['n']} "
                     f"| {r['sentence']} |")
    lines += ["", "## Time per stage (seconds, wall clock)", "", *_timing_lines(record)]
    memory = record.get("memory_gib", {})
    if memory:
        places = sorted({place for peaks in memory.values() for place in peaks})
        lines += ["", "## Memory peaks per stage (GiB; CUDA: the stage's peak allocation; host: the peak resident memory of the process that ran the stage, up to its end)", "",
                  "| stage | " + " | ".join(places) + " |", "|---|" + "---|" * len(places)]
        lines += [f"| {stage} | " + " | ".join(f"{peaks[p]:.2f}" if p in peaks else "" for p in places) + " |"
                  for stage, peaks in memory.items()]
    for name in record["stages"]:
        page = record.get("stage_pages", {}).get(name)
        if page and page["summary"]:
            lines += ["", f"## {name}: {page['title']}", ""] + [f"- {line}" for line in page["summary"]]
    path = out_dir / "findings.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def write_report(out_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``<out_dir>/report.html`` from a run record and return its path."""
    model = record["model"]
    facts = model["facts"]
    status = ("<span class='ok'>complete</span>" if record.get("complete")
              else f"<span class='fail'>stopped</span>: {html.escape(record.get('error', 'interrupted').splitlines()[0])}")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>emowork run: "
        f"{html.escape(model['name'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>emowork run: {html.escape(model['name'])}</h1>",
        f"<p>Status: {status}. Created {html.escape(record['created'])}; {html.escape(_time_sentence(record))}</p>",
        _table(["model", "architecture", "layers", "d_model", "heads (kv) x d_head", "d_mlp", "params", "device", "dtype", "fingerprint"],
               [[model["name"], facts["architecture"], facts["n_layers"], facts["d_model"],
                 f"{facts['n_heads']} ({facts['n_kv_heads']}) x {facts['d_head']}", facts["d_mlp"],
                 f"{facts['n_params'] / 1e6:.1f}M", model["device"], model["dtype"], model["fingerprint"]]]),
        f"<p class='muted'>Dataset: {html.escape(record['dataset']['name'])} (sha256 {record['dataset']['sha256'][:16]}...). "
        f"Settings: {html.escape(str(record['settings']))}. Versions: "
        + html.escape(", ".join(f"{k} {v}" for k, v in record["versions"].items())) + ".</p>",
    ]
    parts += _findings(out_dir, record)
    for name in record["stages"]:
        page = record.get("stage_pages", {}).get(name)
        parts.append(f"<h2 id='stage-{html.escape(name)}'>{html.escape(name)}: {html.escape(page['title'] if page else '(not run)')}</h2>")
        if page is None:
            parts.append("<p class='muted'>This stage did not finish.</p>")
            continue
        parts.append(f"<p>{html.escape(page['description'])}</p>")
        if page["summary"]:
            parts.append("<div class='summary'>" + "".join(f"<p>{html.escape(s)}</p>" for s in page["summary"]) + "</div>")
        for what, relative in page.get("links", {}).items():
            parts.append(f"<p><a href='{html.escape(relative)}'>{html.escape(what)}</a></p>")
        for table in page["tables"]:
            parts.append(f"<h3>{html.escape(table['title'])}</h3>" + _table(table["columns"], table["rows"]))
        for stem, relative in page["figures"].items():
            caption = page.get("captions", {}).get(stem, "")
            parts.append(f"<p><a href='{html.escape(relative)}'>{html.escape(stem)} (open full size)</a></p>"
                         f"<iframe src='{html.escape(relative)}' loading='lazy'></iframe>"
                         + (f"<p class='caption'><b>What to look at:</b> {html.escape(caption)}</p>" if caption else ""))
        parts.append(f"<p class='muted'>{page['seconds']:.1f} s</p>")
    parts.append("</body></html>")
    path = out_dir / "report.html"
    atomic_write_text(path, "\n".join(parts))
    return path


def _stage_seconds(record: Mapping[str, Any]) -> dict[str, float]:
    """Each finished stage's own seconds (from when it ran, also for a stage reused from an earlier invocation)."""
    return {k: v for k, v in record.get("timings", {}).items() if k not in ("load_model", "total")}


def _time_sentence(record: Mapping[str, Any]) -> str:
    """How long this invocation took and, when stages were reused from earlier invocations, what the stages add up to."""
    timings = record.get("timings", {})
    reused = [name for name in record.get("reused", []) if name in timings]
    sentence = f"this invocation took {timings.get('total', 0):.0f} s"
    if reused:
        stages = _stage_seconds(record)
        sentence += (f"; {len(reused)} of its {len(stages)} finished stages ({', '.join(reused)}) "
                     f"{'was' if len(reused) == 1 else 'were'} reused from an "
                     f"earlier invocation on this folder, and the stages' own times add up to {sum(stages.values()):.0f} s "
                     f"(model loading not counted)")
    return sentence + "."


def _timing_lines(record: Mapping[str, Any]) -> list[str]:
    """The Markdown table of stage times; reused stages are marked with their time from the invocation that ran them."""
    timings = record.get("timings", {})
    reused = set(record.get("reused", []))
    names = list(timings)
    cells = [f"{timings[n]:.0f}" + (" (reused)" if n in reused else "") for n in names]
    sentence = _time_sentence(record)
    return ["| " + " | ".join(names) + " |", "|" + "---|" * len(names), "| " + " | ".join(cells) + " |", "",
            sentence[0].upper() + sentence[1:]]
