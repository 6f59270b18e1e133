"""Motion sources: what an emulated IMU "feels", in its own (sensor) frame.

The emulators ask a motion source for the true specific force (g) and angular rate
(deg/s) at the times they sample, so one interface serves a still bench test
(`StaticMotion`) and a simulated workday (`ArrayMotion`, from `Simulation.motion()`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class MotionSource(Protocol):
    """True sensor-frame motion at given times.

    ``sample(t)`` takes monotonically increasing times in seconds since the source's start
    and returns ``(acc_g, gyro_dps)``, each of shape (len(t), 3).
    """

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class StaticMotion:
    """A sensor lying still: constant specific force and angular rate (default: flat, 1 g up)."""

    def __init__(self, acc_g: tuple[float, float, float] = (0.0, 0.0, 1.0),
                 gyro_dps: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        self.acc_g = np.asarray(acc_g, dtype=float).reshape(3)
        self.gyro_dps = np.asarray(gyro_dps, dtype=float).reshape(3)

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(np.atleast_1d(t))
        return np.tile(self.acc_g, (n, 1)), np.tile(self.gyro_dps, (n, 1))


class ArrayMotion:
    """Linear interpolation of sampled motion, so an emulator can sample at its own rate.

    ``t`` is the arrays' own time base; query time 0 maps to ``t[0]``. Outside the
    covered span the first/last sample is held (an emulator run longer than the
    simulated day sees the person stay as they ended). ``gyro=None`` (an accelerometer-only
    recording) reads as zero rotation.
    """

    def __init__(self, t: np.ndarray, acc_g: np.ndarray, gyro_dps: np.ndarray | None = None):
        self.t = np.asarray(t, dtype=float)
        self.acc_g = np.asarray(acc_g, dtype=float)
        self.gyro_dps = None if gyro_dps is None else np.asarray(gyro_dps, dtype=float)
        if self.t.ndim != 1 or len(self.t) < 1:
            raise ValueError("ArrayMotion needs a 1-D, non-empty time array")
        if self.acc_g.shape != (len(self.t), 3):
            raise ValueError(f"acc_g must have shape ({len(self.t)}, 3), got {self.acc_g.shape}")
        if self.gyro_dps is not None and self.gyro_dps.shape != self.acc_g.shape:
            raise ValueError(f"gyro_dps must have shape {self.acc_g.shape}, "
                             f"got {self.gyro_dps.shape}")
        if len(self.t) > 1 and np.any(np.diff(self.t) <= 0):
            raise ValueError("ArrayMotion times must increase strictly")

    @property
    def duration_s(self) -> float:
        return float(self.t[-1] - self.t[0])

    def _interp(self, q: np.ndarray, data: np.ndarray) -> np.ndarray:
        out = np.empty((len(q), 3))
        # only the span the query covers: np.interp copies a strided column in full, which
        # made each emulator burst O(length of the day) instead of O(burst)
        lo = max(int(np.searchsorted(self.t, q.min(), "right")) - 1, 0)
        hi = int(np.searchsorted(self.t, q.max(), "left")) + 1
        for axis in range(3):
            out[:, axis] = np.interp(q, self.t[lo:hi], data[lo:hi, axis])
        return out

    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.atleast_1d(np.asarray(t, dtype=float)) + self.t[0]
        acc = self._interp(q, self.acc_g)
        gyro = np.zeros_like(acc) if self.gyro_dps is None else self._interp(q, self.gyro_dps)
        return acc, gyro
