"""Learning the calibration from the data itself (replay without a stored calibration).

Upright comes from a given window (``--calibrate START:END``), or else from the first
still stretch (``STILL_S`` seconds with little movement and a steady gravity direction).

The forward axis comes from behaviour that only goes one way:

* sit-to-stand and stand-to-sit: the trunk leans *forward* to bring the weight over the
  feet, together with a vertical push or drop of the hips (weight 1 each);
* walking: the trunk leans slightly forward of its standing/sitting upright (weight 1
  once ``WALK_S`` seconds of walking lean at least ``WALK_LEAN_DEG``);
* brief deep excursions that come back within ``BRIEF_S`` seconds (reaching for
  something, the guided lean): people reach forward, not backward (weight 0.5).

Each piece of evidence is a unit direction perpendicular to upright; the forward axis is
their weighted mean once the total weight reaches ``LOCK_WEIGHT`` and they agree
(coherence ``MIN_COHERENCE``). If that never happens within ``wait_s`` (or the data ends),
whatever evidence exists is used and the record says so (``confidence: low``).

The learner sees the data once, second by second in time order, and locks at a second
fixed by the data alone, so chunked and one-shot processing lock identically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinesense.edge.calibration import Calibration, CalibrationError, upright_from_still
from spinesense.edge.features import SecondFeatures, TickFeatures

STILL_S = 5
STILL_DYN_MG = 25.0
STILL_SPREAD_DEG = 2.0
WALK_S = 20
WALK_LEAN_DEG = 1.5
BRIEF_S = 8
BRIEF_MIN_DEG = 15.0
BRIEF_BASE_DEG = 8.0
LOCK_WEIGHT = 2.0
MIN_COHERENCE = 0.7


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 and math.isfinite(n) else None


@dataclass
class Evidence:
    t: float
    source: str
    direction: np.ndarray
    weight: float


@dataclass
class AutoCalibrator:
    """Feeds on calibration-free features; ``result`` is set once both axes are known."""

    window: tuple[float, float] | None = None
    given_up: np.ndarray | None = None
    up_method: str = ""
    wait_s: float = 600.0
    given_forward: np.ndarray | None = None  # a stored forward axis to reuse
    up: np.ndarray | None = None
    t_first: float | None = None
    evidence: list[Evidence] = field(default_factory=list)
    result: Calibration | None = None
    _window_acc: list[np.ndarray] = field(default_factory=list)
    _still: list[np.ndarray] = field(default_factory=list)
    _still_t0: float = 0.0
    _walk_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _walk_n: int = 0
    _grav_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _window_up: np.ndarray | None = None
    _ex_len: int = 0
    _ex_peak: float = 0.0
    _ex_g: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _pending_transitions: list[Any] = field(default_factory=list)

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
        self._pending_transitions += sf.transitions
        for i in range(len(sf.sec)):
            s = float(sf.sec[i])
            g = _unit(sf.grav[i])
            if g is not None:
                self._grav_sum += g
            if self.up is None and self._window_up is not None and \
                    s >= math.floor(self.window[1]):  # type: ignore[index]
                self.up = self._window_up  # from the second the window ends, not before
            if self.up is None and self.window is None:
                self._feed_still(s, sf, i)
            if self.up is not None:
                if self.given_forward is not None and not self.evidence:
                    self._add(s, "stored calibration", self.given_forward, LOCK_WEIGHT)
                while self._pending_transitions and self._pending_transitions[0].t < s + 1:
                    tr = self._pending_transitions.pop(0)
                    self._add(tr.t, tr.kind, tr.direction, 1.0)
                self._feed_walk(s, sf, i)
                self._feed_excursion(s, sf, i)
                if self._try_lock(s + 1):
                    return
            else:
                if self._try_lock(s + 1):
                    return
                if self.window is None:
                    self._pending_transitions = [x for x in self._pending_transitions
                                                 if x.t >= s + 1 - 60]

    # -- upright ---------------------------------------------------------------------
    def _feed_window(self, tf: TickFeatures) -> None:
        a, b = self.window  # type: ignore[misc]
        t = tf.t
        sel = tf.valid & (t >= a) & (t <= b)
        if sel.any():
            self._window_acc.append(tf.fast[sel])
        if len(t) and t[-1] >= b:
            acc = np.concatenate(self._window_acc) if self._window_acc else np.zeros((0, 3))
            try:
                self._window_up = upright_from_still(acc)
            except CalibrationError as exc:
                raise CalibrationError(f"calibration window {a:g}:{b:g}: {exc}") from None
            self.up_method = f"window {a:g}-{b:g} s"
            self._window_acc = []

    def _feed_still(self, s: float, sf: SecondFeatures, i: int) -> None:
        g = _unit(sf.grav[i])
        still = (g is not None and sf.dyn_rms[i] < STILL_DYN_MG and not sf.walking[i]
                 and sf.n[i] >= 20)
        if still and self._still:
            ref = _unit(np.mean(self._still, axis=0))
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
            self.up = _unit(np.mean(self._still, axis=0))
            self.up_method = f"first still stretch {self._still_t0:g}-{s + 1:g} s"

    # -- forward ---------------------------------------------------------------------
    def _perp(self, d: np.ndarray) -> np.ndarray | None:
        up = self.up
        assert up is not None
        return _unit(d - (d @ up) * up) if np.isfinite(d).all() else None

    def _add(self, t: float, source: str, d: np.ndarray, weight: float) -> None:
        p = self._perp(d)
        if p is not None:
            self.evidence.append(Evidence(t, source, p, weight))

    def _tilt(self, g: np.ndarray) -> float:
        gu = _unit(g)
        if gu is None or self.up is None:
            return 0.0
        return math.degrees(math.acos(max(-1.0, min(1.0, float(gu @ self.up)))))

    def _feed_walk(self, s: float, sf: SecondFeatures, i: int) -> None:
        if not sf.walking[i]:
            return
        g = _unit(sf.grav[i])
        if g is None:
            return
        self._walk_sum += g
        self._walk_n += 1
        if self._walk_n >= WALK_S:
            mean = _unit(self._walk_sum)
            if mean is not None and self._tilt(mean) >= WALK_LEAN_DEG:
                self._add(s + 1, "walking", mean - self.up, 1.0)  # type: ignore[operator]
            self._walk_sum = np.zeros(3)
            self._walk_n = 0

    def _feed_excursion(self, s: float, sf: SecondFeatures, i: int) -> None:
        tilt = self._tilt(sf.grav[i])
        if tilt > BRIEF_BASE_DEG:
            self._ex_len += 1
            if tilt > self._ex_peak:
                self._ex_peak, self._ex_g = tilt, sf.grav[i].copy()
            return
        if 0 < self._ex_len <= BRIEF_S and self._ex_peak >= BRIEF_MIN_DEG:
            g = self._ex_g / np.linalg.norm(self._ex_g)
            self._add(s, "brief lean", g - self.up, 0.5)  # type: ignore[operator]
        self._ex_len, self._ex_peak = 0, 0.0

    def _try_lock(self, t_now: float, *, final: bool = False) -> bool:
        timed_out = self.t_first is not None and t_now - self.t_first >= self.wait_s
        if self.up is None:
            up = _unit(self._grav_sum)
            if not (final or timed_out) or up is None:
                return False
            self.up, self.up_method = up, "mean direction (no still stretch found)"
        total = sum(e.weight for e in self.evidence)
        vec = sum((e.weight * e.direction for e in self.evidence), np.zeros(3))
        coherence = float(np.linalg.norm(vec)) / total if total else 0.0
        ok = total >= LOCK_WEIGHT and coherence >= MIN_COHERENCE
        if not (ok or final or timed_out):
            return False
        sources = sorted({e.source for e in self.evidence})
        confidence = "normal" if ok else "low"
        if coherence < 0.1:  # no usable evidence: any direction, said loudly
            helper = np.eye(3)[int(np.argmin(np.abs(self.up)))]
            vec = np.cross(self.up, helper)
            forward_method, confidence = "unknown (no forward evidence: sign arbitrary)", \
                "none"
        else:
            forward_method = "learned from " + ", ".join(sources)
        self.result = Calibration(
            up=self.up, forward=vec, method=self.up_method or "given",
            forward_method=forward_method, window=self.window,
            info={"locked_t": t_now, "evidence": len(self.evidence),
                  "weight": round(total, 2), "coherence": round(coherence, 3),
                  "confidence": confidence})
        return True

    def finish(self, t_now: float) -> Calibration | None:
        """At the end of the data (or the waiting limit): use what there is."""
        if self.result is None and self.window is not None and self.up is None \
                and self._window_up is None:
            a, b = self.window
            raise CalibrationError(f"calibration window {a:g}:{b:g}: outside the recording "
                                   f"(it ends at {t_now:g} s)")
        if self.result is None:
            if self.up is None and self._window_up is not None:
                self.up = self._window_up
            self._try_lock(t_now, final=True)
        return self.result
