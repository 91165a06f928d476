"""Notebooks exported as HTML pages (``make notebooks-html``) show their figures and panels with no network:
a notebook with a figure and a panel is executed and exported by the same code, then opened in headless Chromium
with every non-file request refused."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from emowork.notebook_pages import WIDGET_VIEW, export, prefer_static_html

from .helpers import refuse_network

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CELLS = [
    "from emowork.plots import use_offline_renderer\nuse_offline_renderer()\nfrom emowork import plots",
    "plots.accuracy_bars({'anger': {'accuracy': 0.4, 'low': 0.3, 'high': 0.5}}, 'one', 1 / 6)",
    "plots.layer_lines({'anger': [0.1, 0.2, 0.3]}, 'two', 'cosine')",
    "from widgets import ReplyBrowser\nReplyBrowser([{'emotion': 'anger', 'valence': 'neutral', 'accepted': True, "
    "'predicted': 'anger', 'reply': 'A REPLY IN THE PANEL', 'group_id': 'g1', 'prompt': 'p'}])",
]


def test_static_snapshot_replaces_widget_views():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "1"}, "text/html": "<b>x</b>"}),
                    nbformat.v4.new_output("display_data", data={WIDGET_VIEW: {"model_id": "2"}, "text/plain": "y"})]
    nb.cells = [cell]
    nb.metadata["widgets"] = {"state": {}}
    assert prefer_static_html(nb) == 1
    assert WIDGET_VIEW not in cell.outputs[0]["data"] and WIDGET_VIEW in cell.outputs[1]["data"]
    assert "widgets" not in nb.metadata


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium'; `make test` installs it)")
def test_exported_page_draws_figures_and_panels_offline(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "page.ipynb"
    nbformat.write(nb, source)
    (page,) = export([source], tmp_path / "html", timeout=600)

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()
        refused = refuse_network(tab)
        tab.goto(page.as_uri())
        tab.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2", timeout=60_000)
        drawn = tab.evaluate("Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => d.querySelectorAll('.bars .point, .scatterlayer .trace').length)")
        panel = tab.locator(".emowork-static").inner_text()
        browser.close()
    assert len(drawn) == 2 and all(n > 0 for n in drawn), f"every figure has drawn marks: {drawn}"
    assert "A REPLY IN THE PANEL" in panel and "static snapshot" in panel
    assert not any("plot.ly" in url for url in refused), f"plotly.js must be embedded, not fetched: {refused}"
