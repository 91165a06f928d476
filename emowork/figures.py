"""Static figures for papers: write a run's figures (or any plotly figure) as SVG and PDF, offline.

Every stage saves each figure twice: ``figures/<stem>.html`` to view and ``figures/<stem>.json`` (plotly's JSON) to
re-render. :func:`export_run` re-renders the JSON with kaleido, which drives a local Chromium through the DevTools
protocol: nothing is fetched (``make test`` installs Debian's ``chromium``; set ``BROWSER_PATH`` to use another).

    emowork figures runs/embedded --format svg,pdf          # -> runs/embedded/figures/static/<stem>.svg|.pdf
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Sequence

import plotly.graph_objects as go
import plotly.io as pio

from .errors import EmoworkError

FORMATS = ("svg", "pdf", "png")
DEFAULT_WIDTH = 900
DEFAULT_HEIGHT = 480


class FigureExportError(EmoworkError):
    """A figure could not be written as a static file (no renderer, no browser, or no saved figure)."""


def find_browser() -> str | None:
    """The Chromium/Chrome executable kaleido will drive: ``$BROWSER_PATH``, else the first one on ``PATH``."""
    if os.environ.get("BROWSER_PATH"):
        return os.environ["BROWSER_PATH"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _check_renderer() -> None:
    try:
        import kaleido  # noqa: F401
    except ImportError as exc:
        raise FigureExportError("Static export needs the 'kaleido' package: run `make install` (or "
                                "`pip install kaleido`).") from exc
    browser = find_browser()
    if browser is None:
        raise FigureExportError("Static export drives a local Chromium and none was found: install Debian's 'chromium' "
                                "package (`make test` does, as root), or set BROWSER_PATH to a Chrome/Chromium executable.")
    os.environ.setdefault("BROWSER_PATH", browser)


def write_static(fig: go.Figure, stem: Path, formats: Sequence[str] = ("svg", "pdf")) -> list[Path]:
    """Write ``fig`` as ``<stem>.<format>`` for each format; returns the paths written.

    Width and height come from the figure's layout (defaults 900 x 480 px); slider figures show their active step.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise FigureExportError(f"Unknown figure format(s) {unknown}; choose from {', '.join(FORMATS)}.")
    _check_renderer()
    stem.parent.mkdir(parents=True, exist_ok=True)
    width = fig.layout.width or DEFAULT_WIDTH
    height = fig.layout.height or DEFAULT_HEIGHT
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            pio.write_image(fig, str(tmp), format=fmt, width=width, height=height)
        except Exception as exc:  # kaleido raises several types when the browser cannot start
            tmp.unlink(missing_ok=True)
            raise FigureExportError(f"Could not write {path.name}: {type(exc).__name__}: {exc}. Is the browser at "
                                    f"{os.environ.get('BROWSER_PATH')} runnable headless?") from exc
        os.replace(tmp, path)
        written.append(path)
    return written


def saved_figures(run_dir: Path) -> dict[str, Path]:
    """``{stem: figures/<stem>.json}`` of a run folder."""
    folder = Path(run_dir) / "figures"
    if not folder.is_dir():
        raise FigureExportError(f"{run_dir} has no figures/ folder: give the folder of a run (`emowork run` writes "
                                "runs/<model>[-fast]/).")
    found = {p.stem: p for p in sorted(folder.glob("*.json"))}
    if not found:
        raise FigureExportError(f"{folder} holds no saved figures (*.json). Runs made before figures were saved as JSON "
                                "must be re-run with `emowork run --force` to export them.")
    return found


def export_run(run_dir: Path, formats: Sequence[str] = ("svg", "pdf"), out: Path | None = None,
               only: Iterable[str] | None = None) -> list[Path]:
    """Write every saved figure of a run (or the stems in ``only``) as static files under ``out``
    (default ``<run>/figures/static``); returns the paths written."""
    figures = saved_figures(Path(run_dir))
    if only is not None:
        wanted = list(only)
        missing = [s for s in wanted if s not in figures]
        if missing:
            raise FigureExportError(f"No figure named {missing} in this run; it has: {', '.join(figures)}.")
        figures = {s: figures[s] for s in wanted}
    out = Path(out) if out else Path(run_dir) / "figures" / "static"
    written = []
    for stem, path in figures.items():
        try:
            fig = pio.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise FigureExportError(f"{path} is not a readable plotly figure ({exc}); re-run the stage with "
                                    "`emowork run --force --stages <stage>`.") from exc
        written += write_static(fig, out / stem, formats)
    return written
