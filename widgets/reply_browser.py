"""``ReplyBrowser``: read generated replies filtered by emotion, valence and the judge's verdict."""

from __future__ import annotations

import html
from typing import Any, Sequence

from emowork.data.sev import VALENCES
from emowork.emotions import EMOTIONS
from emowork.palette import STATUS_COLORS

ANY = "(any)"


def filter_rows(rows: Sequence[dict[str, Any]], emotion: str = ANY, valence: str = ANY, verdict: str = ANY) -> list[dict[str, Any]]:
    """Rows matching the filters; ``verdict`` is ``"accepted"``, ``"rejected"`` or ``"(any)"``."""
    out = []
    for r in rows:
        if emotion != ANY and r["emotion"] != emotion:
            continue
        if valence != ANY and r["valence"] != valence:
            continue
        if verdict != ANY and r["accepted"] != (verdict == "accepted"):
            continue
        out.append(r)
    return out


def rows_html(rows: Sequence[dict[str, Any]], limit: int = 20) -> str:
    """An HTML table of up to ``limit`` rows: group, instructed emotion, judge's label, verdict, reply."""
    body = "".join(
        f"<tr><td>{html.escape(r['group_id'])}</td><td>{r['emotion']}</td><td>{html.escape(str(r['predicted']))}</td>"
        f"<td style='color:{STATUS_COLORS['ok'] if r['accepted'] else STATUS_COLORS['fail']}'>{'accepted' if r['accepted'] else 'rejected'}</td>"
        f"<td>{html.escape(r['reply'])}</td></tr>" for r in rows[:limit])
    more = f"<p>... {len(rows) - limit} more</p>" if len(rows) > limit else ""
    return ("<table><tr><th>group</th><th>instructed</th><th>judge says</th><th>verdict</th><th>reply</th></tr>"
            f"{body}</table>{more}")


class ReplyBrowser:
    """Dropdowns for emotion, valence and verdict over an elicitation (or steering) result's rows."""

    def __init__(self, rows: Sequence[dict[str, Any]], limit: int = 20) -> None:
        import ipywidgets as w

        self.rows = list(rows)
        self.limit = limit
        self.emotion = w.Dropdown(options=[ANY, *EMOTIONS], description="emotion")
        self.valence = w.Dropdown(options=[ANY, *VALENCES], description="valence")
        self.verdict = w.Dropdown(options=[ANY, "accepted", "rejected"], description="verdict")
        self.count = w.HTML()
        self.table = w.HTML()
        for control in (self.emotion, self.valence, self.verdict):
            control.observe(lambda _: self.refresh(), names="value")
        self.panel = w.VBox([w.HBox([self.emotion, self.valence, self.verdict]), self.count, self.table])
        self.refresh()

    def selected(self) -> list[dict[str, Any]]:
        """The rows the current filters select."""
        return filter_rows(self.rows, self.emotion.value, self.valence.value, self.verdict.value)

    def refresh(self) -> None:
        rows = self.selected()
        accepted = sum(r["accepted"] for r in rows)
        self.count.value = f"<b>{len(rows)}</b> replies, {accepted} accepted"
        self.table.value = rows_html(rows, self.limit)

    def _ipython_display_(self) -> None:
        from .static import show

        show(self.panel, "Reply browser")
