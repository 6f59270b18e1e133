"""Clip slips: a board that turned on the back and stayed turned (issue 11, item 2).

A slipping clip turns the board mostly in the plane of the back (about its own normal),
so the wearer's every posture afterwards reads as a *lateral* lean of the same size, in
sitting, standing and walking alike. People lean sideways too (an armrest, an elbow on
the desk, a bag), but one posture at a time: the next upright sit or the next walk is
straight again. `SlipWatch` therefore looks, in aligned 10-s windows of the per-second
gravity direction, for a lateral offset from the wearer's own baseline that persists over
several distinct *holds* (a held posture or a stretch of walking), in different
postures. It only ever looks at the data itself, never at the calibration in use, so its
decisions are the same whatever the chunking, and a calibration that was off from the
start is not mistaken for a slip (the baseline is learned after the calibration).

When a slip is confirmed, its rotation is estimated (`edge.slip_estimate`): the turn
about the board normal that brings the lateral offset back to the baseline, and a
flexion tilt from the shift of the whole flexion distribution after the slip against the
one before, shrunk toward zero as the size of the turn warrants. The estimate is refined
every ``REFINE_EVERY`` windows for ``REFINE_FOR`` windows after the slip, as the data
after it grows.

The holds take minutes; a slip's flexion tilt raises a slouch alert in 5 s. So a *sharp
jump* of the gravity direction between two steady stretches (`edge.slip_jump`) that is
mostly sideways is taken as a slip at once, provisionally (``SlipDecision.provisional``):
its rotation is applied (a flexion rise only up to what a slip of that size can do),
undone when a posture reads straight on the reference again (it was a lean), and
replaced (or, when the overlay agrees, kept) when the holds confirm the slip.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinesense.edge.calibration import unit
from spinesense.edge.slip_estimate import (
    AXIS_TILT_RAD,
    angle_of,
    angles_in,
    direction_in,
    estimate_rotation,
    frame_of,
    rotation_between,
    sagittal_angles,
)
from spinesense.edge.slip_jump import Jump, JumpFinder

__all__ = ["SlipDecision", "SlipWatch", "rotation_between"]

WINDOW_S = 10
MIN_SECONDS = 8           # seconds of data a window needs
STILL_SPREAD_DEG = 4.0    # a window whose seconds all lie this close to their mean: held
HOLD_SAME_DEG = 3.0       # a window this close to the one before continues its hold
STEADY_DEG = 4.0          # a steady hold: flexion and lateral each within this range
OFFSET_DEG = 6.0          # a hold this far sideways from the baseline is offset ...
STRAIGHT_DEG = 4.0        # ... and one this close to it is straight (ends a chain)
AGREE_DEG = 6.0           # offsets of one slip agree with each other within this
CONFIRM_HOLDS = 3
CONFIRM_S = 120
LONG_HOLD_S = 240         # ... or one steady, upright-ish hold this long (side leans end)
LONG_HOLD_FLEX_DEG = 25.0
FAR_DEG = 24.0            # further sideways than people lean on an armrest ...
FAR_HOLD_S = 60           # ... needs a shorter hold
POSTURE_RANGE_DEG = 3.0   # the holds must differ in posture (or include a walk)
MAX_FLEX_DEG = 30.0       # deep slouches, reclines and lying say nothing about lateral
MAX_LATERAL_DEG = 45.0    # a clip does not turn further: more is lying on one side
WALK_HOLD_S = 60          # a walk this long, this far sideways, is a slip by itself
WALK_OFFSET_DEG = 12.0    # (a bag pulls the trunk sideways by up to ~9°)
REFINE_EVERY = 18         # windows (3 min)
REFINE_FOR = 180          # windows (30 min)
REFINE_MIN_DEG = 2.5
REFINE_STABLE_DEG = 1.5   # ... and only once this many estimates in a row agree:
REFINE_AGREE_N = 3        # (the overlay flips between alignments as the mix changes)
REVERT_WINDOWS = 360      # a move this recent may be undone (60 min)
JUMP_LAT_DEG = 12.0       # a sharp jump this far sideways ...
JUMP_RATIO = 1.0          # ... with flexion moving at most as much ...
JUMP_FROM_DEG = 8.0       # ... from a posture this close to straight: a provisional slip
JUMP_TILT_SD = 2.0        # a slip's flexion tilt is within this many sd of its prior
JUMP_NEAR_S = 60          # ... and it came at most this long before their first hold
JUMP_AGREE_DEG = 4.0      # the holds confirm it when their sideways turn agrees this well
SLIP_MOVING_S = 3         # a slip moves the board for 0.3-2 s (3 seconds touched at most)
SLIP_DETOUR_DEG = 3.0     # ... along the arc of one turn (a posture change strays from it)
JUMPS_KEPT = 32           # recent sharp jumps kept: the one that crossed the slip measures
JUMPS_BEFORE_S = 600      # its flexion tilt (it came at most this long before the holds)
HISTORY = 720             # windows of history kept (2 h)


@dataclass
class Hold:
    first: int                # window index of its first window
    last: int
    kind: int                 # 0 held still, 1 walking
    gsum: np.ndarray
    n: int = 1
    g_last: np.ndarray | None = None
    flex_sum: float = 0.0     # the windows' angles (in the watch's frame), summed
    lat_sum: float = 0.0
    flex_range: tuple[float, float] = (0.0, 0.0)
    lat_range: tuple[float, float] = (0.0, 0.0)

    def add(self, w: int, g: np.ndarray, flex: float, lat: float) -> None:
        if self.n == 0:
            self.flex_range, self.lat_range = (flex, flex), (lat, lat)
        self.last, self.gsum, self.n, self.g_last = w, self.gsum + g, self.n + 1, g
        self.flex_sum += flex
        self.lat_sum += lat
        self.flex_range = (min(self.flex_range[0], flex), max(self.flex_range[1], flex))
        self.lat_range = (min(self.lat_range[0], lat), max(self.lat_range[1], lat))

    @property
    def steady(self) -> bool:
        return self.flex_range[1] - self.flex_range[0] <= STEADY_DEG and \
            self.lat_range[1] - self.lat_range[0] <= STEADY_DEG

    @property
    def g(self) -> np.ndarray:
        return unit(self.gsum)

    @property
    def flex(self) -> float:
        return self.flex_sum / self.n

    @property
    def lat(self) -> float:
        return self.lat_sum / self.n


@dataclass
class SlipDecision:
    sec: int                  # the last second of the window that decided it
    rotation: np.ndarray      # sensor-frame rotation to apply to upright
    record: dict[str, Any]    # fields of the clip_moved record (refined: None)
    refined: bool = False
    since: int | None = None  # a new move: the first second of its evidence ...
    up: np.ndarray | None = None  # ... and the watch's upright after it
    provisional: bool = False  # a sharp jump, not yet confirmed by the holds (or undone)


@dataclass
class SlipWatch:
    """Window features and the slip rule; see the module doc."""

    up: np.ndarray                                   # its own reference (sensor frame)
    forward_sign: float | None = None  # forward flexion's sign in its frame (None: unknown)
    lat0: float = 0.0                                # lateral of upright, by definition
    _buf: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    _hist: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    _hold: Hold | None = None
    _chain: list[Hold] = field(default_factory=list)
    _slip: dict[str, Any] | None = None              # the last confirmed slip (refining)
    _anchor_before: tuple[int, np.ndarray] | None = None  # (window, upright) before it
    _frame: tuple[np.ndarray, np.ndarray, np.ndarray] = field(init=False)
    _jumps: JumpFinder = field(default_factory=JumpFinder)
    _prov: np.ndarray | None = None  # rotation of a provisional slip (a sharp jump) in use
    # ... the jump's whole rotation, its flexion, the offset after it and its second
    _jump_full: tuple[np.ndarray, float, float, int] | None = None
    _jump_still: bool = False  # ... and whether the wearer held still through it
    _recent: deque = field(default_factory=lambda: deque(maxlen=JUMPS_KEPT))  # (sec, jump)

    def __post_init__(self) -> None:
        self._set_up(self.up)

    def _set_up(self, up: np.ndarray) -> None:
        """A new reference: holds measured in the old one start afresh."""
        self.up = unit(np.asarray(up, float))
        self._frame = frame_of(self.up)
        self._hold = None
        self._chain = []

    def feed(self, sec: np.ndarray, g: np.ndarray, walking: np.ndarray,
             dyn_mg: np.ndarray | None = None) -> list[SlipDecision]:
        """Seconds (int), unit gravity directions (n, 3), walking flags; returns the
        decisions made by the windows and sharp jumps these seconds complete, in time
        order (a jump before a window that ends in the same second)."""
        jumps = self._jumps.feed(sec, g, dyn_mg) if len(sec) else []
        if self._buf is not None:
            sec = np.concatenate((self._buf[0], sec))
            g = np.concatenate((self._buf[1], g))
            walking = np.concatenate((self._buf[2], walking))
        if not len(sec):
            return []
        win = sec // WINDOW_S
        done = win < win[-1]  # the last window may still grow
        self._buf = (sec[~done], g[~done], walking[~done])
        out: list[SlipDecision] = []
        if not done.any():
            return self._jumps_until(jumps, None, out)
        win, g, walking = win[done], g[done], walking[done]
        starts = np.flatnonzero(np.concatenate(([True], win[1:] != win[:-1])))
        n = np.diff(np.append(starts, len(win)))
        mean = np.add.reduceat(g, starts, axis=0)
        mean /= np.maximum(np.linalg.norm(mean, axis=1), 1e-12)[:, None]
        cos = np.einsum("ij,ij->i", g, np.repeat(mean, n, axis=0))
        spread = np.degrees(np.arccos(np.clip(np.minimum.reduceat(cos, starts), -1, 1)))
        nwalk = np.add.reduceat(walking.astype(np.int64), starts)
        kind = np.where(nwalk == n, 1, np.where((nwalk == 0) & (spread <= STILL_SPREAD_DEG),
                                                0, -1))
        sel = np.flatnonzero((n >= MIN_SECONDS) & (kind >= 0))
        frame = None
        for i, j in enumerate(sel.tolist()):
            w = int(win[starts[j]])
            self._jumps_until(jumps, w * WINDOW_S + WINDOW_S - 1, out)
            if frame is not self._frame:  # angles of the windows left, in the frame
                frame = self._frame
                fl, la = sagittal_angles(frame[0], mean[sel[i:]])
                fl, la, base = fl.tolist(), la.tolist(), i
            dec = self._window(w, int(kind[j]), mean[j], fl[i - base], la[i - base])
            if dec is not None:
                out.append(dec)
        return self._jumps_until(jumps, None, out)

    def _jumps_until(self, jumps: list[Jump], last: int | None,
                     out: list[SlipDecision]) -> list[SlipDecision]:
        """Handle the pending jumps up to second ``last`` (None: all), in order."""
        while jumps and (last is None or jumps[0].sec <= last):
            self._recent.append(jumps[0])
            dec = self._jump(jumps.pop(0))
            if dec is not None:
                out.append(dec)
        return out

    # -- sharp jumps -------------------------------------------------------------------
    def _jump(self, j: Jump) -> SlipDecision | None:
        """A sharp jump (`edge.slip_jump`) that is mostly sideways, from a straight
        posture, is taken as a slip at once, provisionally: the rotation across it is
        applied until the holds confirm the slip (then their estimate replaces it) or
        a posture reads straight on the reference again (undone: it was a lean)."""
        fl0, la0 = angles_in(self._frame, j.before)
        fl1, la1 = angles_in(self._frame, j.after)
        off0, off1 = la0 - self.lat0, la1 - self.lat0
        if self._prov is not None:
            if abs(off1) < STRAIGHT_DEG and abs(fl1) < MAX_FLEX_DEG:
                return self._drop_prov(j.sec, "a posture straight again on the upright "
                                       "from before the sharp turn")
            if abs(off1 - self._jump_full[2]) > 2 * AGREE_DEG:  # type: ignore[index]
                return self._drop_prov(j.sec, "a posture sideways the other way than the "
                                       "sharp turn: a slip keeps every posture's offset")
            return None
        d_lat, d_flex = off1 - off0, fl1 - fl0
        if abs(off0) > JUMP_FROM_DEG or abs(d_lat) < JUMP_LAT_DEG or \
                abs(d_flex) > JUMP_RATIO * abs(d_lat) or max(abs(fl0), abs(fl1)) >= \
                MAX_FLEX_DEG or abs(off1) > MAX_LATERAL_DEG:
            return None
        full = rotation_between(j.before, j.after)
        # a rise of flexion across it is taken as the slip's, up to what a slip of that
        # size can plausibly do (an alert storm is worse than a slouch caught late); a
        # drop may be the wearer sitting up: then only the turn
        rise = d_flex * self.forward_sign if self.forward_sign else abs(fl1) - abs(fl0)
        most = JUMP_TILT_SD * math.degrees(AXIS_TILT_RAD * math.sin(math.radians(
            min(abs(d_lat), 90.0))))
        keep = min(max(rise, 0.0), most) / rise if rise > 0 else 0.0
        rot = rotation_between(direction_in(self._frame, fl1 - keep * d_flex, la0), j.after)
        self._prov, self._jump_full, self._slip = rot, (full, d_flex, off1, j.sec), None
        # held still through it (only the clip moved), with a tilt the clip's hinge allows
        self._jump_still = j.moving_s <= SLIP_MOVING_S and j.detour_deg <= SLIP_DETOUR_DEG \
            and abs(d_flex) <= most
        return SlipDecision(j.sec, rot, {
            "shift_deg": round(angle_of(rot), 1), "count": 1,
            "method": f"a sharp turn of {d_lat:+.0f}° sideways ({d_flex:+.1f}° flexion) "
                      "between two steady postures, provisional",
            "reanchored": "the rotation across the turn"}, since=j.sec,
            up=unit(rot @ self.up), provisional=True)

    def _drop_prov(self, sec: int, why: str) -> SlipDecision:
        assert self._prov is not None
        rot, self._prov = self._prov.T, None
        return SlipDecision(sec, rot, {"shift_deg": round(angle_of(rot), 1), "count": 1,
                                       "method": why, "reanchored": "the upright from "
                                       "before the sharp turn"}, provisional=True)

    def _after_prov(self, rot: np.ndarray) -> np.ndarray:
        """A rotation from the watch's reference, as applied on top of a provisional
        slip in use (which it replaces)."""
        if self._prov is None:
            return rot
        rot, self._prov = rot @ self._prov.T, None
        return rot

    # -- per window ------------------------------------------------------------------
    def _window(self, w: int, kind: int, g: np.ndarray, flex: float, lat: float
                ) -> SlipDecision | None:
        self._hist.append((w, kind, g))
        if self._prov is not None and abs(lat - self.lat0) < STRAIGHT_DEG and \
                abs(flex) < MAX_FLEX_DEG:
            return self._drop_prov(w * WINDOW_S + WINDOW_S - 1, "a held posture straight "
                                   "again on the upright from before the sharp turn")
        h = self._hold
        if h is None or w != h.last + 1 or kind != h.kind or (kind == 0 and float(
                g @ h.g_last) < math.cos(math.radians(HOLD_SAME_DEG))):
            h = self._hold = Hold(w, w, kind, np.zeros(3), 0)
        h.add(w, g, flex, lat)
        refined = self._refine(w)
        if refined is not None:
            return refined
        if h.n < 2 and kind == 0:
            return None  # a hold counts once held for 20 s
        if abs(h.flex) >= MAX_FLEX_DEG:
            return None
        off = h.lat - self.lat0
        if abs(off) < STRAIGHT_DEG:
            self._chain = []
            return None
        if abs(off) < OFFSET_DEG or abs(off) > MAX_LATERAL_DEG:
            return None  # neither straight nor clearly offset: the chain waits
        chain = [c for c in self._chain if c is not h]
        if chain and (np.sign(off) != np.sign(self._offset(chain[0])) or abs(
                off - float(np.median([self._offset(c) for c in chain]))) > AGREE_DEG):
            chain = []  # another offset than the chain's: a new chain from here
        self._chain = [*chain, h]
        return self._maybe_confirm(w)

    def _flex(self, h: Hold) -> float:
        return h.flex

    def _offset(self, h: Hold) -> float:
        return h.lat - self.lat0

    def _maybe_confirm(self, w: int) -> SlipDecision | None:
        chain = self._chain
        last = chain[-1]
        held = LONG_HOLD_S if abs(self._offset(last)) < FAR_DEG else FAR_HOLD_S
        long_hold = (last.kind == 0 and last.n * WINDOW_S >= held and last.steady
                     and abs(self._flex(last)) < LONG_HOLD_FLEX_DEG) or (
            last.kind == 1 and last.n * WINDOW_S >= WALK_HOLD_S and
            abs(self._offset(last)) >= WALK_OFFSET_DEG)
        if not long_hold:
            if len(chain) < CONFIRM_HOLDS or (w + 1 - chain[0].first) * WINDOW_S < CONFIRM_S:
                return None
            flexes = [self._flex(c) for c in chain]
            if max(flexes) - min(flexes) < POSTURE_RANGE_DEG and not any(
                    c.kind == 1 for c in chain):
                return None
            if min(abs(self._offset(c)) for c in chain) < OFFSET_DEG:
                return None  # holds that grew back toward straight
        first = chain[0].first
        back = self._anchor_before
        if back is not None and w - back[0] <= REVERT_WINDOWS:
            frame = frame_of(back[1])
            lat = [angles_in(frame, c.g)[1] - self.lat0 for c in chain]
            if abs(float(np.median(lat))) < STRAIGHT_DEG:
                return self._revert(w, back[1], len(chain))
        self._anchor_before = (w, self.up.copy())
        self._slip = {"w": first, "confirmed": w, "up_before": self.up.copy(),
                      "rot": np.eye(3), "next": w + REFINE_EVERY, "jumps": [
                          (j.before, j.after) for j in self._recent
                          if first * WINDOW_S - JUMPS_BEFORE_S <= j.sec
                          <= (first + 1) * WINDOW_S]}
        rot, info = self._estimate(w)
        self._slip["flex"] = info["flex_deg"]
        if self._prov is not None and self._jump_full is not None:
            # the sharp jump measured the whole rotation, its flexion tilt included, when
            # the wearer held the same posture on both sides: kept when the holds find
            # the same sideways turn and the wearer held still through it, or the flexion
            # distribution the same shift (unless the estimate already weighed that jump
            # against the overlay: then the posterior, not the jump with its posture change)
            full, jump_flex, _off, sec = self._jump_full
            d_flex, d_lat = angles_in(frame_of(rot @ self.up), full @ self.up)
            raw = info["shift_raw"]
            if abs(d_lat) <= JUMP_AGREE_DEG and sec >= first * WINDOW_S - JUMP_NEAR_S \
                    and (self._jump_still or (raw is not None and info["jump_deg"] is None
                                              and abs(raw - jump_flex) <= JUMP_AGREE_DEG)):
                rot = full
                info["flex_deg"] -= d_flex
                info["shift"] = f"{'n/a' if raw is None else f'{raw:+.1f}°'}, the " \
                    f"sharp turn's own {jump_flex:+.1f}°"
                self._slip["next"] = math.inf  # nothing left to refine
        self._chain = []
        self._apply(rot)
        record = {
            "shift_deg": round(angle_of(rot), 1), "count": len(chain),
            "method": f"lateral offset of {info['lateral_deg']:+.0f}° held over "
                      f"{len(chain)} postures since {first * WINDOW_S} s",
            "reanchored": f"a turn of {info['spin_deg']:+.1f}° about the board normal and "
                          f"a flexion tilt of {info['flex_deg']:+.1f}° (flexion distribution "
                          f"shifted {info['shift']})"}
        return SlipDecision(w * WINDOW_S + WINDOW_S - 1, self._after_prov(rot), record,
                            since=first * WINDOW_S,
                            up=self.up.copy())

    def _revert(self, w: int, up: np.ndarray, n: int) -> SlipDecision:
        """Every posture reads straight again on the upright from before the last move:
        the clip went back (or the move was a long lean); return to that upright."""
        rot = rotation_between(self.up, up)
        self._set_up(up)
        self._slip, self._anchor_before = None, None
        return SlipDecision(w * WINDOW_S + WINDOW_S - 1, self._after_prov(rot), {
            "shift_deg": round(angle_of(rot), 1), "count": n,
            "method": f"every posture over {n} holds is straight again on the upright "
                      "from before the last move",
            "reanchored": "the upright from before the last move"})

    def _refine(self, w: int) -> SlipDecision | None:
        s = self._slip
        if s is None or w < s["next"]:
            return None
        s["next"] = w + REFINE_EVERY
        if w - s["w"] > REFINE_FOR:
            self._slip = None
            return None
        rot, info = self._estimate(w)  # total, from the reference before the slip
        last = s.setdefault("last", deque(maxlen=REFINE_AGREE_N - 1))
        settled = len(last) == last.maxlen and all(
            angle_of(rot @ r.T) <= REFINE_STABLE_DEG for r in last)
        last.append(rot)
        if not settled:
            return None  # not settled yet: the next estimates must agree with this one
        delta = rot @ s["rot"].T
        ang = angle_of(delta)
        if ang < REFINE_MIN_DEG:
            return None
        self._apply(delta)
        s["flex"] = info["flex_deg"]
        return SlipDecision(w * WINDOW_S + WINDOW_S - 1, delta, {
            "reanchored": f"refined by {ang:.1f}° ({info['flex_deg']:+.1f}° flexion) "
                          "with more data after the slip"}, refined=True)

    def _apply(self, rot: np.ndarray) -> None:
        assert self._slip is not None
        self._set_up(rot @ self.up)
        self._slip["rot"] = rot @ self._slip["rot"]

    # -- the estimate ----------------------------------------------------------------
    def _estimate(self, w: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Rotation from the reference before the slip to the one after it."""
        s = self._slip
        assert s is not None
        hist = list(self._hist)
        pre = np.array([g for wi, _k, g in hist if wi < s["w"] - 1] or [s["up_before"]])
        post = np.array([g for wi, _k, g in hist if wi >= s["w"]])
        return estimate_rotation(s["up_before"], pre, post, self.lat0, s["jumps"],
                                 s.get("flex", 0.0))
