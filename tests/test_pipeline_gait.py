"""Walking from the rhythm of the trunk's vertical movement (edge/gait.py), on signals
built here: slow and faint gait at any rate, logger timestamps with repeated stamps, and
seated movement of the same size that has no rhythm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from spinesense.config import Config
from spinesense.edge.replay import replay
from spinesense.samples import SampleChunk

UP = np.array([0.3, -0.5, 0.81])
UP = UP / np.linalg.norm(UP)


def _day(rate: float, vertical: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A tilted sensor reading 1 g along UP plus a vertical acceleration (g)."""
    rng = np.random.default_rng(3)
    return (1.0 + vertical)[:, None] * UP[None, :] + rng.normal(0, 0.004, (len(t), 3))


def _gait(t: np.ndarray, start: float, end: float, spm: float, peak_g: float,
          seed: int = 0) -> np.ndarray:
    """Vertical acceleration of walking: one cycle per step, step times varying by 5%
    and step heights by 20% (no two steps alike), zero outside [start, end)."""
    rng = np.random.default_rng(seed)
    period = 60.0 / spm
    n = int((end - start) / period) + 2
    times = start + np.cumsum(period * (1 + 0.05 * rng.standard_normal(n)))
    heights = peak_g * (1 + 0.2 * rng.standard_normal(n))
    phase = np.interp(t, times, np.arange(n))
    amp = np.interp(t, times, heights)
    out = amp * np.sin(2 * np.pi * phase) + 0.3 * amp * np.sin(4 * np.pi * phase + 1.0)
    return np.where((t >= times[0]) & (t < end), out, 0.0)


def _walking_share(recs: list[dict], a: float, b: float) -> float:
    st = [r for r in recs if r["type"] == "state" and a <= r["t"] < b]
    return sum(r["posture"] == "walking" for r in st) / len(st)


@pytest.mark.parametrize(("rate", "spm", "peak_g"), [(25.0, 62.0, 0.04), (50.0, 80.0, 0.05),
                                                       (400.0, 110.0, 0.25)])
def test_slow_faint_and_brisk_walking_is_walking(rate: float, spm: float,
                                                  peak_g: float) -> None:
    t = np.arange(0, 120, 1 / rate)
    acc = _day(rate, _gait(t, 40.0, 80.0, spm, peak_g), t)
    recs = replay(SampleChunk(t, acc), Config(), calibrate=(5, 15), states=True)
    assert _walking_share(recs, 43, 80) >= 0.95
    assert _walking_share(recs, 0, 40) == 0.0 and _walking_share(recs, 83, 120) == 0.0


def test_logger_timestamps_with_repeated_stamps() -> None:
    """Stamps from a clock that ticks every 30 ms, samples read in one go sharing one."""
    t_true = np.arange(0, 120, 0.01)
    acc = _day(100.0, _gait(t_true, 40.0, 80.0, 70.0, 0.05, seed=2), t_true)
    stamped = np.ceil(t_true / 0.03) * 0.03
    assert (np.diff(stamped) == 0).mean() > 0.5  # most stamps repeat
    recs = replay(SampleChunk(stamped, acc), Config(), calibrate=(5, 15), states=True)
    assert _walking_share(recs, 43, 80) >= 0.95
    assert _walking_share(recs, 0, 40) == 0.0


def test_seated_movement_without_rhythm_is_not_walking() -> None:
    """Fidgeting of the same size as slow walking, but not periodic."""
    rate = 50.0
    t = np.arange(0, 300, 1 / rate)
    rng = np.random.default_rng(5)
    sos = signal.butter(2, (0.8, 4.0), "band", fs=rate, output="sos")
    fidget = signal.sosfilt(sos, rng.standard_normal(len(t)))
    fidget *= 0.04 / fidget.std()
    fidget[t < 30] = 0.0
    recs = replay(SampleChunk(t, _day(rate, fidget, t)), Config(), calibrate=(5, 15),
                  states=True)
    assert _walking_share(recs, 30, 300) < 0.05
    st = [r for r in recs if r["type"] == "state" and r["t"] >= 30]
    assert not any(r["posture"] == "standing" for r in st)  # no false break either
