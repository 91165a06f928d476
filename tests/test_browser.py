"""Panels rendered in a real JupyterLab, and the standalone graph page, driven by headless Chromium (Debian's package).

Starts a JupyterLab server on loopback with a notebook that builds a panel on a tiny model, opens it in Chromium
through Playwright (``executable_path`` = the system Chromium: nothing is downloaded), runs all cells and checks
what the panel shows: the live steering panel's reply, the graph viewer's side panel after a click on a node. Skips
with a message when Chromium or Playwright is missing (``make test`` installs both where it can).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from .helpers import refuse_network

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CELLS = [
    "import emowork\nfrom emowork import data\nfrom emowork.analysis.directions import extract\nfrom widgets import SteeringPanel",
    "handle = emowork.load_model('tiny-llama', device='cpu')\n"
    "directions = extract(handle, data.load_sev('analysis').select(per_theme=1), groups='all', progress=False)",
    "panel = SteeringPanel(handle, directions, judge=None)\npanel",
    "panel.max_tokens.value = 12\npanel.request()",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GRAPH_CELLS = [
    "import torch, emowork\nfrom emowork.circuits.assembly import Circuit\nfrom emowork.circuits.graph import attribution_graph\n"
    "from widgets import GraphViewer",
    "handle = emowork.load_model('tiny-llama', device='cpu')\nf = handle.facts\n"
    "units = {'neuron': torch.tensor([(L, i) for L in range(f.n_layers) for i in range(3)]),\n"
    "         'head': torch.tensor([(L, h) for L in range(f.n_layers) for h in range(2)])}\n"
    "circuit = Circuit(['anger'], f.n_layers, f.d_mlp, f.n_heads, f.d_head, {'anger': units},\n"
    "                  {'anger': {k: torch.zeros(len(v)) for k, v in units.items()}},\n"
    "                  {'anger': {'neuron': torch.zeros(len(units['neuron'])), 'head': torch.zeros(len(units['head']), f.d_head)}})\n"
    "ref = torch.nn.functional.normalize(torch.randn(f.d_model, generator=torch.Generator().manual_seed(0)), dim=0)\n"
    "graph = attribution_graph(handle, circuit, handle.format_chat('The rain stopped.'), 'anger', ref, positions=2)",
    "viewer = GraphViewer({'anger': {'rain': graph}}, share=0.9, folder='subgraphs')\nviewer",
]
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium'; `make test` installs it)")


def _notebook(path: Path, sources: list[str]) -> None:
    cells = [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": src} for src in sources]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@contextmanager
def jupyterlab_notebook(tmp_path: Path, sources: list[str]) -> Iterator[object]:
    """A JupyterLab on loopback with a notebook of ``sources``, opened in headless Chromium with all cells run;
    yields the Playwright page."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
    _notebook(tmp_path / "panel.ipynb", sources)
    port = _free_port()
    log = open(tmp_path / "jupyterlab.log", "w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMOWORK_PROGRESS": "0", "JUPYTER_PLATFORM_DIRS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
         f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-2000:])
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/lab/tree/panel.ipynb", timeout=120_000)
            page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=120_000)
            page.wait_for_function("() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator, #jp-main-statusbar');"
                                   " return !!s; }", timeout=60_000)
            time.sleep(2)  # let the kernel finish starting
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            try:
                yield page
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def click_a_graph_node(page: object, trace_name: str = "target") -> None:
    """Hover, then click, the first marker of the graph figure's ``trace_name`` trace (plotly fires ``plotly_click``
    for the hovered point). Every trace is a scatter, so the n-th ``.scatterlayer .trace`` is ``data[n]``."""
    names = page.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => t.name)")
    point = page.locator(".js-plotly-plot .scatterlayer .trace").nth(names.index(trace_name)).locator("path.point").first
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 3, y - 3)
    page.mouse.move(x, y)
    time.sleep(0.3)
    page.mouse.click(x, y)


@needs_chromium
def test_panel_shows_a_reply_in_jupyterlab(tmp_path):
    with jupyterlab_notebook(tmp_path, CELLS) as page:
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.emowork-reply')).some(e => e.textContent.trim().length > 0)",
            timeout=240_000)
        replies = page.eval_on_selector_all(".emowork-reply", "els => els.map(e => e.textContent)")
    assert any(r.strip() for r in replies)


@needs_chromium
def test_graph_viewer_click_opens_the_side_panel_in_jupyterlab(tmp_path):
    with jupyterlab_notebook(tmp_path, GRAPH_CELLS) as page:
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .scatterlayer path.point').length > 0",
                               timeout=240_000)
        assert page.locator(".emowork-graph-side h4").count() == 0  # nothing selected yet
        click_a_graph_node(page, "target")
        page.wait_for_function("() => document.querySelector('.emowork-graph-side h4')", timeout=60_000)
        title = page.locator(".emowork-graph-side h4").inner_text()
        incoming = page.locator(".emowork-graph-side .emowork-incoming li").count()
    assert "anger" in title and incoming > 0, (title, incoming)


@needs_chromium
def test_standalone_graph_page_click_opens_the_side_panel_offline(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
    import torch

    from emowork.circuits.graph import attribution_graph
    from emowork.panels.graph_page import write_graph_page
    from .conftest import load_tiny
    from .test_graphs import toy_circuit

    handle = load_tiny("tiny-llama")
    reference = torch.nn.functional.normalize(torch.randn(handle.facts.d_model, generator=torch.Generator().manual_seed(0)), dim=0)
    graph = attribution_graph(handle, toy_circuit(handle), handle.format_chat("The rain stopped."), "anger", reference, positions=2)
    path = write_graph_page({"anger": graph}, tmp_path / "graphs.html", share=0.9)

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        refused = refuse_network(page)
        page.goto(path.as_uri())
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .scatterlayer path.point').length > 0", timeout=60_000)
        click_a_graph_node(page, "target")
        page.wait_for_function("() => document.querySelector('#emowork-graph-side h4')", timeout=30_000)
        title = page.locator("#emowork-graph-side h4").inner_text()
        browser.close()
    assert title == graph.nodes[graph.target_index].label and not refused, (title, refused)
