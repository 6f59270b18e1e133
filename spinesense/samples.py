"""The unit of data between the sensor layer, recordings and the edge pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SampleChunk:
    """A run of IMU samples in physical units, in the sensor's own frame.

    ``t`` is seconds on a monotonic time base (the live loop's monotonic clock, or a
    recording's own ``t`` column); ``acc`` is specific force in g, shape (n, 3); ``gyro``
    is angular rate in deg/s, shape (n, 3), or None for accelerometer-only sensors;
    ``saturated`` flags samples where any axis hit its full-scale limit.
    """

    t: np.ndarray
    acc: np.ndarray
    gyro: np.ndarray | None = None
    saturated: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t)

    def __getitem__(self, sl: slice) -> SampleChunk:
        return SampleChunk(self.t[sl], self.acc[sl],
                           None if self.gyro is None else self.gyro[sl],
                           None if self.saturated is None else self.saturated[sl])

    @staticmethod
    def concat(chunks: list[SampleChunk]) -> SampleChunk:
        gyros = [c.gyro for c in chunks]
        sats = [c.saturated for c in chunks]
        return SampleChunk(
            np.concatenate([c.t for c in chunks]),
            np.concatenate([c.acc for c in chunks]),
            None if any(g is None for g in gyros) else np.concatenate(gyros),
            None if all(s is None for s in sats) else np.concatenate(
                [np.zeros(len(c), bool) if s is None else s for c, s in zip(chunks, sats,
                                                                             strict=True)]),
        )
