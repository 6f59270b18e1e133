"""Finding the upright reference in the data itself (replay without a stored calibration).

Upright comes from a given window (``--calibrate START:END``), a stored calibration, or
else the first still stretch (``STILL_S`` seconds with little movement and a steady
gravity direction). The forward axis then follows from the mounting model
(`spinesense.edge.mount.make_calibration`): it needs no evidence, so output is held only
until upright is known. If no still stretch comes within ``wait_s`` (or the data ends),
the mean gravity direction is used and the record says so (``confidence: low``).

The learner sees the data once, second by second in time order, and locks at a second
fixed by the data alone, so chunked and one-shot processing lock identically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spinesense.edge.calibration import (
    Calibration,
    CalibrationError,
    make_calibration,
    still_part,
    unit_or_none,
    upright_from_still,
)
from spinesense.edge.features import SecondFeatures, TickFeatures

STILL_S = 5
STILL_DYN_MG = 25.0
STILL_SPREAD_DEG = 2.0


@dataclass
class AutoCalibrator:
    """Feeds on calibration-free features; ``result`` is set once upright is known."""

    window: tuple[float, float] | None = None
    given_up: np.ndarray | None = None
    up_method: str = ""
    wait_s: float = 600.0
    given_forward: np.ndarray | None = None  # a stored forward axis to reuse
    mount: str = "back-out"
    up: np.ndarray | None = None
    t_first: float | None = None
    result: Calibration | None = None
    _window_acc: list[np.ndarray] = field(default_factory=list)
    _window_t: list[np.ndarray] = field(default_factory=list)
    _still: list[np.ndarray] = field(default_factory=list)
    _still_t0: float = 0.0
    _grav_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _window_up: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.given_up is not None:
            self.up = self.given_up

    def feed(self, tf: TickFeatures, sf: SecondFeatures) -> None:
        """Consume one block; may set ``result``. Raises CalibrationError for a bad window."""
        if self.result is not None or len(sf.sec) == 0:
            return
        if self.t_first is None:
            self.t_first = float(sf.sec[0])
        if self.window is not None and self.up is None and self._window_up is None:
            self._feed_window(tf)
        for i in range(len(sf.sec)):
            s = float(sf.sec[i])
            g = unit_or_none(sf.grav[i])
            if g is not None:
                self._grav_sum += g
            if self.up is None and self._window_up is not None and \
                    s >= math.floor(self.window[1]):  # type: ignore[index]
                self.up = self._window_up  # from the second the window ends, not before
            if self.up is None and self.window is None:
                self._feed_still(s, sf, i)
            if self._try_lock(s + 1):
                return

    def _feed_window(self, tf: TickFeatures) -> None:
        a, b = self.window  # type: ignore[misc]
        t = tf.t
        sel = tf.valid & (t >= a) & (t <= b)
        sel &= np.isfinite(tf.fast).all(axis=1)
        if sel.any():
            self._window_acc.append(tf.fast[sel])
            self._window_t.append(t[sel])
        if len(t) and t[-1] >= b:
            acc = np.concatenate(self._window_acc) if self._window_acc else np.zeros((0, 3))
            ts = np.concatenate(self._window_t) if self._window_t else np.zeros(0)
            try:
                part = still_part(acc)
                self._window_up = upright_from_still(acc[part])
            except CalibrationError as exc:
                raise CalibrationError(f"calibration window {a:.12g}:{b:.12g}: {exc}") from None
            self.up_method = f"window {a:.12g}-{b:.12g} s"
            if part.stop - part.start < len(acc):  # the user sees which part was used
                self.up_method += (f" (its still part {ts[part.start] - a:.1f}-"
                                   f"{ts[part.stop - 1] - a:.1f} s into it; the wearer "
                                   "settled or moved in the rest)")
            self._window_acc, self._window_t = [], []

    def _feed_still(self, s: float, sf: SecondFeatures, i: int) -> None:
        g = unit_or_none(sf.grav[i])
        still = (g is not None and sf.dyn_rms[i] < STILL_DYN_MG and not sf.walking[i]
                 and sf.n[i] >= 20)
        if still and self._still:
            ref = unit_or_none(np.mean(self._still, axis=0))
            if ref is None or math.degrees(math.acos(min(1.0, float(g @ ref)))) \
                    > STILL_SPREAD_DEG or s != self._still_t0 + len(self._still):
                self._still = []
        if not still:
            self._still = []
            return
        if not self._still:
            self._still_t0 = s
        self._still.append(g)
        if len(self._still) >= STILL_S:
            self.up = unit_or_none(np.mean(self._still, axis=0))
            self.up_method = f"first still stretch {self._still_t0:.12g}-{s + 1:.12g} s"

    def _try_lock(self, t_now: float, *, final: bool = False) -> bool:
        timed_out = self.t_first is not None and t_now - self.t_first >= self.wait_s
        confidence = "normal"
        if self.up is None:
            up = unit_or_none(self._grav_sum)
            if not (final or timed_out) or up is None:
                return False
            self.up, self.up_method = up, "mean direction (no still stretch found)"
            confidence = "low"
        self.result = make_calibration(self.up, self.up_method or "given", self.mount,
                                       window=self.window, locked_t=t_now,
                                       given_forward=self.given_forward,
                                       up_confidence=confidence)
        return True

    def finish(self, t_now: float) -> Calibration | None:
        """At the end of the data (or the waiting limit): use what there is."""
        if self.result is None and self.window is not None and self.up is None \
                and self._window_up is None:
            a, b = self.window
            raise CalibrationError(f"calibration window {a:.12g}:{b:.12g}: outside the recording "
                                   f"(it ends at {t_now:.12g} s)")
        if self.result is None:
            if self.up is None and self._window_up is not None:
                self.up = self._window_up
            self._try_lock(t_now, final=True)
        return self.result
