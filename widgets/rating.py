"""``RatingPanel``: people rate replies one at a time; the ratings file is what ``emowork judge validate`` reads.

Two ways to rate:
- target shown (``show_target=True``): "does this reply's style express {emotion}?" -> accept / reject;
- target hidden (``show_target=False``): "which emotion does this reply's style express?" -> one of the six or
  "none"; the label is 1 when the rater names the reply's target emotion (a blind rating: the target cannot sway it).

Every rating is written at once, atomically, to a JSONL file (``text``, ``emotion``, ``label`` and, when hidden,
``heard``, plus ``id`` and ``rater``); reopening the panel on the same file skips the replies already rated there.

    panel = RatingPanel(replies, "ratings/class.jsonl", show_target=False, rater="class-2026")
    panel                                  # in a notebook: the panel
    panel.rate_heard("anger"); panel.accept(); panel.reject(); panel.skip(); panel.undo()   # what the buttons call
    panel.validation(load_judge("default"))                                                 # judge vs these ratings
"""

from __future__ import annotations

import html
import json
import random
from pathlib import Path
from typing import Any, Sequence

from emowork.emotions import EMOTIONS
from emowork.judge.validate import EMOTION_KEYS, TEXT_KEYS, JudgeValidation, _first, parse_rows, validate
from emowork.storage import atomic_write_text

NONE = "none"


def _reply_id(index: int, record: dict[str, Any]) -> str:
    return str(record.get("id", f"reply-{index:05d}"))


class RatingPanel:
    """Shows ``replies`` (dicts with ``text``/``gen_text`` and ``emotion``) one at a time and records ratings.

    ``shuffle_seed`` shows them in a seeded random order (so a class does not rate all angers first). The plain
    methods hold all the logic (tests call them without a browser); displaying the object shows the widget.
    """

    def __init__(self, replies: Sequence[dict[str, Any]], out_path: str | Path, show_target: bool = True,
                 rater: str = "", shuffle_seed: int | None = 0) -> None:
        items = []
        for i, record in enumerate(replies):
            text, emotion = _first(record, TEXT_KEYS), _first(record, EMOTION_KEYS)
            if not isinstance(text, str) or not text.strip() or str(emotion).lower() not in EMOTIONS:
                raise ValueError(f"reply {i}: needs a non-empty 'text' and an 'emotion' among {', '.join(EMOTIONS)} "
                                 f"(got {record!r:.120})")
            items.append({"id": _reply_id(i, record), "text": text, "emotion": str(emotion).lower()})
        if len({item["id"] for item in items}) != len(items):
            raise ValueError("replies have duplicate 'id' values: give each reply its own id (or none)")
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(items)
        self.items = items
        self.out_path = Path(out_path)
        self.show_target = show_target
        self.rater = rater
        self.ratings: list[dict[str, Any]] = self._existing()
        rated = {r["id"] for r in self.ratings}
        self.queue = [item for item in self.items if item["id"] not in rated]
        self.position = 0
        self._history: list[tuple[int, bool]] = []  # (queue position, whether a rating was written) for undo
        self._ui: Any = None

    def _existing(self) -> list[dict[str, Any]]:
        if not self.out_path.exists():
            return []
        rows = [json.loads(line) for line in self.out_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        parse_rows(rows, str(self.out_path))  # refuse a file that `judge validate` could not read
        return rows

    # ------------------------------------------------------------------ logic
    @property
    def done(self) -> bool:
        return self.position >= len(self.queue)

    def current(self) -> dict[str, Any] | None:
        """The reply to rate now (``text``, ``emotion``, ``id``), or None when all are rated or skipped."""
        return None if self.done else self.queue[self.position]

    def _record(self, label: bool, heard: str | None = None) -> None:
        item = self.current()
        if item is None:
            raise IndexError("no reply left to rate")
        row = {"id": item["id"], "text": item["text"], "emotion": item["emotion"], "label": int(label),
               "shown_target": self.show_target}
        if heard is not None:
            row["heard"] = heard
        if self.rater:
            row["rater"] = self.rater
        self.ratings.append(row)
        self.save()
        self._history.append((self.position, True))
        self.position += 1

    def accept(self) -> None:
        """The reply's style expresses its target emotion (target shown)."""
        self._record(True)

    def reject(self) -> None:
        """It does not."""
        self._record(False)

    def rate_heard(self, emotion: str) -> None:
        """Blind rating: the emotion the rater hears (one of the six, or ``"none"``); label = heard == target."""
        heard = emotion.lower()
        if heard not in (*EMOTIONS, NONE):
            raise ValueError(f"unknown emotion {emotion!r}: use one of {', '.join(EMOTIONS)} or 'none'")
        item = self.current()
        if item is None:
            raise IndexError("no reply left to rate")
        self._record(heard == item["emotion"], heard)

    def skip(self) -> None:
        """Leave this reply unrated (it comes back when the panel is reopened on the same file)."""
        if not self.done:
            self._history.append((self.position, False))
            self.position += 1

    def undo(self) -> None:
        """Go back one reply; its rating, if one was written, is removed from the file."""
        if not self._history:
            return
        self.position, wrote = self._history.pop()
        if wrote:
            self.ratings.pop()
            self.save()

    def save(self) -> None:
        """Write every rating to ``out_path`` (JSONL), atomically."""
        atomic_write_text(self.out_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.ratings))

    def status(self) -> str:
        accepted = sum(r["label"] for r in self.ratings)
        return (f"reply {min(self.position + 1, len(self.queue))} of {len(self.queue)} to rate; {len(self.ratings)} "
                f"rated in {self.out_path.name} ({accepted} accepted)")

    def validation(self, judge: Any) -> JudgeValidation:
        """The judge's agreement with these ratings (:func:`emowork.judge.validate`)."""
        if not self.ratings:
            raise ValueError("nothing rated yet")
        return validate(judge, parse_rows(self.ratings, str(self.out_path)))

    # ------------------------------------------------------------------ widget
    def _build(self) -> Any:
        import ipywidgets as w

        self._text = w.HTML()
        self._message = w.HTML()
        if self.show_target:
            yes = w.Button(description="Yes, it does", button_style="success")
            no = w.Button(description="No", button_style="danger")
            yes.on_click(lambda _: self._act(self.accept))
            no.on_click(lambda _: self._act(self.reject))
            choices = [yes, no]
        else:
            choices = []
            for name in (*EMOTIONS, NONE):
                button = w.Button(description=name, layout=w.Layout(width="92px"))
                button.on_click(lambda _, name=name: self._act(lambda: self.rate_heard(name)))
                choices.append(button)
        skip = w.Button(description="Skip")
        undo = w.Button(description="Undo")
        skip.on_click(lambda _: self._act(self.skip))
        undo.on_click(lambda _: self._act(self.undo))
        self._buttons = [*choices, skip, undo]
        self._ui = w.VBox([self._text, w.HBox(choices), w.HBox([skip, undo]), self._message])
        self._show()
        return self._ui

    def _act(self, action: Any) -> None:
        action()
        self._show()

    def _show(self) -> None:
        item = self.current()
        if item is None:
            self._text.value = f"<b>All done.</b> {html.escape(self.status())}"
            return
        question = (f"Does the STYLE of this reply (its tone, not its content) express <b>{item['emotion']}</b>?"
                    if self.show_target else "Which emotion does the STYLE of this reply (its tone, not its content) express?")
        self._text.value = (f"<div style='color:#555'>{html.escape(self.status())}</div><p>{question}</p>"
                            f"<blockquote style='font-size:1.1em'>{html.escape(item['text'])}</blockquote>")
        self._message.value = ""

    def _ipython_display_(self) -> None:
        from .static import show

        show(self._ui or self._build(), "Rating panel")
