"""Simulated upper-back IMU recordings with ground truth.

`simulate(scenario, seed)` builds a day of trunk motion from a scenario program
(`spinesense.firmware.scenarios`), turns it into what a sensor mounted at a random
rotation on the back would read (specific force in g, angular rate in deg/s, with noise,
bias, scale error and quantisation), and labels it: slouch episodes by the DESIGN A3
definition on the noiseless flexion, sitting bouts, alerts and breaks from the activity
segments. Everything is a pure function of the seed (and the options), and the motion
itself does not depend on the sample rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from spinesense.firmware import kinematics as kin
from spinesense.firmware.csvfast import write_csv
from spinesense.firmware.labels import DEFAULT_LABELS, LabelParams, label_params, label_truth
from spinesense.firmware.motion import ArrayMotion
from spinesense.firmware.scenarios import SCENARIOS
from spinesense.firmware.timeline import Segment, Timeline
from spinesense.firmware.trunk import render, slip_mounting

POSTURES = ("sitting", "standing", "walking", "lying")

__all__ = ["DEFAULT_LABELS", "POSTURES", "SCENARIOS", "LabelParams", "SensorModel",
           "Simulation", "mounting_matrix", "simulate"]


@dataclass(frozen=True)
class SensorModel:
    """Sensor imperfections, roughly an MPU-6050 at ±4 g / ±500 °/s with a 44 Hz DLPF.

    Biases, scale errors and cross-axis couplings are drawn per axis, uniformly within ±
    the given value; drifts are slow (tens of minutes) wanders of the bias, 1-σ.
    """

    accel_noise_g: float = 0.0035
    gyro_noise_dps: float = 0.07
    accel_bias_g: float = 0.03
    gyro_bias_dps: float = 2.0
    accel_drift_g: float = 0.003
    gyro_drift_dps: float = 0.2
    scale_error: float = 0.02
    cross_axis: float = 0.01
    accel_lsb_g: float = 1.0 / 8192.0
    gyro_lsb_dps: float = 1.0 / 65.5
    accel_range_g: float = 4.0
    gyro_range_dps: float = 500.0

    @classmethod
    def ideal(cls) -> SensorModel:
        """No noise, bias, scale error or quantisation: output equals the true motion."""
        return cls(accel_noise_g=0.0, gyro_noise_dps=0.0, accel_bias_g=0.0, gyro_bias_dps=0.0,
                   accel_drift_g=0.0, gyro_drift_dps=0.0, scale_error=0.0, cross_axis=0.0,
                   accel_lsb_g=0.0, gyro_lsb_dps=0.0, accel_range_g=np.inf,
                   gyro_range_dps=np.inf)


def _rot(axis: str, deg: float) -> np.ndarray:
    return Rotation.from_euler(axis, deg, degrees=True).as_matrix()


def mounting_matrix(rng: np.random.Generator, kind: str = "random") -> np.ndarray:
    """Sensor→body rotation M (columns: the sensor's axes in body coordinates).

    The chip lies on the back with its z axis along the back's outward normal (−x body),
    or inward when ``flipped``; it is spun by any angle about that normal (axes pointing
    any way in the plane of the back) and tilted a few degrees by the back's curvature.
    ``kind``: "random" (a quarter of seeds are flipped), "normal", "flipped", or
    "aligned" (sensor axes = body axes, for debugging).
    """
    if kind == "aligned":
        return np.eye(3)
    if kind not in ("random", "normal", "flipped"):
        raise ValueError(f"unknown mounting {kind!r}: use random, normal, flipped or aligned")
    flipped = kind == "flipped" or (kind == "random" and rng.random() < 0.25)
    base = _rot("y", 90.0 if flipped else -90.0)
    spin = _rot("z", rng.uniform(0.0, 360.0))
    tilt = _rot("y", rng.uniform(-10.0, 10.0)) @ _rot("z", rng.uniform(-5.0, 5.0))
    return tilt @ base @ spin


@dataclass
class Simulation:
    """A simulated recording and its truth (see `simulate`)."""

    t: np.ndarray
    acc: np.ndarray
    gyro: np.ndarray | None
    flexion_true: np.ndarray
    truth: dict[str, Any]
    mounting: np.ndarray
    euler_deg: np.ndarray  # (n,3) yaw, flexion, lean: body→world = Rz·Ry·Rx
    acc_true: np.ndarray  # noiseless sensor-frame specific force (g)
    gyro_true: np.ndarray  # noiseless sensor-frame angular rate (deg/s)
    segments: list[Segment] = field(repr=False)
    saturated: np.ndarray | None = None
    posture: np.ndarray | None = None  # per-sample indices into POSTURES
    # what label_truth needs on the full sample grid (gaps included), for relabel()
    labelling: dict[str, Any] = field(default_factory=dict, repr=False)

    def relabel(self, **labels: float) -> dict[str, Any]:
        """The truth under other label parameters (same motion), without simulating again:
        ~0.1 s for an 8-hour day instead of a few seconds. Returns a new truth dict."""
        params = label_params(labels)
        truth = {**self.truth, "label_params": params.to_dict()}
        return truth | label_truth(params=params, segments=self.segments, **self.labelling)

    @property
    def rate_hz(self) -> float:
        return float(self.truth["rate_hz"])

    @property
    def up_sensor(self) -> np.ndarray:
        """The true upright "up" (gravity's specific force direction) in the sensor frame."""
        return self.mounting.T @ np.array([0.0, 0.0, 1.0])

    @property
    def forward_sensor(self) -> np.ndarray:
        """The body's anterior (forward) axis in the sensor frame."""
        return self.mounting.T @ np.array([1.0, 0.0, 0.0])

    def orientation(self) -> Rotation:
        """Trunk orientation body→world per sample (noiseless)."""
        return Rotation.from_euler("ZYX", self.euler_deg, degrees=True)

    def posture_index(self) -> np.ndarray:
        """Per-sample true posture as indices into `POSTURES`."""
        return self.posture

    def motion(self, *, sensor_errors: bool = True) -> ArrayMotion:
        """An interpolating motion source for the emulators (times relative to ``t[0]``).

        With ``sensor_errors`` it carries this simulation's noise, bias and scale error
        (the emulated chip adds its own quantisation); without, the true motion.
        """
        if sensor_errors:
            return ArrayMotion(self.t, self.acc, self.gyro)
        return ArrayMotion(self.t, self.acc_true, self.gyro_true)

    def chunk(self):  # -> SampleChunk, imported lazily to keep this module light
        from spinesense.samples import SampleChunk
        return SampleChunk(self.t, self.acc, self.gyro, self.saturated)

    def write(self, path: str | Path, *, force: bool = True) -> tuple[Path, Path]:
        """Write the DESIGN A1 CSV (gzip if the name ends in .gz) and the truth JSON beside
        it (``day.csv`` → ``day.truth.json``). Returns both paths.

        Each goes through a temporary file renamed on success (spinesense.outputs), so an
        interrupted run leaves no truncated file; an existing file is replaced only with
        ``force``, and the folder must exist."""
        from spinesense.outputs import check_output_path, write_text

        path = Path(path)
        truth_path = truth_path_for(path)
        for p in (path, truth_path):
            check_output_path(p, force=force)
        write_csv(path, self.t, self.acc, self.gyro, force=force)
        write_text(truth_path, json.dumps(self.truth, indent=1) + "\n", force=force)
        return path, truth_path


def truth_path_for(path: str | Path) -> Path:
    """Where the truth JSON of a simulated recording goes: ``day.csv.gz`` → ``day.truth.json``."""
    from spinesense.firmware.recording import beside_recording

    return beside_recording(path, ".truth.json")


def _mounting(mounting: str | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if isinstance(mounting, str):
        return mounting_matrix(rng, mounting)
    mount = np.asarray(mounting, dtype=float)
    if mount.shape != (3, 3) or not np.allclose(mount @ mount.T, np.eye(3), atol=1e-6) \
            or np.linalg.det(mount) < 0:
        raise ValueError("mounting must be a 3x3 rotation matrix (orthonormal, det +1)")
    return mount


def _sensor_errors(clean: np.ndarray, rng: np.random.Generator, sensor: SensorModel,
                   kind: str, tq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale error and cross-axis coupling, bias (+ slow drift), white noise,
    quantisation and clipping; ``kind`` is "accel" or "gyro"."""
    accel = kind == "accel"
    noise, bias, drift, lsb, full_scale = (
        (sensor.accel_noise_g, sensor.accel_bias_g, sensor.accel_drift_g, sensor.accel_lsb_g,
         sensor.accel_range_g) if accel else
        (sensor.gyro_noise_dps, sensor.gyro_bias_dps, sensor.gyro_drift_dps,
         sensor.gyro_lsb_dps, sensor.gyro_range_dps))
    n = len(clean)
    gain = np.diag(1.0 + rng.uniform(-sensor.scale_error, sensor.scale_error, 3))
    gain += rng.uniform(-sensor.cross_axis, sensor.cross_axis, (3, 3)) * (1.0 - np.eye(3))
    out = np.empty((n, 3))
    for i in range(3):  # out = clean · gainᵀ, by columns (fast for n x 3)
        out[:, i] = clean[:, 0] * gain[i, 0] + clean[:, 1] * gain[i, 1] \
            + clean[:, 2] * gain[i, 2]
    out += rng.uniform(-bias, bias, 3)
    if drift > 0:
        duration = float(tq[-1]) + 1.0 if n else 1.0
        coarse = np.arange(0.0, duration + 1.0, 1.0)  # minutes-slow: 1 s grid + interp
        for axis in range(3):
            wander = kin.Sway(rng, duration, knot_s=30.0, smooth_s=120.0)
            out[:, axis] += drift * np.interp(tq, coarse, wander.evaluate(coarse).v)
    if noise > 0:
        white = rng.standard_normal((n, 3))
        white *= noise
        out += white
        del white
    if lsb > 0:
        out *= 1.0 / lsb
        np.rint(out, out=out)
        out *= lsb
    saturated = (np.abs(out) >= full_scale).any(axis=1)
    np.clip(out, -full_scale, full_scale, out=out)
    return out, saturated


def simulate(scenario: str, seed: int, *, rate_hz: float = 100.0, accel_only: bool = False,
             duration_s: float | None = None, labels: dict | None = None,
             mounting: str | np.ndarray = "random", sensor: SensorModel | None = None,
             t0: float = 0.0, gaps: list[tuple[float, float]] | None = None,
             jitter_s: float = 0.0, mount_slip_deg: float = 0.0,
             knocks_per_h: float = 4.0) -> Simulation:
    """Simulate ``scenario`` (a key of `SCENARIOS`) deterministically from ``seed``.

    ``labels`` overrides the truth definition (threshold_deg, release_deg, delay_s,
    sitting_limit_s, break_s, repeat_s); ``mounting`` is a kind for `mounting_matrix` or
    a 3x3 sensor→body rotation; ``sensor`` the imperfections (`SensorModel.ideal()` for
    none); ``t0`` the time of the first sample. ``gaps`` [(start, length)] (seconds from
    the first sample) drops the samples there, as a lost sensor would; slouch truth
    treats a gap like walking (no episode starts in it, one in progress ends at its
    start). ``jitter_s`` adds Gaussian timestamp jitter (σ, kept below 0.4 sample
    periods so ``t`` stays increasing) while the motion stays regularly sampled.
    ``mount_slip_deg`` lets the clip turn that far on the back over the recording, while
    the wearer moves (`trunk.slip_mounting`): a stale calibration to detect.
    ``knocks_per_h`` scatters bumps (0.2–1 g, damped 4–12 Hz, ~0.1–0.5 s) over the still
    segments: brief accelerations that change no posture and must raise nothing.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of "
                         f"{', '.join(SCENARIOS)}")
    if not 1.0 <= rate_hz <= 2000.0:
        raise ValueError(f"rate_hz {rate_hz} is outside 1..2000 Hz")
    spec = SCENARIOS[scenario]
    duration = float(spec.default_s if duration_s is None else duration_s)
    n = int(np.floor(duration * rate_hz + 1e-9))
    if n < 2:
        raise ValueError(f"duration_s {duration} is too short: need at least two samples")
    if jitter_s < 0 or knocks_per_h < 0:
        raise ValueError(f"jitter_s ({jitter_s}) and knocks_per_h ({knocks_per_h}) must "
                         "not be negative")
    for start, length in gaps or ():
        if length <= 0 or start < 0:
            raise ValueError(f"gap ({start}, {length}): start must be >= 0 and length > 0")
    params = label_params(labels)
    sensor = sensor or SensorModel()
    seqs = np.random.SeedSequence([int(seed), 0x5E51]).spawn(7)
    mount = _mounting(mounting, np.random.default_rng(seqs[2]))

    tl = Timeline(np.random.default_rng(seqs[0]))
    spec.program(tl, duration)
    tl.segments = [s for s in tl.segments if s.start < duration]
    tl.segments[-1].end = duration
    if knocks_per_h > 0:
        tl.add_knocks(knocks_per_h, duration)

    tq = np.arange(n) / rate_hz
    acc_true, gyro_true, euler = render(tl, np.random.default_rng(seqs[1]), duration, tq,
                                        mount)
    mount_end = mount
    if mount_slip_deg:
        slip = slip_mounting(acc_true, gyro_true, tq, tl.segments, mount_slip_deg,
                             np.random.default_rng(seqs[6]))
        mount_end = mount @ slip
    acc, sat = _sensor_errors(acc_true, np.random.default_rng(seqs[3]), sensor, "accel", tq)
    gyro = None
    if not accel_only:
        gyro, gsat = _sensor_errors(gyro_true, np.random.default_rng(seqs[4]), sensor,
                                    "gyro", tq)
        sat |= gsat
    flexion_true = euler[:, 1].copy()
    t = tq + t0
    if jitter_s > 0:
        jitter = np.random.default_rng(seqs[5]).normal(0.0, jitter_s, n)
        t += np.clip(jitter, -0.4 / rate_hz, 0.4 / rate_hz)
    in_gap = np.zeros(n, bool)
    for start, length in gaps or ():
        in_gap[np.searchsorted(tq, start - 1e-9):np.searchsorted(tq, start + length - 1e-9)] = True
    truth = {
        "scenario": scenario, "seed": int(seed), "rate_hz": float(rate_hz),
        "duration_s": duration, "t0": float(t0), "n_samples": int(n - in_gap.sum()),
        "accel_only": accel_only, "jitter_s": float(jitter_s),
        "gaps": [{"start": round(a + t0, 6), "end": round(a + b + t0, 6)}
                 for a, b in sorted(gaps or ())],
        "mounting": np.round(mount, 9).tolist(),
        "mount_slip_deg": float(mount_slip_deg),
        "mounting_end": np.round(mount_end, 9).tolist(),
        "up_sensor": np.round(mount.T[:, 2], 9).tolist(),
        "forward_sensor": np.round(mount.T[:, 0], 9).tolist(),
        "label_params": params.to_dict(),
        "knocks": [{"t": round(k.t + t0, 4), "peak_g": round(k.peak_g, 3)} for k in tl.knocks],
    }
    codes = np.array([POSTURES.index(s.posture) for s in tl.segments], dtype=np.int8)
    seg_idx = np.searchsorted([s.start for s in tl.segments], tq, side="right") - 1
    posture = codes[np.clip(seg_idx, 0, None)]
    labelling = {"t": t, "flexion": flexion_true, "posture": posture,
                 "calibration": tl.calibration_info, "duration": duration, "t0": t0,
                 "blocked": in_gap if in_gap.any() else None}
    truth |= label_truth(params=params, segments=tl.segments, **labelling)
    if in_gap.any():
        keep = ~in_gap
        t, acc, flexion_true, euler, acc_true, gyro_true, sat, posture = (
            x[keep] for x in (t, acc, flexion_true, euler, acc_true, gyro_true, sat, posture))
        gyro = None if gyro is None else gyro[keep]
    return Simulation(t, acc, gyro, flexion_true, truth, mount, euler,
                      acc_true, gyro_true, tl.segments, sat, posture, labelling)
