"""Periodic summaries (type ``metric``) every ``metrics.interval_s``.

Intervals sit on an absolute grid (``[n·I, (n+1)·I)`` in the input's time base). Each
interval is summarised from per-second rows once it is complete; the rows of the
current interval are kept (at most I of them), so the numbers do not depend on how the
data was chunked. Flexion sums are exact integers (1e-4 degree units).
"""

from __future__ import annotations

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
        first = np.flatnonzero(np.concatenate(([True], iv[1:] != iv[:-1])))
        ends = (iv[first] + 1) * self.interval_s
        done = np.array([complete(float(e)) for e in ends], bool)
        n_done = int(np.argmin(done)) if not done.all() else len(done)
        keep_from = int(first[n_done]) if n_done < len(first) else len(iv)
        out = _summaries(allr, first[:n_done], keep_from, ends[:n_done]) if n_done else []
        rest = SecondRows(*(getattr(allr, f)[keep_from:] for f in ROW_FIELDS))
        self._rows = [rest] if len(rest.sec) else []
        return out


def _summaries(r: SecondRows, first: np.ndarray, stop: int,
               ends: np.ndarray) -> list[dict[str, Any]]:
    """One summary per interval; intervals start at ``first`` (rows before ``stop``)."""
    r = SecondRows(*(getattr(r, f)[:stop] for f in ROW_FIELDS))

    def total(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(x, first)

    secs = np.diff(np.append(first, stop))
    ticks = np.maximum(total(r.n), 1)
    flex_mean = total(r.flex_sum) / ticks / Q
    flex_max = np.maximum.reduceat(r.flex_max, first)
    lat_mean = total(r.lat_sum) / ticks / Q
    slouch = total(r.slouch_ticks) / TICK_HZ
    onehot = np.zeros((len(r.posture), len(POSTURES)), np.int64)
    onehot[np.arange(len(r.posture)), r.posture] = 1
    counts = np.add.reduceat(onehot, first, axis=0)
    steps = total(r.steps)
    walking = counts[:, POSTURES.index("walking")]
    cadence = np.where(walking > 0, 60.0 * steps / np.maximum(walking, 1), 0.0)
    intensity = np.sqrt(total(r.dyn_sq) / ticks)
    last = np.append(first[1:], stop) - 1
    bout = r.bout_start[last]
    bout_s = np.where(np.isnan(bout), 0.0, np.minimum(ends, r.sec[last] + 1) - bout)
    dominant = np.argmax(counts, axis=1)
    out = []
    for i in range(len(first)):
        rec: dict[str, Any] = {
            "type": "metric", "t": float(ends[i]), "interval_s": int(secs[i]),
            "flexion_mean": round(float(flex_mean[i]), 2),
            "flexion_max": round(float(flex_max[i]), 2),
            "lateral_mean": round(float(lat_mean[i]), 2),
            "slouch_s": round(float(slouch[i]), 2)}
        for j, name in enumerate(POSTURES):
            rec[f"{name}_s"] = int(counts[i, j])
        rec |= {"steps": int(steps[i]), "cadence_spm": round(float(cadence[i]), 1),
                "intensity": round(float(intensity[i]), 2),
                "bout_s": round(float(bout_s[i]), 1), "posture": POSTURES[int(dominant[i])]}
        out.append(rec)
    return out
