"""Walking, per second, from the rhythm of the vertical acceleration.

Gait is a *periodic* vertical movement of the trunk, one cycle per step, whatever its
size: slow walking moves the trunk by millimetres (a band RMS of ~0.02–0.03 g), brisk
walking and stairs by centimetres (0.1–0.3 g). So the rule leans on the rhythm, not on a
step amplitude or a fixed timing:

* the band-passed (`features.STEP_BAND_HZ`) vertical acceleration has an RMS over the
  last 2 s above ``WALK_RMS_G`` (a still or typing wearer reads a few milli-g), and this
  second alone above ``WALK_NOW_G`` (so a walk ends when the steps stop);
* its normalised autocorrelation over the last ``WINDOW_S`` seconds peaks above
  ``MIN_PERIODICITY`` at some lag between ``LAG_S`` (one step: 45–200 steps/min, with
  any step-to-step variation); a reach, a sit-down, a knock or typing is not periodic;
* one such second is walking (waiting for a second one made every bout start late; a
  lone rhythmic second in a chair is kept from ending a slouch in `edge.detectors`).

The autocorrelation is computed only for seconds that pass the energy test (a small
share of a day), on whole windows at once (numpy), with the last ``WINDOW_S`` seconds of
ticks carried across blocks, so the decision does not depend on the chunking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spinesense.edge.filters import TICK_HZ, run_lengths

WALK_RMS_G = 0.01
WALK_NOW_G = 0.01
MIN_PERIODICITY = 0.65
LAG_S = (0.3, 1.35)
WINDOW_S = 4
IN_A_ROW = 1
SUSTAINED_S = 2  # a sit-to-stand can be one rhythmic second: it is not gait evidence


@dataclass
class GaitDetector:
    """Per-second walking decisions with carried state (see the module doc)."""

    _hist_k: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _hist_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _prev: tuple[int, float, int] = (-(10**12), 0.0, 0)  # (sec, mean sq, raw run)
    # per second of the last block: walking for SUSTAINED_S or more (what marks a
    # transition as happening while walking, see `features.FrontEnd.seconds`)
    sustained: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def decide(self, k: np.ndarray, x: np.ndarray, valid: np.ndarray, sec: np.ndarray,
               n: np.ndarray, sumsq: np.ndarray) -> np.ndarray:
        """Walking flag for each second ``sec`` of a block; ``k``/``x``/``valid`` are the
        block's ticks and band-passed vertical acceleration, ``n``/``sumsq`` the valid
        ticks and the sum of squares per second."""
        m = len(sec)
        prev_sec = np.concatenate(([self._prev[0]], sec[:-1]))
        contiguous = sec - prev_sec == 1
        prev_ms = np.concatenate(([self._prev[1]], sumsq[:-1] / np.maximum(n[:-1], 1)))
        ms_now = sumsq / np.maximum(n, 1)
        ms2 = np.where(contiguous, (ms_now + prev_ms) / 2, ms_now)
        energetic = (ms2 > WALK_RMS_G ** 2) & (ms_now > WALK_NOW_G ** 2)
        kk = np.concatenate((self._hist_k, k[valid]))
        xx = np.concatenate((self._hist_x, x[valid]))
        raw = np.zeros(m, bool)
        cand = np.flatnonzero(energetic)
        if len(cand):
            raw[cand] = self._periodic(kk, xx, sec[cand])
        run = run_lengths(raw, contiguous, self._prev[2])
        walking = run >= IN_A_ROW
        self.sustained = run >= SUSTAINED_S
        if m:
            self._prev = (int(sec[-1]), float(ms_now[-1]), int(run[-1]))
        keep = kk >= (int(sec[-1]) + 1 - WINDOW_S) * TICK_HZ if m else kk >= kk.max(
            initial=0) - WINDOW_S * TICK_HZ
        self._hist_k, self._hist_x = kk[keep], xx[keep]
        return walking

    @staticmethod
    def _periodic(kk: np.ndarray, xx: np.ndarray, secs: np.ndarray) -> np.ndarray:
        """Peak normalised autocorrelation at a step lag, per candidate second."""
        w = WINDOW_S * TICK_HZ
        inside = kk >= (int(secs.min()) + 1 - WINDOW_S) * TICK_HZ
        kk, xx = kk[inside], xx[inside]
        k0 = int(kk[0]) if len(kk) else 0
        ends = (secs.astype(np.int64) + 1) * TICK_HZ - k0        # exclusive window ends
        dense = np.zeros(max(int(kk[-1]) - k0 + 1 if len(kk) else 1, int(ends.max())))
        dense[kk - k0] = xx
        starts = ends - w
        pad = max(0, -int(starts.min()))
        if pad:
            dense = np.concatenate((np.zeros(pad), dense))
            starts, ends = starts + pad, ends + pad
        idx = starts[:, None] + np.arange(w)[None, :]
        win = dense[idx]                                           # (c, w)
        win = win - win.mean(axis=1, keepdims=True)
        best = np.full(len(secs), -1.0)
        lo, hi = round(LAG_S[0] * TICK_HZ), round(LAG_S[1] * TICK_HZ)
        for lag in range(lo, hi + 1):
            a, b = win[:, :-lag], win[:, lag:]
            den = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
            r = np.einsum("ij,ij->i", a, b) / np.where(den > 0, den, np.inf)
            np.maximum(best, r, out=best)
        return best > MIN_PERIODICITY
