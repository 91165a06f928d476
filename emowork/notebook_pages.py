"""Executed notebooks as standalone HTML pages that show every figure offline (``make notebooks-html``).

    python -m emowork.notebook_pages notebooks/*.ipynb --out build/notebooks-html

Figures: the notebooks call :func:`emowork.plots.use_offline_renderer`, so each plotly figure's output carries
HTML drawn by the plotly.js embedded once in the page. Panels (ipywidgets): their views need a widget manager that
loads from the web, so each panel's output also carries a static HTML snapshot (``widgets/static.py``) and the pages
keep that snapshot instead of the widget view. Pages are written atomically; a notebook that fails to execute stops
the export with the cell's error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from .storage import atomic_write_text

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def prefer_static_html(nb: Any) -> int:
    """Drop widget views that have an HTML snapshot beside them (and the saved widget state); returns how many."""
    dropped = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and "text/html" in data:
                del data[WIDGET_VIEW]
                dropped += 1
    nb.metadata.pop("widgets", None)
    return dropped


def export(notebooks: Sequence[Path], out: Path, timeout: int = 3600, execute: bool = True) -> list[Path]:
    """Execute each notebook in its own folder (as nbval does) and write ``out/<name>.html``; returns the pages."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import ExecutePreprocessor

    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for path in map(Path, notebooks):
        nb = nbformat.read(path, as_version=4)
        if execute:
            print(f"[emowork] executing {path}...", flush=True)
            ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(path.parent)}})
        prefer_static_html(nb)
        body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
        page = out / f"{path.stem}.html"
        atomic_write_text(page, body)
        pages.append(page)
        print(f"[emowork] wrote {page}", flush=True)
    return pages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emowork.notebook_pages", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="notebook files")
    parser.add_argument("--out", default="build/notebooks-html", help="folder for the pages")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    export([Path(p) for p in args.notebooks], Path(args.out), args.timeout)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
