"""Mounting, clip slips, sensor errors and logger timestamps for `firmware.worldsim`."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

FACINGS = ("back-out", "back-in")


def rodrigues(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrices (n,3,3) of rotation vectors (n,3) (radians), vectorised: much
    faster than composing scipy Rotations of a day's length."""
    angle = np.linalg.norm(rotvec, axis=1)
    k = rotvec / np.where(angle > 1e-12, angle, 1.0)[:, None]
    s, c = np.sin(angle), 1.0 - np.cos(angle)
    x, y, z = k[:, 0], k[:, 1], k[:, 2]
    out = np.empty((3, 3, len(rotvec)))  # filled row by row contiguously, then a view
    out[0, 0] = 1.0 - c * (y * y + z * z)
    out[1, 1] = 1.0 - c * (x * x + z * z)
    out[2, 2] = 1.0 - c * (x * x + y * y)
    cxy, cxz, cyz = c * x * y, c * x * z, c * y * z
    sx, sy, sz = s * x, s * y, s * z
    out[0, 1], out[1, 0] = cxy - sz, cxy + sz
    out[0, 2], out[2, 0] = cxz + sy, cxz - sy
    out[1, 2], out[2, 1] = cyz - sx, cyz + sx
    out = out.transpose(2, 0, 1)
    return out


def draw_mounting(rng: np.random.Generator, facing: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Sensor→body rotation M (columns: the sensor's axes in body coordinates: x forward,
    y left, z up the spine).

    The board lies on the back: z along the outward normal (−x body) for ``back-out``,
    inward for ``back-in``; it is turned by any angle in the plane of the back, and the
    back's curve tilts the normal upward by −10…30° and sideways by ±10° (at most 30° in
    all)."""
    out = facing == "back-out"
    base = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]) if out else \
        np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    spin = rng.uniform(0.0, 360.0)
    pitch, roll = rng.uniform(-10.0, 30.0), rng.uniform(-10.0, 10.0)
    scale = min(1.0, 30.0 / max(np.hypot(pitch, roll), 1e-9))
    pitch, roll = pitch * scale, roll * scale
    tilt = Rotation.from_euler("yx", [pitch, roll], degrees=True).as_matrix()
    mount = tilt @ base @ Rotation.from_euler("z", spin, degrees=True).as_matrix()
    return mount, {"mount_spin_deg": round(spin, 3), "mount_tilt_deg": round(
        float(np.hypot(pitch, roll)), 3), "mount_pitch_deg": round(pitch, 3),
        "mount_roll_deg": round(roll, 3)}


def draw_slip(rng: np.random.Generator, grid: np.ndarray, moving: list, anywhere: list,
              ) -> tuple[np.ndarray | None, list[dict[str, Any]]]:
    """A clip slip during one of the ``moving`` segments, or (3 times in 10, or when
    nobody moves) during any of ``anywhere`` (leaning back against the chair pushes the
    clip too): the board turns 5–40° about an axis near its normal (turning in the
    plane of the back, with up to ~17° of tilt), over 0.3–2 s. Returns the slip
    rotation matrices per grid time (sensor frame, applied after the mounting; None
    without a slip) and the truth entries."""
    pool = anywhere if (rng.random() < 0.3 or not moving) else moving
    if not pool:
        return None, []
    seg = pool[int(rng.integers(len(pool)))]
    length = rng.uniform(0.3, 2.0)
    start = rng.uniform(seg.start, max(seg.start, seg.end - length))
    angle = rng.uniform(5.0, 40.0) * (1 if rng.random() < 0.5 else -1)
    tilt = rng.normal(0.0, 0.2, 2)
    axis = np.array([tilt[0], tilt[1], 1.0])
    axis /= np.linalg.norm(axis)
    u = np.clip((grid - start) / length, 0.0, 1.0)
    u = u * u * (3.0 - 2.0 * u)
    q = rodrigues(np.radians(angle) * u[:, None] * axis)
    return q, [{"t": round(float(start), 4), "end": round(float(start + length), 4),
                "angle_deg": round(abs(angle), 3), "axis_sensor": np.round(axis, 5).tolist(),
                "during": seg.activity}]


def sensor_errors(clean: np.ndarray, rng: np.random.Generator, kind: str, ideal: bool,
                  t: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Scale and cross-axis error, bias, white noise, quantisation and clipping, drawn
    wider than `simulator.SensorModel` (12- and 16-bit chips, ±2…16 g), and a warm-up
    drift of the bias after power-on (up to ±8 mg or ±1 °/s per axis, time constant
    5–20 min) at the sample times ``t``."""
    accel = kind == "accel"
    if ideal:
        return clean.astype(float), np.zeros(len(clean), bool), {}
    if accel:
        full = float(rng.choice([2.0, 4.0, 8.0, 16.0], p=[0.2, 0.4, 0.3, 0.1]))
        bits = int(rng.choice([12, 16], p=[0.3, 0.7]))
        noise, bias, scale, cross = rng.uniform(0.001, 0.008), 0.03, 0.03, 0.015
    else:
        full = float(rng.choice([250.0, 500.0, 1000.0, 2000.0]))
        bits = 16
        noise, bias, scale, cross = rng.uniform(0.03, 0.3), 4.0, 0.03, 0.015
    lsb = 2.0 * full / 2 ** bits
    gain = np.diag(1.0 + rng.uniform(-scale, scale, 3))
    gain += rng.uniform(-cross, cross, (3, 3)) * (1.0 - np.eye(3))
    offset = rng.uniform(-bias, bias, 3)
    warm = rng.uniform(-1.0, 1.0, 3) * (0.008 if accel else 1.0)
    tau = rng.uniform(300.0, 1200.0)
    out = clean @ gain.T + offset + noise * rng.standard_normal(clean.shape)
    if t is not None:
        out += (1.0 - np.exp(-t / tau))[:, None] * warm
    out = np.rint(out / lsb) * lsb
    saturated = (np.abs(out) >= full).any(axis=1)
    np.clip(out, -full, full, out=out)
    return out, saturated, {"full_scale": full, "bits": bits, "noise": round(noise, 5),
                            "bias": np.round(offset, 5).tolist()}


def logger_stamps(tq: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Timestamps as written: ``clean`` (the sample times), ``jitter`` (1–8 ms of
    scheduling noise, never going backwards) or ``logger`` (the clock ticks every
    10–40 ms and samples read in one go share a stamp: steps of whole ticks, repeats)."""
    if mode == "clean":
        return tq.copy()
    if mode == "jitter":
        t = tq + np.abs(rng.normal(0.0, rng.uniform(0.001, 0.008), len(tq)))
        return np.maximum.accumulate(t)
    tick = rng.uniform(0.010, 0.040)
    late = rng.uniform(0.0, 0.004, len(tq))
    return np.maximum.accumulate(np.ceil((tq + late) / tick) * tick)
