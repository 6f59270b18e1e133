"""An independent simulator of upper-back IMU days, to find what the detector gets wrong.

`firmware.simulator` was written beside the detector and shares its assumptions; this
one was written apart and disagrees wherever biomechanics allows. Its body model:

* the trunk is a rigid segment pivoting at the hips; its tilt is a rotation vector
  (flexion about the body's left axis, lateral lean about its forward axis) under a yaw;
  the sensor sits 0.3–0.55 m above the hips and 6–12 cm behind the spine, so every
  rotation also moves it (lever arm), and the hips move in the world (sit-to-stand,
  inverted-pendulum gait, stairs, turns);
* accelerations are the second derivative of the sensor's *position* on a 100 Hz grid,
  angular rates the derivative of its *orientation* (rotation of the sensor frame,
  slips included), then the chip's low-pass filter, then sampling at 25–400 Hz;
* the board lies on the back between the shoulder blades, z out of the back
  (``back-out``) or into it (``back-in``), tilted by up to 30° and turned any way in the
  plane of the back; a clip may slip mid-day by 5–40°;
* sensor errors: noise, bias, scale and cross-axis error, quantisation, clipping, a
  ±1 % clock; timestamps as cheap loggers write them (10–40 ms ticks, repeated stamps).

`simulate_world(day, seed)` returns a `simulator.Simulation` (same CSV and truth JSON as
`spinesense simulate`, labelled by `firmware.labels`), with extra truth keys: ``model``,
``day``, ``facing``, ``mount_tilt_deg``, ``slips``, ``stamps``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import butter, sosfilt, sosfiltfilt

from spinesense.firmware.labels import label_params, label_truth
from spinesense.firmware.simulator import POSTURES, Simulation
from spinesense.firmware.worldsim_actor import Actor
from spinesense.firmware.worldsim_days import DAY_TYPES
from spinesense.firmware.worldsim_gait import render_gait
from spinesense.firmware.worldsim_sensor import (
    FACINGS,
    draw_mounting,
    draw_slip,
    logger_stamps,
    rodrigues,
    sensor_errors,
)

G = 9.80665
GRID_HZ = 100.0
MOVING = ("walking", "sit_to_stand", "stand_to_sit", "reach", "lie_down", "sit_up")

__all__ = ["DAY_TYPES", "FACINGS", "simulate_world"]


def _noise(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    """Unit-variance low-passed white noise on the grid (zero-phase, so chunk-free)."""
    sos = butter(2, cutoff_hz / (GRID_HZ / 2), output="sos")
    x = sosfiltfilt(sos, rng.standard_normal(n + 400))[200:200 + n]
    return x / (x.std() + 1e-12)


def _trunk(actor: Actor, t: np.ndarray, rng: np.random.Generator,
           gait: dict[str, np.ndarray]) -> np.ndarray:
    """Trunk angles (n,3) in degrees: flexion, lean, yaw = keys + sway + fidget +
    breathing + gait oscillations."""
    n = len(t)
    slow, fast = actor.sway_slow.evaluate(t), actor.sway_fast.evaluate(t)
    slow_hz, fast_hz = rng.uniform(0.03, 0.3), rng.uniform(0.8, 4.0)
    flex = actor.flex.evaluate(t) + slow * _noise(rng, n, slow_hz) \
        + fast * _noise(rng, n, fast_hz) + gait["flex"]
    lean = actor.lean.evaluate(t) + 0.8 * slow * _noise(rng, n, slow_hz) + gait["lean"]
    yaw = actor.yaw.evaluate(t) + 3.0 * slow * _noise(rng, n, slow_hz) \
        + 2.0 * fast * _noise(rng, n, fast_hz) + gait["yaw"]
    rate = rng.uniform(8.0, 24.0) / 60.0 * (1.0 + 0.15 * _noise(rng, n, 0.02))
    flex += rng.uniform(0.1, 0.6) * np.sin(2 * np.pi * np.cumsum(rate) / GRID_HZ
                                            + rng.uniform(0, 6.3))
    return np.column_stack([flex, lean, yaw])


def body_rotation(angles_deg: np.ndarray) -> np.ndarray:
    """Body→world matrices (n,3,3): yaw about up, after a tilt whose rotation vector is
    (lean, flexion, 0): positive flexion tips the top of the trunk forward, positive lean
    to the right."""
    rad = np.radians(angles_deg)
    tilt = rodrigues(np.column_stack([rad[:, 1], rad[:, 0], np.zeros(len(rad))]))
    c, s = np.cos(rad[:, 2])[:, None], np.sin(rad[:, 2])[:, None]
    out = np.empty((len(rad), 3, 3))
    out[:, 0, :] = c * tilt[:, 0, :] - s * tilt[:, 1, :]
    out[:, 1, :] = s * tilt[:, 0, :] + c * tilt[:, 1, :]
    out[:, 2, :] = tilt[:, 2, :]
    return out


def tilt_angles(angles_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True flexion, lateral lean and heading (deg, scipy's "ZYX" Euler angles) of the
    trunk with these keyframe angles, in closed form (no matrices).

    The flexion is the forward tilt of the spine read from gravity, asin(−up_body_x)
    with up_body = Rᵀ·up, the third row of R, as DESIGN A2's ``flexion_deg`` means it;
    for a tilt rotation vector (φ, θ, 0) of size a that is asin(sin a · θ / a)."""
    rad = np.radians(angles_deg)
    lean, flex = rad[:, 1], rad[:, 0]
    a = np.hypot(lean, flex)
    sinc = np.where(a > 1e-12, np.sin(a) / np.where(a > 1e-12, a, 1.0), 1.0)
    c = (1.0 - np.cos(a)) / np.where(a > 1e-12, a * a, 1.0)
    r20, r21, r22 = -sinc * flex, sinc * lean, 1.0 - c * (lean * lean + flex * flex)
    r00, r10 = 1.0 - c * flex * flex, c * lean * flex  # first column of the tilt
    yaw = rad[:, 2] + np.arctan2(r10, r00)
    return (np.degrees(np.arcsin(np.clip(-r20, -1.0, 1.0))),
            np.degrees(np.arctan2(r21, r22)), np.degrees(np.angle(np.exp(1j * yaw))))


def _impacts(actor: Actor, t: np.ndarray) -> np.ndarray:
    out = np.zeros((len(t), 3))
    for k in actor.impacts:
        lo, hi = np.searchsorted(t, [k.t, k.t + 6 * k.decay_s])
        tau = t[lo:hi] - k.t
        out[lo:hi] += (k.peak_g * np.exp(-tau / k.decay_s) * np.sin(2 * np.pi * k.freq_hz * tau)
                       )[:, None] * np.asarray(k.direction)
    return out


def _gaps(rng: np.random.Generator, tq: np.ndarray, actor: Actor, wanted: bool,
          ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """One to three dropouts of 0.3–60 s (log-uniform) away from the calibration."""
    in_gap = np.zeros(len(tq), bool)
    if not wanted:
        return in_gap, []
    safe = actor.calibration.get("end", 0.0) + 5.0
    out = []
    for _ in range(int(rng.integers(1, 4))):
        length = float(np.exp(rng.uniform(np.log(0.3), np.log(60.0))))
        start = float(rng.uniform(safe, max(safe, tq[-1] - length - 1.0)))
        out.append((start, start + length))
        in_gap[np.searchsorted(tq, start):np.searchsorted(tq, start + length)] = True
    return in_gap, sorted(out)


def _sample_times(rng: np.random.Generator, duration: float, rate: float,
                  switch: bool | None, clock: float) -> tuple[np.ndarray, list[dict]]:
    """Sample times at ``rate`` Hz; with a switch, at another rate (25–400 Hz) from a
    moment in the middle half of the day on (its own random stream, so that the rest of
    the seed's draws stay the same)."""
    wanted = rng.random() < 0.1
    new_rate = float(rng.choice([25.0, 50.0, 100.0, 200.0, 400.0])) * clock
    at = rng.uniform(0.25, 0.75) * duration
    switch = wanted if switch is None else switch
    if not switch or abs(new_rate - rate) < 1e-9:
        return np.arange(int(np.floor(duration * rate))) / rate, []
    first = np.arange(int(np.floor(at * rate))) / rate
    start = first[-1] + 1.0 / new_rate
    second = start + np.arange(int(np.floor((duration - start) * new_rate))) / new_rate
    return np.concatenate([first, second]), [{"t": round(start, 6),
                                              "rate_hz": round(new_rate / clock, 6)}]


def _draw(rng: np.random.Generator, value: Any, draw: Any) -> Any:
    """``value``, or a draw; the draw is made either way, so that fixing one option
    leaves every other draw of the seed unchanged."""
    drawn = draw(rng)
    return drawn if value is None else value


def simulate_world(day: str, seed: int, *, minutes: float | None = None,
                   rate_hz: float | None = None, facing: str | None = None,
                   accel_only: bool | None = None, stamps: str | None = None,
                   slip: bool | None = None, labels: dict | None = None,
                   t0: float | None = None, ideal_sensor: bool = False,
                   gaps: bool | None = None, rate_switch: bool | None = None) -> Simulation:
    """Simulate one day of type ``day`` (a key of `DAY_TYPES`) from ``seed``. Every option
    left at None is drawn from the seed: length within the day type's range, rate
    25–400 Hz, facing, accelerometer-only (1 in 4), timestamps (``clean``, ``jitter``
    or ``logger``), a clip slip (1 in 3), the time origin, recording gaps (1 day in 6:
    one to three dropouts of 0.3–60 s, which block slouch truth as in `simulate`) and a
    change of sample rate mid-file (1 day in 10, as phone loggers do)."""
    if day not in DAY_TYPES:
        raise ValueError(f"unknown day type {day!r}; choose one of {', '.join(DAY_TYPES)}")
    if facing is not None and facing not in FACINGS:
        raise ValueError(f"unknown facing {facing!r}; choose one of {', '.join(FACINGS)}")
    if stamps is not None and stamps not in ("clean", "jitter", "logger"):
        raise ValueError(f"unknown stamps {stamps!r}; choose clean, jitter or logger")
    streams = [np.random.default_rng(s) for s in
               np.random.SeedSequence([int(seed), 0xB0D1, 7]).spawn(9)]
    opts = streams[7]
    spec = DAY_TYPES[day]
    minutes = _draw(opts, minutes, lambda r: r.uniform(*spec.minutes))
    rate_hz = float(_draw(opts, rate_hz, lambda r: r.choice(
        [25.0, 26.0, 50.0, 52.0, 60.0, 100.0, 104.0, 200.0, 400.0, r.uniform(25.0, 400.0)])))
    if not 25.0 <= rate_hz <= 400.0:
        raise ValueError(f"rate_hz {rate_hz:g} is outside DESIGN A1's 25..400 Hz")
    facing = _draw(opts, facing, lambda r: str(r.choice(FACINGS)))
    accel_only = bool(_draw(opts, accel_only, lambda r: r.random() < 0.25))
    stamps = _draw(opts, stamps, lambda r: str(r.choice(["clean", "jitter", "logger"],
                                                        p=[0.4, 0.3, 0.3])))
    slip = bool(_draw(opts, slip, lambda r: r.random() < 0.33))
    t0 = float(_draw(opts, t0, lambda r: float(r.choice([0.0, r.uniform(0, 1e5),
                                                          1.7e9 + r.uniform(0, 1e7)]))))
    duration = float(minutes) * 60.0
    if duration < 60.0:
        raise ValueError(f"minutes {minutes:g} is too short: at least 1 minute")

    actor = Actor(streams[0])
    spec.program(actor, duration)
    actor.segments = [s for s in actor.segments if s.start < duration]
    actor.segments[-1].end = duration
    actor.bumps(opts.uniform(0.0, 6.0), duration)
    gaps = bool(_draw(opts, gaps, lambda r: r.random() < 1 / 6))

    grid = np.arange(0.0, duration + 1.0, 1.0 / GRID_HZ)
    heading = np.radians(actor.yaw.evaluate(grid))
    gait = render_gait(actor.bouts, grid, heading, streams[1])
    angles = _trunk(actor, grid, streams[2], gait)
    rot = body_rotation(angles)
    body = streams[3]
    lever = np.array([-body.uniform(0.06, 0.12), 0.0, body.uniform(0.3, 0.55)])
    hx, hz = actor.hip_x.evaluate(grid), actor.hip_z.evaluate(grid)
    hip = gait["pos"] + np.column_stack([hx * np.cos(heading), hx * np.sin(heading), hz])
    position = hip + rot @ lever
    accel = np.gradient(np.gradient(position, axis=0), axis=0) * (GRID_HZ ** 2 / G)
    specific = accel + gait["pulses"] + _impacts(actor, grid)
    specific[:, 2] += 1.0

    mount, mount_info = draw_mounting(streams[4], facing)
    middle = [s for s in actor.segments if 0.25 * duration < s.start < 0.75 * duration]
    moving = [s for s in middle if s.activity in MOVING]
    slip_q, slip_info = draw_slip(streams[5], grid, moving, middle) if slip else (None, [])
    sensor_rot = rot @ mount if slip_q is None else np.einsum("nij,jk,nkl->nil", rot, mount,
                                                                   slip_q, optimize=True)
    acc_grid = np.einsum("nji,nj->ni", sensor_rot, specific)
    # body-frame angular rate of the board: Ω = Sᵀ·dS/dt (skew), ω = its axial vector
    omega = np.einsum("nji,njk->nik", sensor_rot, np.gradient(sensor_rot, axis=0))
    gyro_grid = np.degrees(0.5 * np.column_stack([
        omega[:, 2, 1] - omega[:, 1, 2], omega[:, 0, 2] - omega[:, 2, 0],
        omega[:, 1, 0] - omega[:, 0, 1]])) * GRID_HZ
    del omega
    sos = butter(2, min(0.4 * rate_hz, 40.0) / (GRID_HZ / 2), output="sos")
    acc_grid = sosfilt(sos, acc_grid, axis=0)
    gyro_grid = sosfilt(sos, gyro_grid, axis=0)

    clock = 1.0 + opts.uniform(-0.01, 0.01)
    tq, rate_changes = _sample_times(streams[8], duration, rate_hz * clock,
                                     rate_switch, clock)
    acc_true = np.column_stack([np.interp(tq, grid, acc_grid[:, i]) for i in range(3)])
    gyro_true = np.column_stack([np.interp(tq, grid, gyro_grid[:, i]) for i in range(3)])
    angles_q = np.column_stack([np.interp(tq, grid, angles[:, i]) for i in range(3)])
    flexion, lean_q, yaw_q = tilt_angles(angles_q)
    sensor = streams[6]
    acc, sat, acc_model = sensor_errors(acc_true, sensor, "accel", ideal_sensor, tq)
    gyro = None
    gyro_model: dict[str, float] = {}
    if not accel_only:
        gyro, gsat, gyro_model = sensor_errors(gyro_true, sensor, "gyro", ideal_sensor, tq)
        sat |= gsat
    t = logger_stamps(tq, stamps, opts) + t0
    in_gap, gap_list = _gaps(opts, tq, actor, gaps)

    params = label_params(labels)
    codes = np.array([POSTURES.index(s.posture) for s in actor.segments], dtype=np.int8)
    seg_idx = np.searchsorted([s.start for s in actor.segments], tq, side="right") - 1
    posture = codes[np.clip(seg_idx, 0, None)]
    labelling = {"t": tq + t0, "flexion": flexion, "posture": posture,
                 "calibration": actor.calibration, "duration": duration, "t0": t0,
                 "blocked": in_gap if gap_list else None}
    truth: dict[str, Any] = {
        "model": "independent", "scenario": day, "day": day, "seed": int(seed),
        "rate_hz": rate_hz, "duration_s": duration, "t0": t0, "n_samples": len(tq),
        "rate_changes": [{**c, "t": round(c["t"] + t0, 6)} for c in rate_changes],
        "accel_only": accel_only, "jitter_s": 0.0, "stamps": stamps,
        "gaps": [{"start": round(a + t0, 6), "end": round(b + t0, 6)} for a, b in gap_list],
        "knocks": [{"t": round(k.t + t0, 4), "peak_g": round(k.peak_g, 3)}
                   for k in sorted(actor.impacts, key=lambda k: k.t)],
        "facing": facing, **mount_info,
        "mounting": np.round(mount, 9).tolist(),
        "up_sensor": np.round(mount.T[:, 2], 9).tolist(),
        "forward_sensor": np.round(mount.T[:, 0], 9).tolist(),
        "slips": [{**s, "t": round(s["t"] + t0, 4), "end": round(s["end"] + t0, 4)}
                  for s in slip_info],
        "mount_slip_deg": float(sum(s["angle_deg"] for s in slip_info)),
        "mounting_end": np.round(mount if slip_q is None else mount @ slip_q[-1], 9).tolist(),
        "sensor": {"accel": acc_model, "gyro": gyro_model},
        "label_params": params.to_dict(),
    }
    truth |= label_truth(params=params, segments=actor.segments, **labelling)
    euler = np.column_stack([yaw_q, flexion, lean_q])
    if gap_list:
        keep = ~in_gap
        t, acc, flexion, euler, acc_true, gyro_true, sat, posture = (
            x[keep] for x in (t, acc, flexion, euler, acc_true, gyro_true, sat, posture))
        gyro = None if gyro is None else gyro[keep]
        truth["n_samples"] = len(t)
    return Simulation(t, acc, gyro, flexion, truth, mount, euler, acc_true.astype(np.float32),
                      gyro_true.astype(np.float32), actor.segments, sat, posture, labelling)
