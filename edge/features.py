"""Calibration-free features: gravity direction, movement, steps and sit/stand pushes.

Everything here is computed from ticks alone (no upright reference needed), so it can run
while the pipeline is still learning its calibration. For steps, vertical movement is read
from the *magnitude* of the specific force, which to first order is 1 g plus the vertical
acceleration whatever the sensor's tilt or mounting; sit/stand pushes
(`edge.transitions`) use the acceleration along a fast gravity direction instead, which
fast trunk rotations do not inflate, less the accelerometer's own error at that
orientation (`edge.accel_fit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from spinesense.edge.accel_fit import MagnitudeFit
from spinesense.edge.filters import (
    TICK_HZ,
    StreamSOS,
    Ticks,
    bandpass,
    complementary,
    lowpass,
    segment_pieces,
    segment_starts,
)
from spinesense.edge.gait import GaitDetector
from spinesense.edge.transitions import PushDetector, Transition

G = 9.80665
STEP_BAND_HZ = (0.7, 3.5)
STEP_MIN_G = 0.04            # a step's peak in band-passed vertical acceleration
STEP_MIN_INTERVAL_S = 0.28   # faster than ~215 steps/min is not walking
VERTICAL_CUTOFF_HZ = 3.0     # gravity direction that follows a sit/stand's trunk rotation
MOVING_CUTOFF_HZ = 2.0       # smoothing of the movement level that bounds a push
MOVING_MG = 80.0             # moving: smoothed |acc - gravity| above this
VERTICAL_TAU_S = 1.0         # gyro-tracked vertical: pulled toward the accelerometer's
VERTICAL_PASSES = 2          # ... with this time constant; linearised passes (see below)

@dataclass
class TickFeatures:
    """Per-tick, calibration-free features of one block (gap markers are NaN/False)."""

    k: np.ndarray
    valid: np.ndarray
    grav: np.ndarray          # (n, 3) low-passed specific force (posture gravity)
    fast: np.ndarray          # (n, 3) faster low-pass, for flexion
    gyro: np.ndarray | None   # (n, 3) deg/s
    dyn_mg: np.ndarray        # |acc - grav| in milli-g
    vert_bp: np.ndarray       # band-passed vertical acceleration (g), steps
    vert_ms2: np.ndarray      # acceleration along the fast gravity direction (m/s²)
    moving: np.ndarray        # bool: the trunk is moving (bounds sit/stand pushes)
    lean_deg: np.ndarray      # angle between the fast and a slow gravity direction
    step: np.ndarray          # bool: a step peak at this tick
    trunk_lean_deg: np.ndarray  # the same from the gyro-tracked vertical (no thrust in it)

    @property
    def t(self) -> np.ndarray:
        return self.k / TICK_HZ

    def __len__(self) -> int:
        return len(self.k)

    def take(self, sl: slice | np.ndarray) -> TickFeatures:
        return TickFeatures(*(None if v is None else v[sl] for v in (
            self.k, self.valid, self.grav, self.fast, self.gyro, self.dyn_mg, self.vert_bp,
            self.vert_ms2, self.moving, self.lean_deg, self.step, self.trunk_lean_deg)))

    @staticmethod
    def concat(parts: list[TickFeatures]) -> TickFeatures:
        names = ("k", "valid", "grav", "fast", "gyro", "dyn_mg", "vert_bp", "vert_ms2",
                 "moving", "lean_deg", "step", "trunk_lean_deg")
        return TickFeatures(*(None if getattr(parts[0], n) is None else
                              np.concatenate([getattr(p, n) for p in parts]) for n in names))


@dataclass
class SecondFeatures:
    """Per-second aggregates of one block (seconds without valid ticks are left out)."""

    sec: np.ndarray          # int64 second index (time = sec)
    n: np.ndarray            # valid ticks
    steps: np.ndarray        # int
    vert_rms: np.ndarray     # g
    dyn_rms: np.ndarray      # milli-g
    grav: np.ndarray         # (m, 3) mean gravity (unnormalised)
    walking: np.ndarray      # bool
    transitions: list[Transition] = field(default_factory=list)

    def take(self, lo: int, hi: int) -> SecondFeatures:
        """Seconds lo..hi-1 (indices), with the transitions that fall in them."""
        m = len(self.sec)
        first = -np.inf if lo == 0 else (float(self.sec[lo]) if lo < m else np.inf)
        stop = np.inf if hi >= m else float(self.sec[hi])
        return SecondFeatures(self.sec[lo:hi], self.n[lo:hi], self.steps[lo:hi],
                              self.vert_rms[lo:hi], self.dyn_rms[lo:hi], self.grav[lo:hi],
                              self.walking[lo:hi],
                              [tr for tr in self.transitions if first <= tr.t < stop])


def _norm_rows(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", v, v))


def _first_order(u: np.ndarray, a: float, start: np.ndarray, valid: np.ndarray,
                 starts: np.ndarray, prev: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """y[k] = a·y[k-1] + u[k] over the rows of ``u`` (n, 3), restarting from ``start``'s
    row after each gap (``starts``); invalid rows (gap markers) are NaN and skipped. The
    carried state is the last output."""
    out = np.full_like(u, np.nan)
    for lo, hi, restart in segment_pieces(starts, len(u)):
        if hi <= lo:  # an empty block
            continue
        if valid[lo:hi].all():  # the usual case: a plain slice
            rows: slice | np.ndarray = slice(lo, hi)
            first = lo
        else:
            rows = np.flatnonzero(valid[lo:hi]) + lo
            if len(rows) == 0:
                continue
            first = int(rows[0])
        y0 = start[first] if restart or prev is None else prev
        y, _ = signal.lfilter([1.0], [1.0, -a], u[rows], axis=0, zi=(a * y0)[None, :])
        out[rows], prev = y, y[-1].copy()
    return out, prev


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.einsum("ij,ij->i", a, b) / (_norm_rows(a) * _norm_rows(b))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


class FrontEnd:
    """Streaming filters over ticks, with all state carried across blocks."""

    def __init__(self, gravity_cutoff_hz: float, flexion_cutoff_hz: float):
        self.f_grav = StreamSOS(lowpass(min(gravity_cutoff_hz, 0.45 * TICK_HZ)), 3)
        self.f_fast = StreamSOS(lowpass(min(flexion_cutoff_hz, 0.45 * TICK_HZ)), 3)
        self.f_slow = StreamSOS(lowpass(0.1), 3)       # slow gravity: lean reference
        self.f_mag = StreamSOS(lowpass(0.03, order=1), 1)  # slow |acc|: removes bias
        self.f_step = StreamSOS(bandpass(*STEP_BAND_HZ), 1)
        self.f_vert = StreamSOS(lowpass(VERTICAL_CUTOFF_HZ), 3)
        self.f_moving = StreamSOS(lowpass(MOVING_CUTOFF_HZ, order=1), 1)
        self.fresh = True
        self._prev_bp = np.full(2, np.nan)       # last two band-passed values
        self._last_step_k = -(10**12)
        self.gait = GaitDetector()
        self._walk_last: int | None = None       # the last walking second seen
        self.pushes = PushDetector()
        self.magnitude = MagnitudeFit()
        self._vert_prev: list[np.ndarray | None] = [None] * VERTICAL_PASSES

    def ticks(self, tk: Ticks) -> TickFeatures:
        starts = segment_starts(tk.valid, self.fresh)
        if len(tk.valid):  # the next block starts a segment if this ended in a gap
            self.fresh = not bool(tk.valid[-1])
        acc = tk.acc
        grav = self.f_grav.run(acc, starts)
        fast = self.f_fast.run(acc, starts)
        slow = self.f_slow.run(acc, starts)
        mag = _norm_rows(acc)[:, None]
        a_vert = mag - self.f_mag.run(mag, starts)             # g, vertical to 1st order
        vert_bp = self.f_step.run(a_vert, starts)[:, 0]
        up = self.f_vert.run(acc, starts)   # a gravity direction that keeps up with a push
        if tk.gyro is not None:  # ... better: turned with the trunk by the gyro
            up = self._gyro_vertical(acc, tk.gyro, up, tk.valid, starts)
        dyn_mg = _norm_rows(acc - grav) * 1000.0
        # less the accelerometer's own error at this orientation (`edge.accel_fit`)
        up = up / _norm_rows(up)[:, None]
        err = self.magnitude.error(tk.k, tk.valid, grav, dyn_mg, up)
        vert = (np.einsum("ij,ij->i", acc, up) - 1.0 - err) * G
        with np.errstate(invalid="ignore"):
            moving = self.f_moving.run(dyn_mg[:, None], starts)[:, 0] > MOVING_MG
        lean = _angle_deg(fast, slow)
        # the trunk's own lean, from the gyro-tracked vertical where there is a gyro: the
        # low-passed specific force adds a push's thrust to it (40° stand-ups read 50°)
        trunk_lean = lean
        if tk.gyro is not None:  # (only where moving: it bounds pushes, nothing else)
            trunk_lean = np.full(len(lean), np.nan)
            trunk_lean[moving] = _angle_deg(up[moving], slow[moving])
        step = self._steps(tk.k, vert_bp, starts)
        return TickFeatures(tk.k, tk.valid, grav, fast, tk.gyro, dyn_mg, vert_bp, vert,
                            moving & tk.valid, lean, step, trunk_lean)

    def _gyro_vertical(self, acc: np.ndarray, gyro: np.ndarray, up: np.ndarray,
                       valid: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The gravity direction turned with the trunk by the gyro and pulled toward the
        accelerometer with ``VERTICAL_TAU_S`` (a complementary filter per axis). The
        low-passed specific force tilts toward every horizontal push (a sit/stand's
        forward thrust, a walk's sway), which reads as vertical acceleration (on the
        development days, stand-ups with a deep lean measured as 0.5 m drops); the gyro
        does not. The rotation term ``-ω × g`` is linearised around the previous pass's
        estimate (the accelerometer's on the first; two passes come within a few
        centimetres of the exact filter on the development days, one lost four sit/stand
        days), so each pass is a linear filter with a carried state (exact under any
        chunking)."""
        a = VERTICAL_TAU_S / (VERTICAL_TAU_S + 1.0 / TICK_HZ)
        w = np.radians(gyro) * (a / TICK_HZ)
        if not valid.all():
            w = np.nan_to_num(w)
        wx, wy, wz = w[:, 0], w[:, 1], w[:, 2]
        pull = (1.0 - a) * acc
        ref = up
        for p in range(VERTICAL_PASSES):
            gx, gy, gz = ref[:, 0], ref[:, 1], ref[:, 2]
            u = pull.copy()
            u[:, 0] += wz * gy - wy * gz
            u[:, 1] += wx * gz - wz * gx
            u[:, 2] += wy * gx - wx * gy
            ref, self._vert_prev[p] = _first_order(u, a, acc, valid, starts,
                                                    self._vert_prev[p])
        return ref

    def _steps(self, k: np.ndarray, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Peaks above STEP_MIN_G, at least STEP_MIN_INTERVAL_S apart (loop over peaks)."""
        n = len(x)
        step = np.zeros(n, bool)
        if n == 0:
            return step
        xx = np.concatenate((self._prev_bp, x))  # gap markers are NaN: no peak across
        mid, before, after = xx[1:-1], xx[:-2], xx[2:]
        with np.errstate(invalid="ignore"):
            peak = (mid > before) & (mid >= after) & (mid > STEP_MIN_G)
        # a peak is confirmed one tick later; it is flagged on that confirming tick, so a
        # step never moves between seconds with the block boundaries
        confirm = np.flatnonzero(peak)
        min_ticks = round(STEP_MIN_INTERVAL_S * TICK_HZ)
        last = self._last_step_k
        for j in confirm:
            kj = int(k[j])
            if kj - last >= min_ticks:
                step[j] = True
                last = kj
        self._last_step_k = last
        self._prev_bp = xx[-2:].copy()
        return step

    def seconds(self, tf: TickFeatures) -> SecondFeatures:
        """Aggregate one block of whole seconds; decide walking and find transitions."""
        sec_all = np.floor_divide(tf.k, TICK_HZ)
        v = tf.valid
        sec = sec_all[v]
        if len(sec) == 0:
            return SecondFeatures(np.zeros(0, np.int64), np.zeros(0, np.int64),
                                  np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                                  np.zeros((0, 3)), np.zeros(0, bool))
        first = np.flatnonzero(np.concatenate(([True], sec[1:] != sec[:-1])))
        n = np.diff(np.concatenate((first, [len(sec)])))
        steps = np.add.reduceat(tf.step[v].astype(np.int64), first)
        vert_rms = np.sqrt(np.add.reduceat(tf.vert_bp[v] ** 2, first) / n)
        dyn_rms = np.sqrt(np.add.reduceat(tf.dyn_mg[v] ** 2, first) / n)
        grav = np.add.reduceat(tf.grav[v], first, axis=0) / n[:, None]
        usec = sec[first]
        walking = self.gait.decide(tf.k, tf.vert_bp, v, usec, n, vert_rms ** 2 * n)
        out = SecondFeatures(usec, n, steps, vert_rms, dyn_rms, grav, walking)
        # a hip rise or drop while walking may be a stair or a bump of the gait: marked,
        # so that it is no evidence about the mounting (posture still takes it: a walk
        # often ends by sitting down, while the walking rule still overshoots)
        sure = usec[self.gait.sustained]  # a lone rhythmic second may be the transition
        walk_secs = set(sure.tolist()) | {x + 1 for x in sure.tolist()}
        if self._walk_last is not None:
            walk_secs.add(self._walk_last + 1)
        walk_tick = np.zeros(len(v), bool)
        walk_tick[v] = np.repeat(walking, n)
        out.transitions = self._transitions(tf, walk_tick)
        for tr in out.transitions:
            tr.while_walking = int(np.floor(tr.t)) in walk_secs
        self._walk_last = int(sure[-1]) if len(sure) else self._walk_last
        return out

    def _transitions(self, tf: TickFeatures, walk_tick: np.ndarray) -> list[Transition]:
        return self.pushes.feed(tf.k, tf.valid, tf.vert_ms2, tf.moving, tf.grav, tf.fast,
                                tf.lean_deg, None if tf.gyro is None else tf.trunk_lean_deg,
                                tf.step, walk_tick)


def gyro_flexion(flex_acc: np.ndarray, rate: np.ndarray, starts: np.ndarray,
                 tau_s: float, prev: float | None) -> tuple[np.ndarray, float | None]:
    """Complementary filter per segment (restarting after gaps); NaN rows pass through."""
    out = np.full_like(flex_acc, np.nan)
    valid = ~np.isnan(flex_acc)
    for lo, hi, restart in segment_pieces(starts, len(flex_acc)):
        idx = np.flatnonzero(valid[lo:hi]) + lo
        if len(idx) == 0:
            continue
        out[idx], prev = complementary(flex_acc[idx], rate[idx], tau_s,
                                       None if restart else prev)
    return out, prev
