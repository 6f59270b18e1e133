"""Gait for the independent simulator: hip position from an inverted-pendulum model.

Unlike `firmware.trunk`, which prescribes trunk *accelerations* of fixed size (0.1–0.3 g
whatever the pace), this model prescribes *displacements* and lets physics give the
accelerations, so slow walking is as faint as it really is:

* the hips vault over the stance leg: an arc per step of amplitude ≈ step²/(16·leg)
  (half the pendulum's rise), ±30 %, plus 2nd–4th harmonics of random size and phase
  (heel strike, knee flexion);
* left and right steps differ (asymmetry up to 8 % in time and 30 % in height), so a
  stride-frequency component appears; step times vary from step to step (CV 1–10 %);
* forward speed surges and brakes within each step; the body sways side to side once
  per stride; heel strikes add short damped pulses (stronger downstairs, weak when
  shuffling);
* the heading follows the trunk's yaw keyframes (turns), so turning gives centripetal
  acceleration; stairs add a climb of 17 cm per step.

All positions are in metres in the world frame; `render_gait` returns them with the
trunk angle oscillations (degrees) and the pulses (g), on the simulator's time grid.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from spinesense.firmware.worldsim_actor import GaitBout

RISER_M = 0.17


def _envelope(tb: np.ndarray, start: float, end: float, ramp: float) -> np.ndarray:
    """0 → 1 → 0 with smoothstep ramps of ``ramp`` seconds at each end."""
    ramp = max(min(ramp, (end - start) / 2), 1e-3)
    u = np.clip(np.minimum(tb - start, end - tb) / ramp, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _step_phase(bout: GaitBout, tb: np.ndarray, rng: np.random.Generator,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Step phase φ(t) (1 per step, smooth) and the times of the steps."""
    period = 1.0 / bout.cadence_hz
    cv = rng.uniform(0.01, 0.10 if bout.kind in ("talking", "shuffle") else 0.05)
    asym = rng.uniform(0.0, 0.08)
    n = int(np.ceil((bout.end - bout.start) / period * 1.3)) + 4
    durations = period * (1.0 + cv * rng.standard_normal(n))
    durations *= 1.0 + asym / 2 * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    # slow drift of the pace too (people speed up and slow down)
    durations *= 1.0 + 0.05 * np.sin(np.linspace(0, rng.uniform(0, 6), n) + rng.uniform(0, 6))
    steps = bout.start + np.concatenate([[0.0], np.cumsum(np.clip(durations, 0.3 * period,
                                                                   None))])
    phase = PchipInterpolator(steps, np.arange(len(steps), dtype=float))(tb)
    return phase, steps[(steps > bout.start) & (steps < bout.end)]


def render_gait(bouts: list[GaitBout], t: np.ndarray, heading_rad: np.ndarray,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hip position (n,3) m, trunk flexion/lean/yaw additions (deg), pulses (n,3) g."""
    n = len(t)
    dt = float(t[1] - t[0]) if n > 1 else 0.005
    pos = np.zeros((n, 3))
    flex, lean, yaw = np.zeros(n), np.zeros(n), np.zeros(n)
    pulses = np.zeros((n, 3))
    leg = rng.uniform(0.8, 1.0)
    for bout in bouts:
        a, b = np.searchsorted(t, [bout.start - 0.5, bout.end + 0.5])
        if b - a < 4:
            continue
        tb = t[a:b]
        phase, step_times = _step_phase(bout, tb, rng)
        ramp = rng.uniform(0.6, 1.6) / bout.cadence_hz
        env = _envelope(tb, bout.start, bout.end, ramp)
        kind = bout.kind
        step_len = np.clip(rng.uniform(0.4, 0.55) + 0.3 * (bout.cadence_hz - 1.0), 0.35, 0.85)
        if kind == "shuffle":
            step_len = rng.uniform(0.2, 0.35)
        elif kind.startswith("stairs"):
            step_len = rng.uniform(0.25, 0.32)
        # half the pendulum's rise L(1 − cos α), sin α = step/2L ≈ step²/(16·L)
        amp_v = step_len ** 2 / (16 * leg) * rng.uniform(0.8, 1.4)
        if kind.startswith("stairs"):
            amp_v = rng.uniform(0.012, 0.03)
        two_pi = 2 * np.pi
        vert = -np.cos(two_pi * phase)
        for k in (2, 3, 4):
            vert += rng.uniform(0.0, 0.3) / k ** 2 * np.cos(two_pi * k * phase
                                                             + rng.uniform(0, 6.3))
        vert += rng.uniform(0.0, 0.3) * np.cos(np.pi * phase + rng.uniform(0, 6.3))
        z = env * amp_v * vert
        if kind == "stairs_up":
            z += RISER_M * np.clip(phase, 0, None) * (tb <= bout.end) \
                + RISER_M * phase[np.searchsorted(tb, bout.end) - 1] * (tb > bout.end)
        elif kind == "stairs_down":
            z -= RISER_M * np.clip(phase, 0, None) * (tb <= bout.end) \
                + RISER_M * phase[np.searchsorted(tb, bout.end) - 1] * (tb > bout.end)
        speed = step_len * bout.cadence_hz * env * (
            1.0 + rng.uniform(0.03, 0.12) * np.cos(two_pi * phase + rng.uniform(0, 6.3)))
        psi = heading_rad[a:b]
        # integrate the velocity along the heading (turns bend the path)
        vx, vy = speed * np.cos(psi), speed * np.sin(psi)
        px, py = np.cumsum(vx) * dt, np.cumsum(vy) * dt
        ml = env * rng.uniform(0.005, 0.025) * np.sin(np.pi * phase + rng.uniform(0, 6.3))
        px += -np.sin(psi) * ml
        py += np.cos(psi) * ml
        # after the bout the hips stay where they stopped
        pos[a:b, 0] += px - px[0]
        pos[a:b, 1] += py - py[0]
        pos[a:b, 2] += z - z[0]
        pos[b:, 0] += px[-1] - px[0]
        pos[b:, 1] += py[-1] - py[0]
        pos[b:, 2] += z[-1] - z[0]
        damp = {"carrying": 0.4, "talking": 0.7, "shuffle": 0.5}.get(kind, 1.0)
        flex[a:b] += env * rng.uniform(0.4, 3.0) * np.sin(two_pi * phase + rng.uniform(0, 6.3))
        lean[a:b] += env * rng.uniform(0.8, 4.0) * damp * np.sin(np.pi * phase
                                                                  + rng.uniform(0, 6.3))
        yaw[a:b] += env * rng.uniform(1.0, 6.0) * damp * np.sin(np.pi * phase
                                                                 + rng.uniform(0, 6.3))
        strike = rng.uniform(0.02, 0.25) * {"stairs_down": 2.0, "shuffle": 0.3,
                                            "talking": 0.7}.get(kind, 1.0)
        freq, decay = rng.uniform(8.0, 20.0), rng.uniform(0.02, 0.05)
        for ts in step_times:
            lo, hi = np.searchsorted(t, [ts, ts + 6 * decay])
            tau = t[lo:hi] - ts
            pulse = strike * rng.uniform(0.6, 1.4) * np.exp(-tau / decay) \
                * np.sin(two_pi * freq * tau)
            pulses[lo:hi, 2] += pulse
            pulses[lo:hi, 0] += 0.3 * pulse * np.cos(heading_rad[lo:hi])
            pulses[lo:hi, 1] += 0.3 * pulse * np.sin(heading_rad[lo:hi])
    return {"pos": pos, "flex": flex, "lean": lean, "yaw": yaw, "pulses": pulses}
