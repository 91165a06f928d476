"""The live steering panel rendered in a real JupyterLab, driven by headless Chromium (Debian's package).

Starts a JupyterLab server on loopback with a notebook that builds the panel on a tiny model and requests a
generation, opens it in Chromium through Playwright (``executable_path`` = the system Chromium: nothing is
downloaded), runs all cells and waits until a reply appears in the panel. Skips with a message when Chromium or
Playwright is missing (``make test`` installs both where it can).
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
from pathlib import Path

import pytest

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


def _notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": src} for src in CELLS]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium'; `make test` installs it)")
def test_panel_shows_a_reply_in_jupyterlab(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
    _notebook(tmp_path / "panel.ipynb")
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
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"])
            page = browser.new_page()
            page.goto(f"{base}/lab/tree/panel.ipynb", timeout=120_000)
            page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=120_000)
            page.wait_for_function("() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator, #jp-main-statusbar');"
                                   " return !!s; }", timeout=60_000)
            time.sleep(2)  # let the kernel finish starting
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.emowork-reply')).some(e => e.textContent.trim().length > 0)",
                timeout=240_000)
            replies = page.eval_on_selector_all(".emowork-reply", "els => els.map(e => e.textContent)")
            browser.close()
        assert any(r.strip() for r in replies)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
