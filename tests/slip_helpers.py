"""Feeding a clip-slip watch in chunks, shared by the slip tests."""

from __future__ import annotations

import numpy as np

from spinesense.edge.slip import SlipDecision, SlipWatch


def feed_in_chunks(up: np.ndarray, sec: np.ndarray, g: np.ndarray, dyn: np.ndarray,
                   sizes: list[int]) -> tuple[np.ndarray, list[SlipDecision]]:
    """Feed a fresh watch (reference ``up``) chunk sizes cycling through ``sizes``, never
    walking; return the product of its decisions' rotations, and the decisions."""
    watch = SlipWatch(up=up.copy(), forward_sign=1.0)
    total, i, k, decisions = np.eye(3), 0, 0, []
    while i < len(sec):
        n = sizes[k % len(sizes)]
        m = len(sec[i:i + n])
        decisions += watch.feed(sec[i:i + n], g[i:i + n], np.zeros(m, bool), dyn[i:i + n])
        i, k = i + n, k + 1
    for d in decisions:
        total = d.rotation @ total
    return total, decisions
