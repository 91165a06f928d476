"""Test doubles shared by several test modules."""

from __future__ import annotations

import numpy as np

from emowork.judge import Judge


class LengthJudge(Judge):
    """Scores a reply 0.9 for the emotion at index ``len(text) % 6``: arbitrary but deterministic and cheap."""

    name, version, threshold = "length", "test", 0.5

    def scores(self, texts):
        out = np.zeros((len(texts), 6))
        for i, t in enumerate(texts):
            out[i, len(t) % 6] = 0.9
        return out


def refuse_network(page) -> list[str]:
    """Make a Playwright ``page`` refuse every request that is not a local file, data or blob URL; returns the list
    the refused URLs are appended to (so a test can assert nothing was fetched)."""
    refused: list[str] = []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            return r.continue_()
        refused.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    return refused
