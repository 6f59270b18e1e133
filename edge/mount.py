"""The mounting model and what the data says about it (DESIGN A3).

`edge.calibration.make_calibration` turns an upright direction into a complete
calibration: the board lies flat on the back, so its z axis is the back's normal, and
``[sensor] mount`` says which way it points. Forward needs no learning, only its sign
with ``mount = "auto"``.

`MountTracker` then watches the data, second by second, for the whole day:

* **Evidence for the facing.** Behaviour that only goes one way leans the trunk
  *forward*: every sit-to-stand and stand-to-sit (weight 1), brief deep excursions that
  come back within ``BRIEF_S`` (reaches; weight 0.5), and walking (a slight forward
  lean; weight 0.2 per ``WALK_WINDOW_S`` of walking, at most ``WALK_MAX_WEIGHT`` in all,
  since the calibrated upright may have been slumped or reclined). Each piece is the
  direction gravity's reaction swung, perpendicular to upright; a piece that is mostly
  sideways (a side lean) is not counted. ``agreement`` is the weighted mean of their
  components along the configured forward axis (+1: all agree, −1: all reversed).
* With a configured facing, strong disagreement (``agreement <= WARN_AGREEMENT`` over
  ``WARN_WEIGHT`` or more) raises one ``mount_warning``; slouch is then judged either
  way (never inverted) until the evidence agrees again.
* With ``auto``, the sign is taken once ``SURE_WEIGHT`` of evidence agrees by
  ``SURE_AGREEMENT``; below ``UNSURE_AGREEMENT`` it is given up again. Every change is a
  new ``calibrated`` record: a decision is revisited as evidence grows, never locked.
* **Clip slips** are found by `edge.slip.SlipWatch` (a lateral offset that every posture
  keeps); the tracker applies its re-anchoring: upright turns by the slip's rotation and
  forward follows from the board normal (a ``clip_moved`` and a ``calibrated`` record;
  a later refinement, or a provisional re-anchoring on a sharp jump, only a
  ``calibrated`` one). A first walk far (``stale_deg``) from
  the calibrated upright means the calibration was wrong: ``calibration_stale``, and
  upright is re-anchored on walking.

Changes take effect from the second after the one that decided them, so the result does
not depend on how the input was cut into chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinesense.edge.calibration import (
    MAX_NORMAL_TILT_DEG,
    Calibration,
    angle_deg,
    board_axis,
    calibrated_record,
    normal_to_upright_deg,
    orthogonal_forward,
    unit_or_none,
)
from spinesense.edge.features import SecondFeatures
from spinesense.edge.filters import run_lengths
from spinesense.edge.slip import SlipDecision, SlipWatch, rotation_between

BRIEF_S = 8
BRIEF_MIN_DEG = 15.0
BRIEF_BASE_DEG = 8.0
WALK_WINDOW_S = 20
WALK_RUN_S = 8              # only sustained walking counts (not a few rhythmic seconds)
WALK_LEAN_DEG = 1.5
WALK_WEIGHT = 0.2
WALK_MAX_WEIGHT = 1.0
WALK_MAX_LEAN_DEG = 28.0    # stairs up lean the trunk forward by up to ~24°
WALK_MAX_SIDE_DEG = 10.0    # ... and a bag sideways by up to ~9°
SIDEWAYS_COS = 0.5          # evidence less than 60° from the sagittal axis counts
TRANSITION_BEFORE_S = 6     # a transition's lean is looked for this long before its time
TRANSITION_AFTER_S = 4      # ... and this long after (so its evidence waits that long)
HISTORY_S = 60              # per-second gravity kept for that look-back
WARN_WEIGHT = 4.0
WARN_AGREEMENT = -0.6
RECOVER_AGREEMENT = 0.3
SURE_WEIGHT = 2.5
SURE_AGREEMENT = 0.6
UNSURE_AGREEMENT = 0.4


@dataclass
class Change:
    sec_from: int                 # first second that uses the new calibration
    cal: Calibration | None
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MountTracker:
    """Evidence about the facing, and clip slips; see the module doc."""

    cal: Calibration
    mount: str
    stale_deg: float = 20.0
    ref: np.ndarray = field(init=False)       # sagittal axis the evidence is scored on
    score: float = 0.0
    weight: float = 0.0
    walk_weight: float = 0.0
    n: int = 0
    warned: bool = False
    _pending: list[Any] = field(default_factory=list)
    _ex_len: int = 0
    _ex_peak: float = 0.0
    _ex_g: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _walk_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _walk_n: int = 0
    _walked: bool = False          # the first walk (the stale check) was seen
    _stale_sec: int | None = None  # ... and re-anchored upright in this second
    slip: SlipWatch | None = field(init=False)  # None: the board is not on the back
    _slips: list[SlipDecision] = field(default_factory=list)  # decided, not yet applied
    _run: int = 0                 # consecutive walking seconds
    _last_sec: int = -(10**12)
    _hist_sec: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _hist_g: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def __post_init__(self) -> None:
        assert self.cal.forward is not None
        self.ref = self.cal.forward.copy()  # auto: the back-out guess, +z projected
        # a slip is a turn about the board normal: without a board lying on the back
        # (a sensor on a desk, z up) there is no such axis and nothing to watch
        on_back = normal_to_upright_deg(self.cal.up) >= 90.0 - MAX_NORMAL_TILT_DEG
        sign = (1.0 if float(self.cal.forward @ board_axis(self.cal.up)) >= 0 else -1.0) \
            if self.cal.signed else None
        self.slip = SlipWatch(up=self.cal.up.copy(), forward_sign=sign) if on_back else None

    @property
    def agreement(self) -> float:
        return self.score / self.weight if self.weight else 0.0

    def feed(self, sf: SecondFeatures) -> list[Change]:
        """Consume one block of seconds; return the changes it decided, in order.

        Only the seconds where something can happen are visited in Python (tilted away
        from upright or just back, sustained walking, a transition, right after a
        re-anchoring); the others are no-ops for every rule, so the result is the same
        as visiting each second, at a fraction of the cost."""
        changes: list[Change] = []
        self._pending += sf.transitions
        m = len(sf.sec)
        if m == 0:
            return changes
        sec = sf.sec.astype(np.int64)
        prev = np.concatenate(([self._last_sec], sec[:-1]))
        run = run_lengths(sf.walking.astype(bool), sec - prev == 1, self._run)
        norms = np.linalg.norm(sf.grav, axis=1)
        gu = sf.grav / np.where(norms > 0, norms, 1.0)[:, None]
        if self.slip is not None:
            self._slips += self.slip.feed(sec, gu, sf.walking.astype(bool), sf.dyn_rms)
        self._hist_sec = np.concatenate((self._hist_sec, sec))
        self._hist_g = np.concatenate((self._hist_g, gu))
        marks = np.zeros(m, bool)
        marks[run >= WALK_RUN_S] = True
        for dec in self._slips:  # applied before the first second after its window
            j = int(np.searchsorted(sec, dec.sec, side="right"))
            if j < m:
                marks[j] = True
        for tr in self._pending:  # counted once the seconds after it are in
            j = int(np.searchsorted(sec, int(np.floor(tr.t)) + TRANSITION_AFTER_S))
            if j < m:
                marks[j] = True
        start, force_first = 0, False
        while start < m:
            tilt = np.degrees(np.arccos(np.clip(gu[start:] @ self.cal.up, -1.0, 1.0)))
            above = tilt > BRIEF_BASE_DEG
            was_above = np.concatenate(([self._ex_len > 0], above[:-1]))
            active = (~above & was_above) | marks[start:]  # excursion ends, and marks
            if force_first:
                active[0] = True
            force_first = False
            nxt, done = m, 0  # done: segment seconds already accounted for
            for j in np.flatnonzero(active):
                self._skip(tilt[done:j], sf.grav[start + done:start + j])
                i = start + int(j)
                s = int(sec[i])
                if self._slips and self._slips[0].sec < s:
                    while self._slips and self._slips[0].sec < s:
                        changes.append(self._slipped(self._slips.pop(0)))
                    nxt, force_first = i, True  # this second again, on the new upright
                    break
                done = int(j) + 1
                while self._pending and \
                        int(np.floor(self._pending[0].t)) + TRANSITION_AFTER_S <= s:
                    tr = self._pending.pop(0)
                    if not tr.while_walking:  # stairs lift the hips too, at any lean
                        self._transition(tr)
                self._excursion(sf.grav[i], s)
                self._run = int(run[i])
                stale = self._walking(sf, i, s) if self._run >= WALK_RUN_S else None
                change = stale or self._decide(s)
                if change is not None:
                    changes.append(change)
                if stale is not None:  # upright moved: tilts from here on change too
                    nxt, force_first = i + 1, True
                    break
            else:
                self._skip(tilt[done:], sf.grav[start + done:])
            start = nxt
        self._run, self._last_sec = int(run[-1]), int(sec[-1])
        keep = int(np.searchsorted(self._hist_sec, self._last_sec - HISTORY_S))
        self._hist_sec, self._hist_g = self._hist_sec[keep:], self._hist_g[keep:]
        return changes

    # -- evidence --------------------------------------------------------------------
    def _perp(self, d: np.ndarray) -> np.ndarray | None:
        up = self.cal.up
        return unit_or_none(d - (d @ up) * up) if np.isfinite(d).all() else None

    def _evidence(self, d: np.ndarray, w: float) -> None:
        p = self._perp(d)
        if p is None:
            return
        c = float(p @ self.ref)
        if abs(c) < SIDEWAYS_COS:
            return  # mostly sideways: says nothing about the sign
        self.score += w * c
        self.weight += w
        self.n += 1

    def _transition(self, tr: Any) -> None:
        """A sit-to-stand or stand-to-sit leans the trunk forward and back. The push
        detector's swing direction is taken where the push was; when its time is off by a
        second or two it catches the trunk coming *back* from the lean (a backward swing:
        a seventh of all transitions on the development days). So the lean is also looked
        for in the seconds around it, as the second farthest from the line between the
        window's two ends (upright sitting and standing; a sofa's recline at one end only
        moves the line), and the transition counts only when both say the same."""
        t0 = int(np.floor(tr.t))
        a, b = np.searchsorted(self._hist_sec, [t0 - TRANSITION_BEFORE_S,
                                                 t0 + TRANSITION_AFTER_S + 1])
        if b - a < 3:
            return
        win = self._hist_g[a:b]
        base = unit_or_none(win[0] + win[-1])
        p_push, p_lean = self._perp(tr.direction), None
        if base is not None:
            j = int(np.argmin(win @ base))
            p_lean = self._perp(win[j] - base)
        if p_push is None or p_lean is None:
            return
        c_lean = float(p_lean @ self.ref)
        if abs(c_lean) < SIDEWAYS_COS or float(p_push @ self.ref) * c_lean <= 0.0:
            return
        self._evidence(tr.direction, 1.0)

    def _tilt(self, g: np.ndarray) -> float:
        gu = unit_or_none(g)
        return 0.0 if gu is None else math.degrees(math.acos(max(-1.0, min(
            1.0, float(gu @ self.cal.up)))))

    def _skip(self, tilt: np.ndarray, grav: np.ndarray) -> None:
        """Seconds not visited: inside an excursion (tilted) or quiet. Only the
        excursion's length and peak change."""
        if not len(tilt):
            return
        up = tilt > BRIEF_BASE_DEG
        if not up.any():
            return
        self._ex_len += int(up.sum())
        j = int(np.argmax(np.where(up, tilt, -1.0)))
        if tilt[j] > self._ex_peak:
            self._ex_peak, self._ex_g = float(tilt[j]), grav[j].copy()

    def _excursion(self, g: np.ndarray, s: int) -> None:
        tilt = self._tilt(g)
        if tilt > BRIEF_BASE_DEG:
            self._ex_len += 1
            if tilt > self._ex_peak:
                self._ex_peak, self._ex_g = tilt, g.copy()
            return
        if 0 < self._ex_len <= BRIEF_S and self._ex_peak >= BRIEF_MIN_DEG:
            gu = unit_or_none(self._ex_g)
            if gu is not None:
                self._evidence(gu - self.cal.up, 0.5)
        self._ex_len, self._ex_peak = 0, 0.0

    def _walking(self, sf: SecondFeatures, i: int, s: int) -> Change | None:
        g = unit_or_none(sf.grav[i])
        if g is None:
            return None
        self._walk_sum += g
        self._walk_n += 1
        if self._walk_n < WALK_WINDOW_S:
            return None
        mean = unit_or_none(self._walk_sum)
        self._walk_sum, self._walk_n = np.zeros(3), 0
        if mean is None:
            return None
        off = angle_deg(mean, self.cal.up)
        if not self._walked:
            self._walked = True
            if off > self.stale_deg and not self._walking_lean(mean):
                # the calibration is wrong, or the clip moved early
                return self._stale(s, rotation_between(self.cal.up, mean), off)
        if self.walk_weight < WALK_MAX_WEIGHT and off >= WALK_LEAN_DEG:
            self.walk_weight += WALK_WEIGHT
            self._evidence(mean - self.cal.up, WALK_WEIGHT)
        return None

    def _walking_lean(self, mean: np.ndarray) -> bool:
        """Walking that leans forward, not sideways, by no more than stairs do: a
        person's gait on a right calibration, not a stale one. With the sign not known
        yet (``mount = "auto"``) a sagittal lean of that size either way counts: stairs
        up must not re-anchor a right upright onto a 20° lean."""
        flex, lat = self.cal.angles(mean[None])
        f = float(flex[0]) if self.cal.signed else abs(float(flex[0]))
        return 0.0 <= f <= WALK_MAX_LEAN_DEG and abs(float(lat[0])) <= WALK_MAX_SIDE_DEG

    def _slipped(self, dec: SlipDecision) -> Change:
        """Re-anchor on a clip slip (`edge.slip`): upright turns by the slip's rotation;
        forward follows from the board normal (or, for a guided forward axis, turns
        with it)."""
        old, rot = self.cal, dec.rotation
        assert old.forward is not None
        if dec.up is not None and self._stale_sec is not None and \
                self._stale_sec >= (dec.since or 0):
            # the stale check fired on a walk after this very slip: the watch's upright
            # replaces it (turning it by the slip would count the slip twice)
            rot, self._stale_sec = rotation_between(old.up, dec.up), None
        up = rot @ old.up
        if "board normal" in old.forward_method:
            sign = 1.0 if float(old.forward @ board_axis(old.up)) >= 0 else -1.0
            fwd = sign * board_axis(up)
        else:
            fwd = orthogonal_forward(up, rot @ old.forward)
        sign_ref = 1.0 if float(self.ref @ board_axis(old.up)) >= 0 else -1.0
        t = float(dec.sec + 1)
        how = "refined" if dec.refined else "provisionally re-anchored (a sharp turn)" \
            if dec.provisional else "re-anchored"
        cal = Calibration(up=up, forward=fwd, method=f"{how} after a clip slip at {t:g} s",
                          forward_method=old.forward_method, window=old.window,
                          facing=old.facing, signed=old.signed, info=dict(old.info))
        self.cal, self.ref = cal, sign_ref * board_axis(cal.up)
        recs = [] if dec.refined or dec.provisional else \
            [{"type": "clip_moved", "t": t, **dec.record}]
        return Change(dec.sec + 1, cal, [*recs, calibrated_record(cal, t)])

    def _stale(self, s: int, rot: np.ndarray, shift: float) -> Change:
        """The first walk is far from the calibrated upright: rotate upright (and the
        forward axis) onto walking's."""
        old = self.cal
        self._stale_sec = s
        up = rot @ old.up
        fwd = orthogonal_forward(up, rot @ old.forward)  # type: ignore[operator]
        cal = Calibration(up=up, forward=fwd, method=f"re-anchored on walking at {s + 1} s",
                          forward_method=old.forward_method, window=old.window,
                          facing=old.facing, signed=old.signed, info=dict(old.info))
        self.cal = cal
        self.ref = orthogonal_forward(up, rot @ self.ref)
        t = float(s + 1)
        rec = {"type": "calibration_stale", "t": t, "angle_deg": round(shift, 1),
               "evidence": "walking", "limit_deg": self.stale_deg,
               "reanchored": "walking upright"}
        return Change(s + 1, cal, [rec, calibrated_record(cal, t)])

    # -- decisions -------------------------------------------------------------------
    def _decide(self, s: int) -> Change | None:
        a, cal, t = self.agreement, self.cal, float(s + 1)
        summary = {"agreement": round(a, 3), "n_evidence": self.n,
                   "weight": round(self.weight, 2)}
        if self.mount != "auto":
            if cal.signed and self.weight >= WARN_WEIGHT and a <= WARN_AGREEMENT:
                new = self._with(signed=False, facing=cal.facing,
                                 how=f"mount {cal.facing} contradicted by the evidence: "
                                 "slouch judged either way", confidence="low")
                out = [{"type": "mount_warning", "t": t, "mount": cal.facing, **summary,
                        "message": f"the data says the board is mounted the other way "
                        f"round from [sensor] mount = {cal.facing!r}: check the clip "
                        "(see the README) or run `spinesense calibrate`"}] \
                    if not self.warned else []
                self.warned = True
                return Change(s + 1, new, [*out, calibrated_record(new, t, **summary)])
            if not cal.signed and a >= RECOVER_AGREEMENT:
                new = self._with(signed=True, facing=cal.facing,
                                 how=f"board normal, mount {cal.facing} (confirmed again)",
                                 confidence="normal")
                return Change(s + 1, new, [calibrated_record(new, t, **summary)])
            return None
        sure = self.weight >= SURE_WEIGHT and abs(a) >= SURE_AGREEMENT
        facing = "back-out" if a > 0 else "back-in"
        if sure and (not cal.signed or cal.facing != facing):
            new = self._with(signed=True, facing=facing,
                             how=f"board normal, sign learned (mount auto): {facing}",
                             confidence="normal")
            return Change(s + 1, new, [calibrated_record(new, t, **summary)])
        if cal.signed and (abs(a) < UNSURE_AGREEMENT or cal.facing != facing):
            new = self._with(signed=False, facing="unknown",
                             how="board normal, sign no longer sure (mount auto): slouch "
                             "judged either way", confidence="low")
            return Change(s + 1, new, [calibrated_record(new, t, **summary)])
        return None

    def _with(self, *, signed: bool, facing: str, how: str, confidence: str) -> Calibration:
        old = self.cal
        sign = -1.0 if facing == "back-in" else 1.0
        fwd = sign * self.ref if self.mount == "auto" else old.forward
        cal = Calibration(up=old.up, forward=fwd, method=old.method, forward_method=how,
                          window=old.window, facing=facing, signed=signed,
                          info={**old.info, "confidence": confidence})
        self.cal = cal
        return cal
