"""The wearer's behaviour for the independent simulator (`spinesense.firmware.worldsim`).

An `Actor` writes keyframes into the trunk's angle tracks (flexion, lateral lean, yaw, in
degrees, against the wearer's own upright), the hips' position tracks (metres, heading
frame) and sway-amplitude tracks, and appends labelled `Segment`s. It was written apart
from the detector and from `firmware.timeline`, and deliberately does not share their
numbers: transitions have random, asymmetric velocity profiles (monotone cubic keyframes
with a random intermediate knot, not minimum-jerk), sit-to-stand leans range from a
barely visible 10° (pushing up with the arms) to 45°, slouches from a 1-s drop to a
creep over a quarter of an hour, and walking is handed to `worldsim_gait` as bouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from spinesense.firmware.timeline import Segment


class Keys:
    """A keyframed value: held before the first and after the last key, monotone cubic
    (PCHIP) in between, so a move starts and ends at rest and never overshoots."""

    def __init__(self, value: float = 0.0):
        self.times: list[float] = [0.0]
        self.values: list[float] = [float(value)]

    @property
    def last(self) -> float:
        return self.values[-1]

    def add(self, time: float, value: float) -> None:
        if time <= self.times[-1] + 1e-6:
            self.values[-1] = float(value)
            return
        self.times.append(float(time))
        self.values.append(float(value))

    def move(self, start: float, duration: float, value: float, rng: np.random.Generator,
             ) -> None:
        """Hold until ``start``, then go to ``value`` in ``duration`` seconds, with a random
        intermediate knot so that fast-then-slow and slow-then-fast moves both occur."""
        self.add(start, self.last)
        if duration > 0.6 and rng.random() < 0.7:
            u, w = rng.uniform(0.25, 0.75), rng.uniform(0.15, 0.85)
            self.add(start + u * duration, self.last + w * (value - self.last))
        self.add(start + max(duration, 0.05), value)

    def evaluate(self, t: np.ndarray) -> np.ndarray:
        k, v = np.asarray(self.times), np.asarray(self.values)
        if len(k) < 2:
            return np.full_like(t, v[0])
        return PchipInterpolator(k, v, extrapolate=False)(np.clip(t, k[0], k[-1]))


@dataclass
class GaitBout:
    """One walking bout, rendered by `worldsim_gait`."""

    start: float
    end: float
    cadence_hz: float  # steps per second
    kind: str          # level, stairs_up, stairs_down, carrying, talking, shuffle
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class Impact:
    """A short world-frame acceleration pulse: dropping onto a chair, a bumped desk."""

    t: float
    peak_g: float
    freq_hz: float
    decay_s: float
    direction: tuple[float, float, float]


# slow sway σ (deg) and fast fidget σ (deg) by activity; per wearer these are scaled
SWAY = {"still": (0.15, 0.03), "sitting": (0.8, 0.15), "typing": (0.5, 0.35),
        "slouch": (1.0, 0.1), "recline": (0.9, 0.1), "lean": (0.8, 0.1),
        "standing": (0.7, 0.12), "walking": (0.3, 0.0), "lying": (0.5, 0.05),
        "transition": (0.2, 0.0)}


class Actor:
    """The day under construction; each method starts at ``now`` and advances it."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.now = 0.0
        self.flex, self.lean, self.yaw = Keys(), Keys(), Keys()
        self.hip_x, self.hip_z = Keys(), Keys()
        self.sway_slow, self.sway_fast = Keys(SWAY["still"][0]), Keys(SWAY["still"][1])
        self.bouts: list[GaitBout] = []
        self.impacts: list[Impact] = []
        self.segments: list[Segment] = []
        self.calibration: dict[str, Any] = {}
        self.seated = True
        self.sway_gain = float(rng.uniform(0.5, 1.8))  # a fidgety or a calm wearer
        self.sit_upright = float(rng.uniform(-3.0, 3.0))  # habitual sitting offset

    # -- helpers ------------------------------------------------------------------------
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def _sway(self, kind: str, ramp: float = 1.0) -> None:
        slow, fast = SWAY[kind]
        self.sway_slow.move(self.now, ramp, slow * self.sway_gain, self.rng)
        self.sway_fast.move(self.now, ramp, fast * self.sway_gain, self.rng)

    def _push(self, activity: str, posture: str, duration: float, **info: Any) -> None:
        self.segments.append(Segment(self.now, self.now + duration, activity, posture, info))
        self.now += duration

    @property
    def posture(self) -> str:
        return "sitting" if self.seated else "standing"

    def _hold_pose(self, activity: str, duration: float, flex: float, lean: float,
                   ramp: float, sway: str, **info: Any) -> None:
        ramp = min(ramp, 0.9 * duration)
        self.flex.move(self.now, ramp, flex, self.rng)
        self.lean.move(self.now, ramp, lean, self.rng)
        self._sway(sway, min(ramp, 1.5) if ramp > 0.1 else 0.5)
        self._push(activity, self.posture, duration, **info)

    # -- sitting or standing in place ------------------------------------------------------
    def still_upright(self, duration: float, calibration: bool = False) -> None:
        """Sitting (or standing) upright and still; with ``calibration`` its middle is the
        truth's calibration window (the wearer's own upright is flexion 0)."""
        start = self.now
        self._hold_pose("still_upright", duration, 0.0, 0.0, 1.5, "still")
        if calibration:
            self.calibration = {"start": round(start + 2.0, 4),
                                "end": round(self.now - 0.5, 4)}

    def sit(self, duration: float) -> None:
        self._hold_pose("sitting_upright", duration, self.sit_upright + self.u(-2.0, 4.0),
                        self.u(-3.0, 3.0), self.u(0.8, 4.0), "sitting")

    def typing(self, duration: float) -> None:
        self._hold_pose("typing", duration, self.u(2.0, 10.0), self.u(-3.0, 3.0),
                        self.u(0.8, 4.0), "typing")

    def slouch(self, hold: float, depth: float | None = None, ramp: float | None = None,
               ) -> None:
        """Sink forward to ``depth`` over ``ramp`` s (1 s drop to a 40 s sag) and hold;
        often with a lateral lean or twist on top (elbow on the desk)."""
        depth = self.u(18.0, 45.0) if depth is None else depth
        ramp = float(np.exp(self.u(np.log(1.0), np.log(40.0)))) if ramp is None else ramp
        side = self.u(-12.0, 12.0) if self.rng.random() < 0.5 else self.u(-3.0, 3.0)
        self._hold_pose("slouch", ramp + hold, depth, side, ramp, "slouch",
                        target_deg=round(depth, 2))

    def creep(self, duration: float, depth: float | None = None) -> None:
        """A slow creeping slouch: flexion grows steadily over minutes while working."""
        depth = self.u(18.0, 32.0) if depth is None else depth
        self.flex.move(self.now, duration, depth, self.rng)
        self.lean.move(self.now, duration, self.u(-4.0, 4.0), self.rng)
        self._sway("typing", 2.0)
        self._push("slouch", self.posture, duration, target_deg=round(depth, 2), creep=True)

    def marginal(self, duration: float) -> None:
        """A lean that stays below the release angle: never a slouch."""
        self._hold_pose("typing", duration, self.u(8.0, 11.0), self.u(-3.0, 3.0),
                        self.u(2.0, 6.0), "typing")

    def reach(self) -> None:
        """Reaching for a drawer or the floor: deep, brief (< the 5 s delay above 15°),
        with a sideways component and a twist."""
        total, depth = self.u(1.4, 4.2), self.u(20.0, 60.0)
        start, base, lean0, yaw0 = self.now, self.flex.last, self.lean.last, self.yaw.last
        down, up = total * self.u(0.25, 0.45), total * self.u(0.25, 0.45)
        self.flex.move(start, down, depth, self.rng)
        self.flex.move(start + total - up, up, base, self.rng)
        side = self.u(-20.0, 20.0)
        self.lean.move(start, down, lean0 + side, self.rng)
        self.lean.move(start + total - up, up, lean0, self.rng)
        self.yaw.move(start, down, yaw0 + self.u(-30.0, 30.0), self.rng)
        self.yaw.move(start + total - up, up, yaw0, self.rng)
        self._sway("transition", 0.3)
        self._push("reach", self.posture, total, peak_deg=round(depth, 2))

    def recline(self, hold: float, depth: float | None = None) -> None:
        depth = -self.u(5.0, 30.0) if depth is None else depth
        self._hold_pose("recline", hold + 2.0, depth, self.u(-4.0, 4.0), self.u(1.0, 5.0),
                        "recline", target_deg=round(depth, 2))

    def side_lean(self, hold: float) -> None:
        """Leaning on an armrest or to one side: lateral, not forward."""
        side = (1 if self.rng.random() < 0.5 else -1) * self.u(5.0, 20.0)
        self._hold_pose("armrest_lean", hold, self.u(-2.0, 5.0), side, self.u(1.0, 4.0),
                        "lean")

    def swivel(self) -> None:
        """Turning the office chair (yaw only)."""
        self.yaw.move(self.now, self.u(1.0, 4.0), self.yaw.last + self.u(-90.0, 90.0),
                      self.rng)

    # -- transitions ---------------------------------------------------------------------------
    def sit_to_stand(self) -> None:
        """Bring the weight over the feet (a 10–45° forward lean, shallow when the arms
        push) and rise 0.35–0.5 m, in 1.2–4 s, the rise starting at 25–60 % of it."""
        dur, peak = self.u(1.2, 4.0), self.u(10.0, 45.0)
        s, flex0 = self.now, self.flex.last
        self.flex.move(s, dur * self.u(0.3, 0.5), max(peak, flex0 + 4.0), self.rng)
        self.flex.move(self.flex.times[-1], dur - (self.flex.times[-1] - s),
                       self.u(-2.0, 5.0), self.rng)
        self.lean.move(s, dur, self.u(-2.0, 2.0), self.rng)
        rise_at = self.u(0.25, 0.6)
        self.hip_x.move(s, dur * 0.5, self.u(0.05, 0.25), self.rng)
        self.hip_x.move(s + dur * 0.5, dur * 0.5, 0.0, self.rng)
        self.hip_z.move(s + rise_at * dur, (1 - rise_at) * dur, self.u(0.35, 0.5), self.rng)
        self._sway("transition", 0.3)
        self.seated = False
        self._push("sit_to_stand", "standing", dur, peak_deg=round(peak, 2))

    def stand_to_sit(self) -> None:
        """Lean 10–40° and lower the hips; some people drop the last centimetres
        (an impact on the seat)."""
        dur, peak = self.u(1.2, 4.0), self.u(10.0, 40.0)
        s = self.now
        self.flex.move(s, dur * self.u(0.3, 0.55), peak, self.rng)
        self.flex.move(self.flex.times[-1], dur - (self.flex.times[-1] - s),
                       self.sit_upright + self.u(-1.0, 5.0), self.rng)
        self.lean.move(s, dur, self.u(-2.0, 2.0), self.rng)
        self.hip_x.move(s, dur * 0.5, -self.u(0.05, 0.2), self.rng)
        self.hip_x.move(s + dur * 0.5, dur * 0.5, 0.0, self.rng)
        drop_at = self.u(0.15, 0.4)
        self.hip_z.move(s + drop_at * dur, (1 - drop_at) * dur * self.u(0.6, 1.0), 0.0,
                        self.rng)
        if self.rng.random() < 0.4:
            self.impacts.append(Impact(s + dur * 0.95, self.u(0.2, 1.0), self.u(6.0, 15.0),
                                       self.u(0.03, 0.08), (0.0, 0.0, 1.0)))
        self._sway("transition", 0.3)
        self.seated = True
        self._push("stand_to_sit", "sitting", dur, peak_deg=round(peak, 2))

    def stand(self, duration: float) -> None:
        self._hold_pose("standing", duration, self.u(-2.0, 6.0), self.u(-4.0, 4.0),
                        self.u(1.0, 3.0), "standing")

    def lie_down(self, side: bool | None = None) -> None:
        """From sitting to lying on the back (−65…−90°) or a side (±65…90° lean)."""
        side = bool(self.rng.random() < 0.4) if side is None else side
        dur = self.u(2.0, 6.0)
        if side:
            self.lean.move(self.now, dur, (1 if self.rng.random() < 0.5 else -1)
                           * self.u(65.0, 90.0), self.rng)
            self.flex.move(self.now, dur, self.u(-15.0, 10.0), self.rng)
        else:
            self.flex.move(self.now, dur, -self.u(65.0, 90.0), self.rng)
            self.lean.move(self.now, dur, self.u(-8.0, 8.0), self.rng)
        self.hip_z.move(self.now, dur, -self.u(0.0, 0.2), self.rng)
        self._sway("transition", 0.3)
        self._push("lie_down", "lying", dur, side=side)

    def lying(self, duration: float) -> None:
        self.flex.add(self.now, self.flex.last)
        self.lean.add(self.now, self.lean.last)
        self._sway("lying", 1.0)
        self._push("lying", "lying", duration)

    def sit_up(self) -> None:
        dur = self.u(2.0, 6.0)
        self.flex.move(self.now, dur, self.sit_upright + self.u(0.0, 5.0), self.rng)
        self.lean.move(self.now, dur, self.u(-3.0, 3.0), self.rng)
        self.hip_z.move(self.now, dur, 0.0, self.rng)
        self._sway("transition", 0.3)
        self.seated = True
        self._push("sit_up", "sitting", dur)

    def bumps(self, per_hour: float, end: float) -> None:
        """Knocks on the desk or chair during still activities: 0.1–1.5 g for a fraction
        of a second, any direction; no posture changes."""
        still = [s for s in self.segments if s.start < end and s.activity in (
            "sitting_upright", "typing", "slouch", "recline", "armrest_lean", "standing",
            "lying") and s.end - s.start > 2.0]
        for seg in still:
            for _ in range(int(self.rng.poisson(per_hour * (min(seg.end, end) - seg.start)
                                                / 3600.0))):
                d = self.rng.normal(size=3)
                self.impacts.append(Impact(self.u(seg.start, min(seg.end, end)),
                                           self.u(0.1, 1.5), self.u(4.0, 25.0),
                                           self.u(0.02, 0.12), tuple(d / np.linalg.norm(d))))

    # -- walking ------------------------------------------------------------------------------
    def walk(self, duration: float | None = None, *, kind: str = "level",
             steps: int | None = None, cadence_spm: float | None = None) -> None:
        """A walking bout of ``duration`` s or ``steps`` steps (cadence in steps/min);
        the trunk leans by a personal amount (−2…10°) and turns now and then."""
        cadence = {"level": (60.0, 125.0), "talking": (60.0, 95.0),
                   "carrying": (70.0, 115.0), "stairs_up": (55.0, 95.0),
                   "stairs_down": (70.0, 110.0), "shuffle": (60.0, 100.0)}[kind]
        spm = self.u(*cadence) if cadence_spm is None else cadence_spm
        if duration is None:
            duration = (steps or 8) * 60.0 / spm
        lean_fwd = self.u(-2.0, 10.0) + {"stairs_up": self.u(4.0, 14.0),
                                         "stairs_down": self.u(-2.0, 6.0)}.get(kind, 0.0)
        side = self.u(3.0, 9.0) * (1 if self.rng.random() < 0.5 else -1) \
            if kind == "carrying" else self.u(-2.0, 2.0)
        s = self.now
        self.flex.move(s, min(1.0, duration / 2), lean_fwd, self.rng)
        self.lean.move(s, min(1.0, duration / 2), side, self.rng)
        turn_at = s + self.u(2.0, 25.0)
        while turn_at + 3.0 < s + duration:
            self.yaw.move(turn_at, self.u(1.0, 3.0), self.yaw.last + (
                1 if self.rng.random() < 0.5 else -1) * self.u(30.0, 180.0), self.rng)
            turn_at += self.u(4.0, 40.0)
        self.seated = False
        self.bouts.append(GaitBout(s, s + duration, spm / 60.0, kind))
        self._sway("walking", 0.5)
        self._push("walking", "walking", duration, step_hz=round(spm / 60.0, 3), kind=kind)
