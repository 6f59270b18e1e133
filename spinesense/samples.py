"""The unit of data between the sensor layer, recordings and the edge pipeline."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class SampleChunk:
    """A run of IMU samples in physical units, in the sensor's own frame.

    ``t`` is seconds on a monotonic time base (the live loop's monotonic clock, or a
    recording's own ``t`` column); ``acc`` is specific force in g, shape (n, 3); ``gyro``
    is angular rate in deg/s, shape (n, 3), or None for accelerometer-only sensors;
    ``saturated`` flags samples where any axis hit its full-scale limit.
    """

    t: np.ndarray
    acc: np.ndarray
    gyro: np.ndarray | None = None
    saturated: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, sl: slice | np.ndarray) -> SampleChunk:
        return SampleChunk(self.t[sl], self.acc[sl],
                           None if self.gyro is None else self.gyro[sl],
                           None if self.saturated is None else self.saturated[sl])

    @staticmethod
    def concat(chunks: list[SampleChunk]) -> SampleChunk:
        gyros = [c.gyro for c in chunks]
        sats = [c.saturated for c in chunks]
        return SampleChunk(
            np.concatenate([c.t for c in chunks]),
            np.concatenate([c.acc for c in chunks]),
            None if any(g is None for g in gyros) else np.concatenate(gyros),
            None if all(s is None for s in sats) else np.concatenate(
                [np.zeros(len(c), bool) if s is None else s for c, s in zip(chunks, sats,
                                                                             strict=True)]),
        )


# Beyond what any supported chip can report (±16 g, ±2000 °/s), with 5 % headroom for
# scale-corrected data: such a sample is a corrupt read or a corrupt file, not motion.
ACC_LIMIT_G = 16.0 * 1.05
GYRO_LIMIT_DPS = 2000.0 * 1.05
NOT_FINITE = "not a number (NaN, inf or empty)"
OVER_SCALE = f"beyond full scale (>{ACC_LIMIT_G:g} g or >{GYRO_LIMIT_DPS:g} deg/s)"


def _within(x: np.ndarray, limit: float) -> bool:
    """All values finite and within ±limit: two reductions, no temporaries (NaN
    propagates through max and min, and inf is beyond any limit)."""
    return bool(x.max() <= limit) and bool(x.min() >= -limit)


class WindowError(ValueError):
    """A calibration window that the data do not cover (one line, with the fix)."""


class SampleGuard:
    """The pipeline's entry check: drops absurd samples and counts them, and checks that a
    calibration window has data.

    A single ``ax=1e300`` or ``NaN`` would otherwise poison the low-pass filters for a
    minute. Dropped samples are reported as ``samples_dropped`` records, one per second
    and reason, in the second of the tick each would have fed (``tick_hz``), so that the
    records, like everything the pipeline emits, do not depend on how input is chunked.
    """

    def __init__(self, tick_hz: int, window: tuple[float, float] | None = None,
                 gap_s: float = 0.5):
        self.tick_hz = tick_hz
        self.window = window
        self.gap_s = gap_s
        self._pending: dict[tuple[int, str], list[float]] = {}   # (second, reason) → [t, n]
        self._held: list[dict] = []
        self._last_t = -np.inf       # latest finite time seen, dropped samples included
        self._first_good: float | None = None
        self._last_good: float | None = None
        self._covered = 0.0          # seconds of the window with data (no gap)

    def clean(self, chunk: SampleChunk) -> SampleChunk:
        """The chunk without absurd samples (cheap when there are none)."""
        if not len(chunk):
            return chunk
        t, acc, gyro = chunk.t, chunk.acc, chunk.gyro
        if _within(acc, ACC_LIMIT_G) and (gyro is None or _within(gyro, GYRO_LIMIT_DPS)) \
                and math.isfinite(t_max := float(t.max())) and math.isfinite(float(t.min())):
            self._last_t = max(self._last_t, t_max)  # the common case: nothing to drop
            if self.window is not None:
                self._cover(t)
            return chunk
        bad_value = ~(np.isfinite(t) & np.isfinite(acc).all(axis=1))
        over = (np.abs(np.nan_to_num(acc)) > ACC_LIMIT_G).any(axis=1)
        if gyro is not None:
            bad_value |= ~np.isfinite(gyro).all(axis=1)
            over |= (np.abs(np.nan_to_num(gyro)) > GYRO_LIMIT_DPS).any(axis=1)
        over &= ~bad_value
        if bad_value.any() or over.any():
            self._count(t, bad_value, NOT_FINITE)
            self._count(t, over, OVER_SCALE)
            chunk = chunk[~(bad_value | over)]  # a boolean mask: contiguous copies
        finite_t = t[np.isfinite(t)]
        if len(finite_t):
            self._last_t = max(self._last_t, float(finite_t.max()))
        if self.window is not None and len(chunk):
            self._cover(chunk.t)
        return chunk

    def _count(self, t: np.ndarray, mask: np.ndarray, reason: str) -> None:
        if not mask.any():
            return
        # a non-finite or backwards time counts at the latest time seen before it
        seen = np.maximum.accumulate(np.concatenate(([self._last_t],
                                                     np.where(np.isfinite(t), t, -np.inf))))
        times = seen[1:][mask]
        times[~np.isfinite(times)] = 0.0
        secs = (np.floor(times * self.tick_hz).astype(np.int64) + 1) // self.tick_hz
        uniq, first, counts = np.unique(secs, return_index=True, return_counts=True)
        for sec, i, n in zip(uniq.tolist(), first.tolist(), counts.tolist(), strict=True):
            entry = self._pending.setdefault((sec, reason), [float(times[i]), 0])
            entry[1] += n

    def take(self, before_sec: int | None, ready: bool) -> list[dict]:
        """``samples_dropped`` records of the seconds before ``before_sec`` (all: None);
        while the pipeline holds its output (``ready`` false), they are held too."""
        done = sorted(k for k in self._pending if before_sec is None or k[0] < before_sec)
        for key in done:
            first_t, count = self._pending.pop(key)
            self._held.append({"type": "samples_dropped", "t": max(first_t, float(key[0])),
                               "count": int(count), "reason": key[1]})
        if not ready:
            return []
        out, self._held = self._held, []
        return out

    # -- calibration window ----------------------------------------------------------
    def _cover(self, t: np.ndarray) -> None:
        a, b = self.window  # type: ignore[misc]
        if self._first_good is None:
            self._first_good = float(t[0])
            if t[0] >= b:
                self._window_error()
        prev = self._last_good
        tt = t if prev is None else np.concatenate(([prev], t))
        if len(tt) > 1 and tt[0] < b and tt[-1] > a:
            lo, hi = np.clip(tt[:-1], a, b), np.clip(tt[1:], a, b)
            step = np.diff(tt)
            self._covered += float(np.sum((hi - lo)[(step > 0) & (step <= self.gap_s)]))
        self._last_good = float(t[-1])
        if (prev is None or prev < b) and self._last_good >= b:
            self.check_window()  # the window has passed: judge it now, not at the end

    def check_window(self) -> None:
        """Raise WindowError unless the data cover most of the calibration window (called
        once data pass its end, and at the end of the data)."""
        if self.window is None or self._first_good is None:
            return
        a, b = self.window
        if self._covered < 0.8 * (b - a):
            self._window_error()

    def _window_error(self) -> None:
        a, b = self.window  # type: ignore[misc]
        first, last = self._first_good, self._last_good
        span = f"the data run from t={first:g} to t={last:g} s" if last is not None else \
            f"the data start at t={first:g} s"
        if last is None or first >= b or last <= a:
            where = "is outside the recording"
        elif first > a or last < b:
            where = f"is only partly inside the recording ({self._covered:.1f} s of data)"
        else:
            where = f"has data for only {self._covered:.1f} of its {b - a:g} s (a gap?)"
        raise WindowError(f"--calibrate {a:g}:{b:g} {where}: {span} (times are in the "
                          "file's own time base); pick a still, upright window inside it")
