"""``DatasetBrowser``: page through SEV skeletons by theme and see the exact prompts the model receives."""

from __future__ import annotations

import html
from emowork.data.sev import VALENCES, Group, SEVDataset, Skeleton
from emowork.emotions import EMOTIONS
from emowork.palette import VALENCE_COLORS
from emowork.model.handle import ModelHandle
from emowork.prompts import emotion_prompt, neutral_prompt


def skeleton_html(skeleton: Skeleton) -> str:
    """HTML card of one skeleton: id, theme, scenario and its three events."""
    colors = VALENCE_COLORS
    events = "".join(f"<li><b style='color:{colors[v]}'>{v}</b>: {html.escape(skeleton.event(v))}</li>" for v in VALENCES)
    return (f"<div><b>{html.escape(skeleton.skeleton_id)}</b> &middot; {html.escape(skeleton.theme)}"
            f"<p>{html.escape(skeleton.scenario)}</p><ul>{events}</ul></div>")


def prompt_text(handle: ModelHandle, skeleton: Skeleton, valence: str, emotion: str | None) -> str:
    """The exact prompt text for (skeleton, valence) with an emotion instruction, or the neutral one."""
    group = Group(skeleton, valence)
    return neutral_prompt(handle, group) if emotion is None else emotion_prompt(handle, group, emotion)


class DatasetBrowser:
    """Theme dropdown, skeleton slider, valence and emotion pickers; shows the card and the prompt."""

    def __init__(self, dataset: SEVDataset, handle: ModelHandle | None = None) -> None:
        import ipywidgets as w

        self.dataset = dataset
        self.handle = handle
        self.theme = w.Dropdown(options=dataset.themes, description="theme")
        self.index = w.IntSlider(min=0, max=0, description="skeleton")
        self.valence = w.ToggleButtons(options=list(VALENCES), description="valence")
        self.emotion = w.Dropdown(options=["(neutral prompt)", *EMOTIONS], description="instruction")
        self.card = w.HTML()
        self.prompt = w.HTML()
        for control in (self.theme, self.index, self.valence, self.emotion):
            control.observe(lambda _: self.refresh(), names="value")
        self.theme.observe(lambda _: self._reset_slider(), names="value")
        self._reset_slider()
        self.panel = w.VBox([w.HBox([self.theme, self.index]), w.HBox([self.valence, self.emotion]), self.card, self.prompt])

    def skeletons(self) -> list[Skeleton]:
        """Skeletons of the selected theme."""
        return [s for s in self.dataset if s.theme == self.theme.value]

    def _reset_slider(self) -> None:
        self.index.max = max(0, len(self.skeletons()) - 1)
        self.index.value = 0
        self.refresh()

    def refresh(self) -> None:
        """Redraw the card and the prompt for the current selection."""
        items = self.skeletons()
        if not items:
            return
        skeleton = items[min(self.index.value, len(items) - 1)]
        self.card.value = skeleton_html(skeleton)
        if self.handle is not None:
            emotion = None if self.emotion.value.startswith("(") else self.emotion.value
            text = prompt_text(self.handle, skeleton, self.valence.value, emotion)
            self.prompt.value = f"<pre style='white-space:pre-wrap'>{html.escape(text)}</pre>"

    def _ipython_display_(self) -> None:
        from .static import show

        show(self.panel, "Dataset browser")
