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

    def add_at(self, idx: np.ndarray, other: Sig) -> None:
        """In place: add ``other`` (sampled at ``idx``) to this signal."""
        self.v[idx] += other.v
        self.d1[idx] += other.d1
        self.d2[idx] += other.d2

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
        """Value and derivatives at sorted times ``t``; only samples inside a moving
        interval pay for the polynomial (most of a day is holds)."""
        k = np.asarray(self.times)
        vals = np.asarray(self.values)
        bounds = np.searchsorted(t, k, side="left")  # first sample of each knot interval
        counts = np.diff(np.concatenate([[0], bounds, [len(t)]]))
        # value held before the first knot, on each interval's start, and after the last
        v = np.repeat(np.concatenate([vals[:1], vals]), counts)
        d1, d2 = np.zeros_like(t), np.zeros_like(t)
        for i in np.flatnonzero(np.diff(vals) != 0.0):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                continue
            span, dv = k[i + 1] - k[i], vals[i + 1] - vals[i]
            u = (t[lo:hi] - k[i]) / span
            u2 = u * u
            v[lo:hi] = vals[i] + dv * (u2 * u * (10.0 + u * (-15.0 + 6.0 * u)))
            d1[lo:hi] = (dv * 30.0 / span) * u2 * (1.0 - u) ** 2
            d2[lo:hi] = (dv * 60.0 / (span * span)) * u * (1.0 - u) * (1.0 - 2.0 * u)
        return Sig(v, d1, d2)


class Sway:
    """Unit-variance slow random sway (band-limited to roughly 1/(2π·smooth_s) Hz).

    Random values on a fixed knot grid (so the path does not depend on the sample rate)
    are Gaussian-smoothed and joined by a cubic spline; built once, evaluated in chunks.
    """

    def __init__(self, rng: np.random.Generator, duration_s: float, *, knot_s: float = 0.5,
                 smooth_s: float = 1.5):
        n = int(np.ceil(duration_s / knot_s)) + 8
        self.knot_s, self.n = knot_s, n
        self.origin = -4 * knot_s
        grid = self.origin + np.arange(n) * knot_s
        sigma = smooth_s / knot_s
        raw = gaussian_filter1d(rng.standard_normal(n), sigma, mode="wrap")
        # unit variance by the filter's own gain (not the sample's spread), so a short
        # recording gets a slice of the same process, not an inflated one
        impulse = np.zeros(8 * int(np.ceil(sigma)) + 1)
        impulse[len(impulse) // 2] = 1.0
        raw /= np.sqrt(np.sum(gaussian_filter1d(impulse, sigma) ** 2))
        self.coef = CubicSpline(grid, raw).c  # (4, n-1): polynomials in (t - grid[i])

    def evaluate(self, t: np.ndarray) -> Sig:
        idx = np.clip(((t - self.origin) / self.knot_s).astype(np.int64), 0, self.n - 2)
        x = t - (self.origin + idx * self.knot_s)
        c3, c2, c1, c0 = (self.coef[i, idx] for i in range(4))
        return Sig(((c3 * x + c2) * x + c1) * x + c0, (3.0 * c3 * x + 2.0 * c2) * x + c1,
                   6.0 * c3 * x + 2.0 * c2)


def oscillation(env: Sig, amp: np.ndarray, phase: Sig, harmonic: float,
                offset: float | np.ndarray) -> Sig:
    """``amp · env(t) · sin(harmonic·phase(t) + offset)`` with exact derivatives (the
    phase may wander: cadence varies from step to step)."""
    w, wd = harmonic * phase.d1, harmonic * phase.d2
    arg = harmonic * phase.v + offset
    s, c = np.sin(arg), np.cos(arg)
    return Sig(amp * env.v * s,
               amp * (env.d1 * s + env.v * w * c),
               amp * (env.d2 * s + 2.0 * env.d1 * w * c + env.v * (wd * c - w * w * s)))


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
    # lever-arm acceleration α×r + ω×(ω×r), written out for r = (rx, 0, rz)
    rx, rz = LEVER_ARM_M[0], LEVER_ARM_M[2]  # y is 0: the sensor sits on the midline
    w_dot_r = p * rx + r * rz
    w2 = p * p + q * q + r * r
    lever_x = (qd * rz + p * w_dot_r - w2 * rx) / G
    lever_y = (rd * rx - pd * rz + q * w_dot_r) / G
    lever_z = (-qd * rx + r * w_dot_r - w2 * rz) / G
    # hip acceleration: heading frame → body frame = Rx(lean)ᵀ Ry(flex)ᵀ Rz(heading − yaw)
    d = heading - yaw.v
    sd, cd = np.sin(d), np.cos(d)
    ax, ay, az = hip_acc_g[:, 0], hip_acc_g[:, 1], hip_acc_g[:, 2]
    x1, y1 = cd * ax - sd * ay, sd * ax + cd * ay
    x2, z2 = cf * x1 - sf * az, sf * x1 + cf * az
    acc = np.empty((len(d), 3))
    acc[:, 0] = x2 + lever_x - sf
    acc[:, 1] = cl * y1 + sl * z2 + lever_y + cf * sl
    acc[:, 2] = -sl * y1 + cl * z2 + lever_z + cf * cl
    gyro = np.empty_like(acc)
    gyro[:, 0], gyro[:, 1], gyro[:, 2] = p, q, r
    return acc, np.degrees(gyro, out=gyro)
