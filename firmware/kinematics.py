"""Continuous-time upper-back kinematics: trunk angles, their derivatives, and what a
sensor strapped to the back feels.

Every motion component is a function of time with analytic first and second
derivatives (minimum-jerk knot tracks, cubic-spline sway, gait oscillations), so the
gyro is the exact derivative of the orientation and the specific force includes the
exact lever-arm acceleration, at any sample rate. The same seed therefore gives the
same trajectory at 50 Hz and at 400 Hz.

Frames: world/heading frame x forward, y left, z up. Body (trunk) frame: x anterior,
y left (medio-lateral), z up along the spine. Orientation body→world is
``Rz(yaw) · Ry(flexion) · Rx(lean)`` (scipy ``"ZYX"`` Euler order): positive flexion
tips the top of the trunk forward, negative is reclining; positive lean raises the left
shoulder, i.e. tips the trunk to the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d

G = 9.80665  # m/s² per g
# Sensor position relative to the hip pivot, body frame (m): on the back surface (8 cm
# behind the spine's axis), about 45 cm above the hips (upper thoracic spine).
LEVER_ARM_M = np.array([-0.08, 0.0, 0.45])


@dataclass
class Sig:
    """A signal sampled at t with its first and second time derivatives."""

    v: np.ndarray
    d1: np.ndarray
    d2: np.ndarray

    def __add__(self, other: Sig) -> Sig:
        return Sig(self.v + other.v, self.d1 + other.d1, self.d2 + other.d2)

    def __mul__(self, other: Sig) -> Sig:
        """Product rule."""
        return Sig(self.v * other.v, self.d1 * other.v + self.v * other.d1,
                   self.d2 * other.v + 2 * self.d1 * other.d1 + self.v * other.d2)

    def scale(self, k: float | np.ndarray) -> Sig:
        return Sig(self.v * k, self.d1 * k, self.d2 * k)


class Track:
    """Piecewise minimum-jerk interpolation between knots (time, value).

    Between two knots the value follows 10u³−15u⁴+6u⁵, whose velocity and acceleration
    are zero at both knots: a held value is two knots with the same value. Before the
    first and after the last knot the value is held.
    """

    def __init__(self, value: float = 0.0):
        self.times: list[float] = [0.0]
        self.values: list[float] = [value]

    @property
    def last(self) -> float:
        return self.values[-1]

    def add(self, time: float, value: float) -> None:
        if time <= self.times[-1] + 1e-9:
            if time < self.times[-1] - 1e-9:
                raise ValueError(f"knot at {time} before the previous one at {self.times[-1]}")
            self.values[-1] = value  # same instant: the later definition wins
            return
        self.times.append(float(time))
        self.values.append(float(value))

    def hold_until(self, time: float) -> None:
        """Keep the current value until ``time`` (a knot, so the next move starts there)."""
        self.add(time, self.last)

    def evaluate(self, t: np.ndarray) -> Sig:
        k = np.asarray(self.times)
        vals = np.asarray(self.values)
        if len(k) == 1:
            z = np.zeros_like(t)
            return Sig(z + vals[0], z, z.copy())
        idx = np.clip(np.searchsorted(k, t, side="right") - 1, 0, len(k) - 2)
        t0 = k[idx]
        span = k[idx + 1] - t0
        dv = vals[idx + 1] - vals[idx]
        u = np.clip((t - t0) / span, 0.0, 1.0)
        u2 = u * u
        s = u2 * u * (10.0 + u * (-15.0 + 6.0 * u))
        ds = 30.0 * u2 * (1.0 - u) ** 2
        dds = 60.0 * u * (1.0 - u) * (1.0 - 2.0 * u)
        return Sig(vals[idx] + dv * s, dv * ds / span, dv * dds / (span * span))


def sway(rng: np.random.Generator, duration_s: float, t: np.ndarray, *,
         knot_s: float = 0.5, smooth_s: float = 1.5) -> Sig:
    """Unit-variance slow random sway (band-limited to roughly 1/(2π·smooth_s) Hz).

    Random values on a fixed knot grid (so the path does not depend on the sample rate)
    are Gaussian-smoothed and joined by a cubic spline.
    """
    n = int(np.ceil(duration_s / knot_s)) + 8
    grid = (np.arange(n) - 4) * knot_s
    raw = gaussian_filter1d(rng.standard_normal(n), smooth_s / knot_s, mode="wrap")
    raw /= max(float(np.std(raw)), 1e-12)
    coef = CubicSpline(grid, raw).c  # (4, n-1), local polynomials in (t - grid[i])
    idx = np.clip(((t - grid[0]) / knot_s).astype(np.int64), 0, n - 2)
    x = t - grid[idx]
    c3, c2, c1, c0 = coef[0, idx], coef[1, idx], coef[2, idx], coef[3, idx]
    v = ((c3 * x + c2) * x + c1) * x + c0
    d1 = (3.0 * c3 * x + 2.0 * c2) * x + c1
    d2 = 6.0 * c3 * x + 2.0 * c2
    return Sig(v, d1, d2)


def oscillation(env: Sig, amp: np.ndarray, phase: np.ndarray, omega: np.ndarray,
                harmonic: float, offset: float | np.ndarray) -> Sig:
    """``amp · env(t) · sin(harmonic·phase + offset)`` with exact derivatives."""
    w = harmonic * omega
    arg = harmonic * phase + offset
    s, c = np.sin(arg), np.cos(arg)
    return Sig(amp * env.v * s,
               amp * (env.d1 * s + env.v * w * c),
               amp * (env.d2 * s + 2.0 * env.d1 * w * c - env.v * w * w * s))


def gravity_body(flex: np.ndarray, lean: np.ndarray) -> np.ndarray:
    """World "up" (the specific force of gravity, 1 g) in the body frame.

    ``(−sin θ, cos θ sin φ, cos θ cos φ)`` for flexion θ and lean φ (radians), so the
    flexion is ``asin(−up_body_x)``: the forward tilt of the spine read from gravity.
    """
    st, ct = np.sin(flex), np.cos(flex)
    return np.stack([-st, ct * np.sin(lean), ct * np.cos(lean)], axis=1)


def body_motion(yaw: Sig, flex: Sig, lean: Sig, heading: np.ndarray,
                hip_acc_g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame specific force (g) and angular rate (deg/s) from ZYX Euler angles.

    ``yaw/flex/lean`` are in radians with derivatives; ``hip_acc_g`` is the hip's
    linear acceleration (n,3) in the heading frame given by ``heading`` (radians).
    """
    sf, cf = np.sin(flex.v), np.cos(flex.v)
    sl, cl = np.sin(lean.v), np.cos(lean.v)
    # body angular velocity (ZYX kinematics) and its derivative
    p = lean.d1 - yaw.d1 * sf
    q = flex.d1 * cl + yaw.d1 * cf * sl
    r = -flex.d1 * sl + yaw.d1 * cf * cl
    pd = lean.d2 - yaw.d2 * sf - yaw.d1 * flex.d1 * cf
    qd = (flex.d2 * cl - flex.d1 * lean.d1 * sl + yaw.d2 * cf * sl
          - yaw.d1 * flex.d1 * sf * sl + yaw.d1 * lean.d1 * cf * cl)
    rd = (-flex.d2 * sl - flex.d1 * lean.d1 * cl + yaw.d2 * cf * cl
          - yaw.d1 * flex.d1 * sf * cl - yaw.d1 * lean.d1 * cf * sl)
    omega = np.stack([p, q, r], axis=1)
    alpha = np.stack([pd, qd, rd], axis=1)
    lever = (np.cross(alpha, LEVER_ARM_M)
             + np.cross(omega, np.cross(omega, LEVER_ARM_M))) / G
    # hip acceleration: heading frame → body frame = Rx(lean)ᵀ Ry(flex)ᵀ Rz(heading − yaw)
    d = heading - yaw.v
    sd, cd = np.sin(d), np.cos(d)
    ax, ay, az = hip_acc_g[:, 0], hip_acc_g[:, 1], hip_acc_g[:, 2]
    x1, y1 = cd * ax - sd * ay, sd * ax + cd * ay
    x2, z2 = cf * x1 - sf * az, sf * x1 + cf * az
    hip_body = np.stack([x2, cl * y1 + sl * z2, -sl * y1 + cl * z2], axis=1)
    acc = hip_body + lever + gravity_body(flex.v, lean.v)
    return acc, np.degrees(omega)
