"""The accelerometer's magnitude error learnt while still (edge.accel_fit): it recovers a
biased, mis-scaled board's error at orientations it has seen, stays at zero before any
still data, is the same bit for bit however the ticks are chunked, and it is what lets
a stand-up on such a board read its true rise."""

from __future__ import annotations

import numpy as np
import pytest
from test_pipeline_transitions import RATE, _gyro_pushes, _pulse, _sensor_chunk, _step

from spinesense.edge.accel_fit import WINDOW_S, MagnitudeFit
from spinesense.edge.filters import TICK_HZ
from spinesense.samples import SampleChunk

GAIN = np.array([[1.02, 0.001, 0.001], [-0.014, 1.024, -0.001], [-0.011, 0.007, 0.986]])
BIAS = np.array([0.008, 0.0, -0.029])  # g: a board of the development days (21003)


def _tilted(flex_deg: float, lat_deg: float) -> np.ndarray:
    f, s = np.radians(flex_deg), np.radians(lat_deg)
    return np.array([np.sin(f), np.sin(s), np.cos(f) * np.cos(s)])


def _still_day(seconds_per_pose: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Ticks of a board held still in a dozen trunk postures (upright, slouches, side
    leans, a recline), as the still stretches of a day give them."""
    poses = [(0, 0), (25, 0), (40, 5), (-15, 0), (10, 15), (5, -20), (30, -10), (0, 8),
             (45, 0), (-5, -5), (20, 20), (15, 0)]
    acc = np.concatenate([np.tile(GAIN @ _tilted(f, s) + BIAS, (seconds_per_pose * TICK_HZ, 1))
                          for f, s in poses])
    return np.arange(len(acc), dtype=np.int64), acc


def _run(fit: MagnitudeFit, k: np.ndarray, acc: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Still ticks: ``acc`` measured, ``up`` the direction the error is wanted at."""
    unit = up / np.linalg.norm(up, axis=1)[:, None]
    return fit.error(k, np.ones(len(k), bool), acc, np.zeros(len(k)), unit)


def test_the_fit_recovers_how_the_error_changes_with_orientation() -> None:
    k, acc = _still_day()
    fit = MagnitudeFit()
    _run(fit, k, acc, acc)
    # what matters is the change between orientations (the edges remove a constant)
    probe = np.array([_tilted(f, s) for f, s in [(0, 0), (35, 0), (20, 10), (-10, 0), (10, -15)]])
    true = np.linalg.norm(probe @ GAIN.T + BIAS, axis=1) - 1.0
    later = k[-1] + WINDOW_S * TICK_HZ + np.arange(len(probe))
    got = _run(fit, later, probe, probe)
    change, true_change = got - got[0], true - true[0]
    assert np.abs(true_change).max() > 0.015  # the error moves by over 15 mg ...
    assert np.abs(change - true_change).max() < 0.2 * np.abs(true_change).max()  # ... the fit
    #                                                    follows it (a ridge shrinks it a little)


def test_no_still_data_means_no_correction() -> None:
    fit = MagnitudeFit()
    up = np.tile(_tilted(30, 0), (500, 1))
    moving = np.full(500, 200.0)  # mg: never still
    e = fit.error(np.arange(500), np.ones(500, bool), up, moving, up)
    assert np.all(e == 0.0)


def test_chunking_does_not_change_a_bit() -> None:
    k, acc = _still_day(seconds_per_pose=25)
    rng = np.random.default_rng(3)
    acc = acc + rng.normal(0, 0.004, acc.shape)
    whole = _run(MagnitudeFit(), k, acc, acc)
    fit, parts, i = MagnitudeFit(), [], 0
    while i < len(k):
        n = int(rng.integers(1, 400))
        parts.append(_run(fit, k[i:i + n], acc[i:i + n], acc[i:i + n]))
        i += n
    assert np.array_equal(whole, np.concatenate(parts))
    assert np.abs(whole).max() > 0.0  # it did learn something


# a board at the edge of the independent simulator's ranges (bias ±30 mg, scale ±3 %),
# whose error changes by about 50 mg over a 40° forward lean
LEAN_GAIN = np.diag([0.97, 1.0, 1.03])
LEAN_BIAS = np.array([0.03, 0.0, 0.03])


def _miscalibrated_stand_up(seed: int = 0) -> SampleChunk:
    """Four minutes of still sitting postures (upright, a 35° slouch, a 15° recline,
    upright), then a 0.4 m stand-up with a 40° lean, on that board, with a gyro."""
    t = np.arange(0.0, 280.0, 1.0 / RATE)
    flex = (_step(t, 60.0, 2.0, 35.0) + _step(t, 120.0, 2.0, -50.0)
            + _step(t, 180.0, 2.0, 15.0) + _pulse(t, 250.0, 2.0, 40.0))
    true = _sensor_chunk(t, _step(t, 250.6, 1.4, 0.4), flex, seed=seed)
    rate = np.stack([np.zeros_like(t), np.gradient(flex, t), np.zeros_like(t)], axis=1)
    return SampleChunk(true.t, true.acc @ LEAN_GAIN.T + LEAN_BIAS, rate)


def test_a_stand_up_on_a_miscalibrated_board_reads_its_true_rise(monkeypatch) -> None:
    chunk = _miscalibrated_stand_up()
    got = _gyro_pushes(chunk)
    assert [tr.kind for tr in got] == ["sit_to_stand"]
    assert got[0].lift_m == pytest.approx(0.4, abs=0.05)
    cuts = sorted(np.random.default_rng(4).choice(np.arange(1, len(chunk.t)), 200,
                                                  replace=False).tolist())
    assert [(tr.t, tr.lift_m) for tr in _gyro_pushes(chunk, cuts)] == \
        [(tr.t, tr.lift_m) for tr in got]
    # without the fit the same board's error, changing over the lean, moves the rise
    monkeypatch.setattr(MagnitudeFit, "error", lambda self, k, *a: np.zeros(len(k)))
    plain = _gyro_pushes(chunk)
    assert not plain or abs(plain[0].lift_m - 0.4) > 0.12  # (it reads 0.24 m)
