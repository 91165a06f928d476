"""``DraftReviewer``: review drafted skeletons one at a time (edit / accept / reject), saved atomically to JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from emowork.data.drafting import Draft
from emowork.data.sev import VALENCES, RawRecord, read_records
from emowork.data.validate import Problem, validate_records
from emowork.storage import atomic_write_text

FIELDS = ("skeleton_id", "theme", "scenario", *(f"event.{v}" for v in VALENCES))


class DraftReviewer:
    """Walks through ``drafts``; accepted records (after edits) are written to ``out_path`` atomically.

    The plain methods (``current``, ``edit``, ``accept``, ``reject``, ``skip``) hold all the logic and are what the
    buttons call, so tests drive the reviewer without a browser. Records already in ``out_path`` are kept.
    """

    def __init__(self, drafts: Sequence[Draft], out_path: str | Path) -> None:
        self.drafts = list(drafts)
        self.out_path = Path(out_path)
        self.position = 0
        self.accepted: list[dict[str, Any]] = self._existing()
        self.rejected: list[int] = []
        self.last_problems: list[Problem] = []
        self._edits: dict[int, dict[str, Any]] = {}
        self._ui: Any = None

    def _existing(self) -> list[dict[str, Any]]:
        if not self.out_path.exists():
            return []
        return [r.data for r in read_records(self.out_path) if r.data is not None]

    # ------------------------------------------------------------------ logic
    @property
    def done(self) -> bool:
        return self.position >= len(self.drafts)

    def current(self) -> dict[str, Any] | None:
        """The record under review (with edits so far), or None when every draft has been seen."""
        if self.done:
            return None
        if self.position not in self._edits:
            draft = self.drafts[self.position]
            record = draft.record or {"skeleton_id": "", "theme": "", "scenario": draft.raw, "event": {}}
            self._edits[self.position] = json.loads(json.dumps(record))
            self._edits[self.position].setdefault("event", {})
        return self._edits[self.position]

    def edit(self, field: str, text: str) -> None:
        """Set ``field`` (one of :data:`FIELDS`, e.g. ``"event.negative"``) of the current record."""
        record = self.current()
        if record is None:
            raise IndexError("no draft left to edit")
        if field not in FIELDS:
            raise KeyError(f"unknown field {field!r}; fields are {', '.join(FIELDS)}")
        if field.startswith("event."):
            record["event"][field.split(".", 1)[1]] = text
        else:
            record[field] = text

    def check(self) -> list[Problem]:
        """Validate the current record against the accepted ones (ids and texts must be new)."""
        record = self.current()
        if record is None:
            return []
        rows = [RawRecord(i + 1, r) for i, r in enumerate(self.accepted)] + [RawRecord(len(self.accepted) + 1, record)]
        problems, _ = validate_records(rows, str(self.out_path))
        return [p for p in problems if p.line == len(self.accepted) + 1 and p.severity == "error"]

    def accept(self) -> bool:
        """Accept the current record if it validates: save the file and move on. Returns whether it was accepted."""
        self.last_problems = self.check()
        if self.last_problems:
            return False
        record = self.current()
        assert record is not None
        self.accepted.append({"skeleton_id": record["skeleton_id"], "theme": record["theme"],
                              "scenario": record["scenario"], "event": {v: record["event"][v] for v in VALENCES}})
        self.save()
        self.position += 1
        return True

    def reject(self) -> None:
        """Reject the current draft and move on."""
        if not self.done:
            self.rejected.append(self.position)
            self.position += 1

    skip = reject

    def save(self) -> None:
        """Write every accepted record to ``out_path`` as JSONL, atomically."""
        atomic_write_text(self.out_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.accepted))

    def status(self) -> str:
        return (f"draft {min(self.position + 1, len(self.drafts))} of {len(self.drafts)}; accepted {len(self.accepted)} "
                f"(in {self.out_path.name}), rejected {len(self.rejected)}")

    # ------------------------------------------------------------------ widget
    def _build(self) -> Any:
        import ipywidgets as w

        self._boxes = {f: w.Textarea(description=f, layout=w.Layout(width="100%", height="60px" if f.startswith(("scenario", "event")) else "32px"))
                       for f in FIELDS}
        self._raw = w.HTML()
        self._message = w.HTML()
        accept = w.Button(description="Accept", button_style="success")
        reject = w.Button(description="Reject", button_style="danger")
        accept.on_click(lambda _: self._on_accept())
        reject.on_click(lambda _: (self.reject(), self._show()))
        self._ui = w.VBox([self._raw, *self._boxes.values(), w.HBox([accept, reject]), self._message])
        self._show()
        return self._ui

    def _on_accept(self) -> None:
        for f, box in self._boxes.items():
            self.edit(f, box.value)
        if self.accept():
            self._show()
        else:
            self._message.value = "<b>Not accepted:</b><br>" + "<br>".join(f"{p.field}: {p.message}" for p in self.last_problems)

    def _show(self) -> None:
        import html

        record = self.current()
        if record is None:
            self._raw.value = f"<b>Done.</b> {html.escape(self.status())}"
            for box in self._boxes.values():
                box.disabled = True
            return
        draft = self.drafts[self.position]
        reasons = "; ".join(draft.reasons()) or "passed validation"
        self._raw.value = (f"<b>{html.escape(self.status())}</b><br>validator: {html.escape(reasons)}<br>"
                           f"<details><summary>model's raw reply</summary><pre>{html.escape(draft.raw)}</pre></details>")
        for f, box in self._boxes.items():
            box.value = record["event"].get(f.split(".", 1)[1], "") if f.startswith("event.") else str(record.get(f, ""))
        self._message.value = ""

    def _ipython_display_(self) -> None:
        from .static import show

        show(self._ui or self._build(), "Draft reviewer")
