"""One colour-blind-safe palette (Okabe & Ito, 2008) for every figure, widget and report page.

Each emotion keeps its colour everywhere; methods (prompting, steering, unsteered, controls) and valences have
their own fixed colours; controls are grey and drawn dashed. The eight Okabe-Ito colours stay distinguishable under
the common colour-vision deficiencies (protanopia, deuteranopia, tritanopia).
"""

from __future__ import annotations

OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7",
}
GREY = "#8C8C8C"

EMOTION_COLORS = {
    "anger": OKABE_ITO["vermillion"],
    "sadness": OKABE_ITO["blue"],
    "happiness": OKABE_ITO["orange"],
    "fear": OKABE_ITO["reddish_purple"],
    "surprise": OKABE_ITO["sky_blue"],
    "disgust": OKABE_ITO["bluish_green"],
    "neutral": GREY,
}
METHOD_COLORS = {
    "prompting": OKABE_ITO["blue"],
    "steering": OKABE_ITO["vermillion"],
    "circuit": OKABE_ITO["bluish_green"],
    "unsteered": GREY,
    "chance": OKABE_ITO["black"],
    "reference": GREY,
    "top": OKABE_ITO["vermillion"],
    "random": GREY,
}
VALENCE_COLORS = {"positive": OKABE_ITO["bluish_green"], "neutral": GREY, "negative": OKABE_ITO["vermillion"]}
STATUS_COLORS = {"ok": OKABE_ITO["bluish_green"], "fail": OKABE_ITO["vermillion"]}
SEQUENCE = [OKABE_ITO[k] for k in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple", "sky_blue", "yellow", "black")]
SEQUENTIAL_SCALE = "Cividis"   # one-sided values (accuracy, shares): perceptually uniform and colour-blind-safe
DIVERGING_SCALE = [[0.0, OKABE_ITO["blue"]], [0.5, "#F7F7F7"], [1.0, OKABE_ITO["vermillion"]]]  # signed values


def color_for(name: str, index: int = 0) -> str:
    """The colour of an emotion, method or valence named ``name`` (a method matches on its first word, e.g.
    ``"steered (best)" -> steering``); otherwise the ``index``-th colour of the sequence."""
    key = name.lower()
    for table in (EMOTION_COLORS, VALENCE_COLORS, METHOD_COLORS):
        if key in table:
            return table[key]
    aliases = {"steered": "steering", "prompt-elicited": "prompting", "prompted": "prompting", "circuits": "circuit"}
    first = key.split()[0].rstrip(",") if key.split() else key
    first = aliases.get(first, first)
    if first in METHOD_COLORS:
        return METHOD_COLORS[first]
    if "shuffled" in key or "random" in key or "control" in key:
        return GREY
    return SEQUENCE[index % len(SEQUENCE)]
