"""Building blocks of a simulated day: activities that write knots into the trunk's
motion tracks and append labelled segments.

A `Timeline` holds the trunk's angle tracks (degrees), the hip's position tracks (m),
the sway amplitudes per activity, the walking bouts and the segment list. Each activity
method starts at ``now``, moves the tracks (ramping from wherever the previous activity
left the body, so the motion is continuous), appends one segment and advances ``now``.
Scenario programs (`spinesense.firmware.scenarios`) are sequences of these calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinesense.firmware.kinematics import Track

HIP_RISE_M = 0.45  # hip height change between sitting and standing
# Sway amplitudes (1-σ, degrees) by activity: slow flexion, lean and yaw sway (~0.1 Hz),
# then fast "fidget" motion (~1–3 Hz: arms typing, breathing, shifting) on flexion and yaw
SWAY = {
    "still": (0.25, 0.2, 0.3, 0.02),
    "sitting": (0.9, 0.6, 2.5, 0.08),
    "typing": (0.6, 0.4, 1.5, 0.2),
    "slouch": (1.2, 0.8, 2.0, 0.08),
    "recline": (1.0, 0.6, 2.0, 0.05),
    "standing": (0.8, 0.7, 3.0, 0.06),
    "walking": (0.5, 0.5, 1.0, 0.0),
    "lying": (0.4, 0.4, 0.5, 0.02),
    "transition": (0.2, 0.2, 0.5, 0.0),
}


@dataclass
class Segment:
    start: float
    end: float
    activity: str
    posture: str  # sitting, standing, walking or lying
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 4), "end": round(self.end, 4),
                "activity": self.activity, "posture": self.posture, **self.info}


@dataclass
class Knock:
    """A bump (the desk, the chair, a cable tug): a damped oscillation of the body's
    position, felt as a brief acceleration; the posture does not change."""

    t: float
    peak_g: float
    freq_hz: float
    decay_s: float
    direction: tuple[float, float, float]  # unit vector, heading frame


@dataclass
class Walk:
    start: float
    end: float
    freq_hz: float
    amp: dict[str, float]  # vert_g, ap_g, ml_g, pitch_deg, roll_deg, yaw_deg
    phase0: float


class Timeline:
    """The day under construction; see the module docstring."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.now = 0.0
        self.flex, self.lean, self.yaw = Track(0.0), Track(0.0), Track(0.0)
        self.hip_x, self.hip_z = Track(0.0), Track(0.0)
        self.sway = [Track(a) for a in SWAY["still"]]
        self.walk_env = Track(0.0)
        self.walks: list[Walk] = []
        self.knocks: list[Knock] = []
        self.segments: list[Segment] = []
        self.calibration_info: dict[str, Any] = {}
        self.seated = True

    # -- low level -------------------------------------------------------------------
    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def _move(self, track: Track, start: float, ramp: float, target: float) -> None:
        track.hold_until(start)
        track.add(start + max(ramp, 1e-3), target)

    def _sway_to(self, kind: str, ramp: float = 1.0) -> None:
        for track, amp in zip(self.sway, SWAY[kind], strict=True):
            self._move(track, self.now, ramp, amp)

    def _push(self, activity: str, posture: str, duration: float, **info: Any) -> None:
        self.segments.append(Segment(self.now, self.now + duration, activity, posture, info))
        self.now += duration

    @property
    def upright_posture(self) -> str:
        """Typing, slouching and reaching happen seated or standing (a standing desk)."""
        return "sitting" if self.seated else "standing"

    def _posture(self, posture: str, duration: float, activity: str, flex: float,
                 lean: float, ramp: float, sway: str, **info: Any) -> None:
        ramp = min(ramp, duration)
        self._move(self.flex, self.now, ramp, flex)
        self._move(self.lean, self.now, ramp, lean)
        self._sway_to(sway, min(1.0, duration))
        self._push(activity, posture, duration, **info)

    def add_knocks(self, per_hour: float, end: float) -> None:
        """Scatter bumps over the still-ish segments (sitting, standing, lying; never
        during calibration, which the wearer keeps deliberately still)."""
        still = [s for s in self.segments if s.start < end and s.activity in (
            "sitting_upright", "typing", "slouch", "recline", "armrest_lean", "standing",
            "lying")]
        total = sum(min(s.end, end) - s.start for s in still)
        count = int(self.rng.poisson(per_hour * total / 3600.0)) if total > 0 else 0
        for _ in range(count):
            seg = still[int(self.rng.choice(len(still), p=np.array(
                [min(s.end, end) - s.start for s in still]) / total))]
            direction = self.rng.normal(size=3)
            self.knocks.append(Knock(
                self.u(seg.start, min(seg.end, end)), self.u(0.2, 1.0), self.u(4.0, 12.0),
                self.u(0.03, 0.1), tuple(direction / np.linalg.norm(direction))))
        self.knocks.sort(key=lambda k: k.t)

    # -- sitting -----------------------------------------------------------------------
    def still_upright(self, duration: float) -> None:
        """Sitting upright and deliberately still: this posture *is* flexion 0."""
        self._posture("sitting", duration, "still_upright", 0.0, 0.0, 1.5, "still")

    def calibration(self, still_s: float = 15.0) -> None:
        """Still upright, a guided lean forward (brief: well under the slouch delay), back."""
        self.still_upright(still_s)
        self.calibration_info = {"start": round(self.now - still_s + 2.0, 4),
                                 "end": round(self.now, 4)}
        depth = self.u(20.0, 30.0)
        start, base = self.now, self.flex.last
        self.flex.hold_until(start)
        self.flex.add(start + 1.5, depth)
        self.flex.add(start + 3.0, depth)
        self.flex.add(start + 4.5, base)
        self._sway_to("still", 0.5)
        self._push("calibration_lean", "sitting", 4.5, peak_deg=round(depth, 2))
        self.calibration_info["lean"] = {"start": round(start, 4), "end": round(self.now, 4),
                                    "peak_deg": round(depth, 2)}
        self.still_upright(10.0)

    def sit(self, duration: float) -> None:
        self._posture("sitting", duration, "sitting_upright", self.u(-1.0, 4.0),
                      self.u(-3.0, 3.0), self.u(1.0, 3.0), "sitting")

    def typing(self, duration: float) -> None:
        self._posture(self.upright_posture, duration, "typing", self.u(5.0, 9.0), self.u(-2.0, 2.0),
                      self.u(1.0, 3.0), "typing")

    def armrest_lean(self, duration: float) -> None:
        """Leaning sideways on an armrest: lateral lean, not flexion."""
        side = 1.0 if self.rng.random() < 0.5 else -1.0
        self._posture("sitting", duration, "armrest_lean", self.u(0.0, 4.0),
                      side * self.u(6.0, 12.0), self.u(1.5, 3.0), "sitting")

    def slouch(self, hold: float, depth: float | None = None, ramp: float | None = None) -> None:
        """Sink forward to ``depth`` over ``ramp`` seconds and stay there for ``hold``."""
        depth = self.u(18.0, 40.0) if depth is None else depth
        ramp = self.u(3.0, 15.0) if ramp is None else ramp
        self._posture(self.upright_posture, ramp + hold, "slouch", depth, self.u(-3.0, 3.0), ramp,
                      "slouch", target_deg=round(depth, 2))

    def reach(self, depth: float | None = None, total: float | None = None) -> None:
        """A deep but brief forward reach (to a drawer, the floor): shorter than the delay."""
        depth = self.u(25.0, 50.0) if depth is None else depth
        total = self.u(2.2, 4.0) if total is None else total
        start, base = self.now, self.flex.last
        down = total * self.u(0.3, 0.4)
        up = total * self.u(0.3, 0.4)
        self.flex.hold_until(start)
        self.flex.add(start + down, depth)
        self.flex.add(start + total - up, depth)
        self.flex.add(start + total, base)
        side = self.u(-10.0, 10.0)
        lean0 = self.lean.last
        self._move(self.lean, start, down, lean0 + side)
        self._move(self.lean, start + total - up, up, lean0)
        self._sway_to("transition", 0.3)
        self._push("reach", self.upright_posture, total, peak_deg=round(depth, 2))

    def recline(self, hold: float, depth: float | None = None) -> None:
        """Lean back against the backrest: negative flexion, never a slouch."""
        depth = -self.u(10.0, 25.0) if depth is None else depth
        ramp = self.u(1.5, 4.0)
        self._posture("sitting", ramp + hold, "recline", depth, self.u(-2.0, 2.0), ramp,
                      "recline", target_deg=round(depth, 2))

    # -- transitions, standing, walking, lying -----------------------------------------
    def sit_to_stand(self) -> None:
        """Lean forward ~20–35° to bring the weight over the feet, then push up."""
        dur, lean_deg = self.u(1.6, 2.8), self.u(20.0, 35.0)
        s, flex0 = self.now, self.flex.last
        self.flex.hold_until(s)
        self.flex.add(s + 0.5 * dur, max(lean_deg, flex0 + 5.0))
        self.flex.add(s + dur, self.u(0.0, 3.0))
        self._move(self.lean, s, dur, self.u(-1.5, 1.5))
        self._move(self.hip_x, s + 0.2 * dur, 0.6 * dur, self.hip_x.last + 0.15)
        self._move(self.hip_z, s + 0.55 * dur, 0.45 * dur, self.hip_z.last + HIP_RISE_M)
        self._sway_to("transition", 0.3)
        self._push("sit_to_stand", "standing", dur, peak_deg=round(lean_deg, 2))
        self.seated = False

    def stand_to_sit(self) -> None:
        """Lean forward and lower the hips into the chair."""
        dur, lean_deg = self.u(1.6, 2.8), self.u(20.0, 35.0)
        s = self.now
        self.flex.hold_until(s)
        self.flex.add(s + 0.45 * dur, lean_deg)
        self.flex.add(s + dur, self.u(0.0, 4.0))
        self._move(self.lean, s, dur, self.u(-1.5, 1.5))
        self._move(self.hip_x, s + 0.1 * dur, 0.6 * dur, self.hip_x.last - 0.15)
        self._move(self.hip_z, s + 0.3 * dur, 0.5 * dur, self.hip_z.last - HIP_RISE_M)
        self._sway_to("transition", 0.3)
        self._push("stand_to_sit", "sitting", dur, peak_deg=round(lean_deg, 2))
        self.seated = True

    def stand(self, duration: float) -> None:
        self._posture("standing", duration, "standing", self.u(0.0, 3.0), self.u(-2.0, 2.0),
                      1.0, "standing")

    def walk(self, duration: float, freq_hz: float | None = None) -> None:
        """Walking with a slight forward lean, step-synchronous trunk motion and turns."""
        freq = self.u(1.6, 2.0) if freq_hz is None else freq_hz
        s, ramp = self.now, min(1.2, duration / 3)
        self._move(self.flex, s, 1.0, self.u(3.0, 8.0))
        self._move(self.lean, s, 1.0, self.u(-1.0, 1.0))
        self._move(self.walk_env, s, ramp, 1.0)
        self._move(self.walk_env, s + duration - ramp, ramp, 0.0)
        amp = {"vert_g": self.u(0.1, 0.3), "ap_g": self.u(0.08, 0.18),
               "ml_g": self.u(0.04, 0.1), "pitch_deg": self.u(1.0, 2.0),
               "roll_deg": self.u(2.0, 4.0), "yaw_deg": self.u(3.0, 6.0)}
        self.walks.append(Walk(s, s + duration, freq, amp, self.u(0.0, 2 * np.pi)))
        turn_at = s + self.u(5.0, 30.0)
        while turn_at + 3.0 < s + duration - 2.0:  # turns: corridors, corners, U-turns
            self._move(self.yaw, turn_at, self.u(1.5, 2.5),
                       self.yaw.last + self.rng.choice([-1, 1]) * self.u(45.0, 180.0))
            turn_at += self.u(8.0, 60.0)
        self._sway_to("walking", 1.0)
        self._push("walking", "walking", duration, step_hz=round(freq, 3))

    def lie_down(self, side: bool = False) -> None:
        dur = self.u(2.5, 4.0)
        s = self.now
        if side:
            self._move(self.lean, s, dur, (1 if self.rng.random() < 0.5 else -1)
                       * self.u(78.0, 88.0))
            self._move(self.flex, s, dur, self.u(-10.0, 0.0))
        else:
            self._move(self.flex, s, dur, -self.u(78.0, 88.0))
            self._move(self.lean, s, dur, self.u(-3.0, 3.0))
        self._move(self.hip_x, s, dur, self.hip_x.last - 0.2)
        self._sway_to("transition", 0.3)
        self._push("lie_down", "lying", dur, side=side)

    def lying(self, duration: float) -> None:
        self.flex.hold_until(self.now)
        self.lean.hold_until(self.now)
        self._sway_to("lying", 1.0)
        self._push("lying", "lying", duration)

    def sit_up(self) -> None:
        dur = self.u(2.5, 4.0)
        s = self.now
        self._move(self.flex, s, dur, self.u(0.0, 4.0))
        self._move(self.lean, s, dur, self.u(-2.0, 2.0))
        self._move(self.hip_x, s, dur, self.hip_x.last + 0.2)
        self._sway_to("transition", 0.3)
        self._push("sit_up", "sitting", dur)
