"""Static export of figures for papers (SVG and PDF, offline through a local Chromium) and the palette."""

import json

import pytest

from emowork import plots
from emowork.cli import main
from emowork.figures import FigureExportError, export_run, find_browser, write_static
from emowork.palette import EMOTION_COLORS, color_for

needs_browser = pytest.mark.skipif(find_browser() is None, reason="Chromium is not installed (Debian package 'chromium'; "
                                   "`make test` installs it)")


def bars():
    by_e = {e: {"accuracy": 0.3, "low": 0.2, "high": 0.4} for e in EMOTION_COLORS if e != "neutral"}
    return plots.accuracy_bars(by_e, "test", 1 / 6)


def test_each_emotion_has_its_own_colour_everywhere():
    assert len(set(EMOTION_COLORS.values())) == len(EMOTION_COLORS)
    fig = bars()
    assert list(fig.data[0].marker.color) == [EMOTION_COLORS[e] for e in fig.data[0].x]
    lines = plots.layer_lines({"anger": [0, 1], "anger, shuffled labels": [0, 0]}, "t", "y", dashed=["anger, shuffled labels"])
    assert lines.data[0].line.color == EMOTION_COLORS["anger"] and lines.data[1].line.color == color_for("random")
    assert color_for("steered (best)") == color_for("steering") != color_for("unsteered")


@needs_browser
def test_a_figure_is_written_as_real_svg_and_pdf(tmp_path):
    svg, pdf = write_static(bars(), tmp_path / "accuracy", ("svg", "pdf"))
    assert svg.read_text().lstrip().startswith("<svg") and "anger" in svg.read_text()
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000
    assert not list(tmp_path.glob(".*.tmp")), "files are written atomically"


@needs_browser
def test_emowork_figures_exports_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "accuracy.json").write_text(bars().to_json())
    assert main(["figures", str(run), "--format", "svg,pdf"]) == 0
    assert (run / "figures" / "static" / "accuracy.svg").exists() and (run / "figures" / "static" / "accuracy.pdf").exists()


def test_export_errors_say_what_to_do(tmp_path, capsys):
    with pytest.raises(FigureExportError, match="no figures/ folder"):
        export_run(tmp_path)
    (tmp_path / "figures").mkdir()
    with pytest.raises(FigureExportError, match="--force"):
        export_run(tmp_path)
    (tmp_path / "figures" / "a.json").write_text(json.dumps({"data": [], "layout": {}}))
    with pytest.raises(FigureExportError, match="No figure named"):
        export_run(tmp_path, only=["b"])
    with pytest.raises(FigureExportError, match="Unknown figure format"):
        write_static(bars(), tmp_path / "x", ("gif",))
    assert main(["figures", str(tmp_path / "nowhere")]) == 2
    assert "no figures/ folder" in capsys.readouterr().err
