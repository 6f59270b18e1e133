"""A simulated wearer who gives feedback by a known rule (for the feedback-to-tune tests).

Their own sense of slouching is the simulator's truth under *their* label parameters
(e.g. 20° rather than the device's 15°). Each device alert whose episode overlaps none of
their true episodes is a false alarm, marked with a short press with probability
``p_false`` some seconds after the buzz; each true episode the device missed gets a
"slouching now" press with probability ``p_missed`` while it lasts. The press becomes an
event through the edge's own code (``AlertMemory``), as on the device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from spinesense.edge.feedback import ALERT_TYPES, AlertMemory


def _overlaps(lo: float, hi: float, intervals: list[tuple[float, float]]) -> bool:
    return any(a < hi and lo < b for a, b in intervals)


def wearer_feedback(records: list[dict[str, Any]], truth: dict[str, Any], *, seed: int,
                    p_false: float = 0.9, p_missed: float = 0.5,
                    window_s: float = 60.0) -> list[dict[str, Any]]:
    """Feedback events (recording time base) for the device's ``records``."""
    rng = np.random.default_rng(seed)
    device = [(r["onset"], r["alert_t"], r["t"]) for r in records if r["type"] == "slouch_end"]
    true = [(e["onset"], e["alert"], e["end"]) for e in truth["slouch_episodes"]]
    memory = AlertMemory(window_s)
    memory.observe(sorted((r for r in records if r["type"] in ALERT_TYPES),
                          key=lambda r: r["t"]))
    out = []
    for onset, alert, end in device:
        if not _overlaps(onset, end, [(a, b) for a, _, b in true]) and rng.random() < p_false:
            out.append(memory.short_press(alert + rng.uniform(2.0, 15.0)))
    for onset, alert, end in true:
        if not _overlaps(onset, end, [(a, b) for a, _, b in device]) and \
                rng.random() < p_missed:
            out.append(memory.record("missed_slouch",
                                     alert + rng.uniform(0.0, min(30.0, end - alert))))
    return sorted(out, key=lambda r: r["t"])


def write_sidecar(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path
