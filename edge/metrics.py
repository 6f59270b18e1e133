"""Periodic summaries (type ``metric``) every ``metrics.interval_s``.

Intervals sit on an absolute grid (``[n·I, (n+1)·I)`` in the input's time base). Each
interval is summarised from per-second rows once it is complete; the rows of the
current interval are kept (at most I of them), so the numbers do not depend on how the
data was chunked. Flexion sums are exact integers (1e-4 degree units).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from spinesense.edge.activity import POSTURES
from spinesense.edge.filters import TICK_HZ
from spinesense.edge.slouch import Q

ROW_FIELDS = ("sec", "n", "flex_sum", "flex_max", "lat_sum", "slouch_ticks", "posture",
              "steps", "dyn_sq", "bout_start")


@dataclass
class SecondRows:
    """Per-second values of one block, everything the summaries need."""

    sec: np.ndarray
    n: np.ndarray           # valid ticks
    flex_sum: np.ndarray    # int64, 1e-4 degrees
    flex_max: np.ndarray
    lat_sum: np.ndarray     # int64, 1e-4 degrees
    slouch_ticks: np.ndarray
    posture: np.ndarray     # codes into POSTURES
    steps: np.ndarray
    dyn_sq: np.ndarray      # sum of squared dynamic acceleration (milli-g²)
    bout_start: np.ndarray  # NaN outside a sedentary bout


@dataclass
class MetricsAggregator:
    interval_s: float = 10.0
    _rows: list[SecondRows] = field(default_factory=list)

    def _interval(self, sec: np.ndarray) -> np.ndarray:
        return np.floor(sec / self.interval_s).astype(np.int64)

    def add(self, rows: SecondRows, frontier_sec: int) -> list[dict[str, Any]]:
        """Add a block's rows; return summaries of intervals complete up to
        ``frontier_sec`` (the last second that can no longer receive data)."""
        if len(rows.sec):
            self._rows.append(rows)
        return self._emit(lambda end: math.ceil(end) - 1 <= frontier_sec)

    def flush(self) -> list[dict[str, Any]]:
        return self._emit(lambda end: True)

    def _emit(self, complete: Any) -> list[dict[str, Any]]:
        if not self._rows:
            return []
        allr = SecondRows(*(np.concatenate([getattr(r, f) for r in self._rows])
                            for f in ROW_FIELDS))
        iv = self._interval(allr.sec)
        out: list[dict[str, Any]] = []
        bounds = np.flatnonzero(np.concatenate(([True], iv[1:] != iv[:-1], [True])))
        keep_from = len(iv)
        for a, b in itertools.pairwise(bounds):
            end = float((iv[a] + 1) * self.interval_s)
            if not complete(end):
                keep_from = a
                break
            out.append(_summary(allr, slice(a, b), end))
        rest = SecondRows(*(getattr(allr, f)[keep_from:] for f in ROW_FIELDS))
        self._rows = [rest] if len(rest.sec) else []
        return out


def _summary(r: SecondRows, sl: slice, end: float) -> dict[str, Any]:
    n = r.n[sl]
    ticks = int(n.sum())
    posture = r.posture[sl]
    counts = np.bincount(posture, minlength=len(POSTURES))
    steps = int(r.steps[sl].sum())
    walking_s = int(counts[POSTURES.index("walking")])
    bout = r.bout_start[sl][-1]
    last_sec = int(r.sec[sl][-1]) + 1
    rec: dict[str, Any] = {
        "type": "metric", "t": end, "interval_s": len(n),
        "flexion_mean": round(int(r.flex_sum[sl].sum()) / max(ticks, 1) / Q, 2),
        "flexion_max": round(float(np.max(r.flex_max[sl])), 2),
        "lateral_mean": round(int(r.lat_sum[sl].sum()) / max(ticks, 1) / Q, 2),
        "slouch_s": round(int(r.slouch_ticks[sl].sum()) / TICK_HZ, 2),
    }
    for i, name in enumerate(POSTURES):
        rec[f"{name}_s"] = int(counts[i])
    rec |= {
        "steps": steps,
        "cadence_spm": round(60.0 * steps / walking_s, 1) if walking_s else 0.0,
        "intensity": round(math.sqrt(float(np.sum(r.dyn_sq[sl])) / max(ticks, 1)), 2),
        "bout_s": 0.0 if math.isnan(bout) else round(min(end, last_sec) - float(bout), 1),
        "posture": POSTURES[int(np.argmax(counts))],
    }
    return rec
