"""Units of the edge pipeline on signals built here: resampling, gaps, calibration signs,
the slouch and sedentary state machines, metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from spinesense.config import Config
from spinesense.edge.calibration import (
    Calibration,
    CalibrationError,
    forward_from_lean,
    still_part,
    upright_from_still,
)
from spinesense.edge.filters import TICK_HZ, Resampler
from spinesense.edge.pipeline import Pipeline
from spinesense.edge.sedentary import SedentaryParams, detect_sedentary
from spinesense.edge.slouch import BLOCK_REASONS, SlouchParams, detect_slouch
from spinesense.samples import SampleChunk
from spinesense.schema import METRIC_FIELDS


def body_gravity(flex_deg: np.ndarray, lean_deg: np.ndarray) -> np.ndarray:
    """World up in the body frame (x forward, y left, z up) for flexion and lean."""
    th, ph = np.radians(flex_deg), np.radians(lean_deg)
    return np.stack([-np.sin(th), np.cos(th) * np.sin(ph), np.cos(th) * np.cos(ph)], axis=1)


def mounted(flex_deg, lean_deg, mount: np.ndarray) -> np.ndarray:
    """What a sensor mounted with rotation ``mount`` (sensor→body) reads."""
    f = np.broadcast_to(np.asarray(flex_deg, float), np.shape(lean_deg) or np.shape(flex_deg))
    return body_gravity(np.atleast_1d(f), np.atleast_1d(np.broadcast_to(lean_deg, f.shape))) \
        @ mount


# ---------------------------------------------------------------- resampling and gaps


@pytest.mark.parametrize("rate", [25.0, 50.0, 100.0, 400.0])
def test_ticks_sit_on_the_absolute_grid_at_any_rate(rate: float) -> None:
    rng = np.random.default_rng(1)
    t = 3.3 + np.arange(int(20 * rate)) / rate
    t = t + rng.uniform(-0.2, 0.2, len(t)) / rate  # jitter
    x = np.sin(2 * np.pi * 0.3 * t)
    acc = np.stack([x, np.zeros_like(x), np.ones_like(x)], axis=1)
    ticks, gaps = Resampler(0.5).push(SampleChunk(t, acc))
    assert not gaps and ticks.valid.all()
    assert ticks.k[0] == math.ceil(t[0] * TICK_HZ) and np.all(np.diff(ticks.k) == 1)
    np.testing.assert_allclose(ticks.acc[:, 0], np.sin(2 * np.pi * 0.3 * ticks.t), atol=0.01)


def test_rate_change_mid_stream_gives_no_gap() -> None:
    t = np.concatenate([np.arange(0, 10, 1 / 25), 10 + np.arange(0, 10, 1 / 400)])
    acc = np.tile([0.0, 0.0, 1.0], (len(t), 1))
    ticks, gaps = Resampler(0.5).push(SampleChunk(t, acc))
    assert not gaps and ticks.valid.all() and len(ticks) == 20 * TICK_HZ


def test_a_hole_longer_than_gap_s_leaves_one_marker() -> None:
    t = np.concatenate([np.arange(0, 5, 0.01), np.arange(7.5, 10, 0.01)])
    acc = np.tile([0.0, 0.0, 1.0], (len(t), 1))
    ticks, gaps = Resampler(0.5).push(SampleChunk(t, acc))
    assert len(gaps) == 1 and gaps[0].start == pytest.approx(4.99) and gaps[0].end == 7.5
    assert (~ticks.valid).sum() == 1
    marker = int(np.flatnonzero(~ticks.valid)[0])
    assert ticks.k[marker] == ticks.k[marker - 1] + 1 and np.isnan(ticks.acc[marker]).all()
    # a hole below gap_s is bridged
    t2 = np.concatenate([np.arange(0, 5, 0.01), np.arange(5.3, 10, 0.01)])
    ticks2, gaps2 = Resampler(0.5).push(SampleChunk(t2, np.tile([0, 0, 1.0], (len(t2), 1))))
    assert not gaps2 and ticks2.valid.all()


def test_nan_saturated_and_backward_samples_are_dropped() -> None:
    t = np.arange(0, 10, 0.01)
    acc = np.tile([0.0, 0.0, 1.0], (len(t), 1))
    acc[100:103] = np.nan
    sat = np.zeros(len(t), bool)
    sat[500:520] = True
    acc[500:520] = [4.0, 4.0, 4.0]  # clipped garbage
    rs = Resampler(0.5)
    ticks, gaps = rs.push(SampleChunk(t, acc, None, sat))
    assert not gaps and np.isfinite(ticks.acc).all()
    np.testing.assert_allclose(ticks.acc, np.tile([0, 0, 1.0], (len(ticks), 1)))
    assert rs.saturated == 20 and rs.dropped == 23
    ticks2, _ = rs.push(SampleChunk(np.array([5.0, 9.0]), np.ones((2, 3))))  # in the past
    assert len(ticks2) == 0 and rs.dropped == 25


# ------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("seed", range(12))
def test_flexion_is_signed_whatever_the_mounting(seed: int) -> None:
    mount = Rotation.random(random_state=seed).as_matrix()
    up = upright_from_still(mounted(np.zeros(50), np.zeros(50), mount))
    lean = mounted(np.linspace(0, 25, 40), np.zeros(40), mount)
    cal = Calibration(up, forward_from_lean(up, lean))
    flex, lat = cal.angles(mounted(np.array([30.0, -20.0, 0.0, 10.0]),
                                   np.array([0.0, 0.0, 12.0, -8.0]), mount))
    np.testing.assert_allclose(flex, [30.0, -20.0, 0.0, 10.0], atol=0.3)
    np.testing.assert_allclose(lat, [0.0, 0.0, 12.0, -8.0], atol=0.3)  # + = right


def test_calibration_refuses_movement_and_shallow_leans(tmp_path) -> None:
    mount = np.eye(3)
    moving = mounted(np.linspace(0, 30, 50), np.zeros(50), mount)
    with pytest.raises(CalibrationError, match="moved"):
        upright_from_still(moving)
    up = upright_from_still(mounted(np.zeros(20), np.zeros(20), mount))
    with pytest.raises(CalibrationError, match="leaned only"):
        forward_from_lean(up, mounted(np.full(20, 3.0), np.zeros(20), mount))
    with pytest.raises(CalibrationError, match="1 g"):
        upright_from_still(np.tile([0.0, 0.0, 9.81], (20, 1)))  # m/s², not g
    cal = Calibration(up, [1.0, 0.0, 0.3], method="test", forward_method="test")
    cal.save(tmp_path / "c.json")
    back = Calibration.load(tmp_path / "c.json")
    np.testing.assert_allclose(back.forward, cal.forward)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="run `spinesense calibrate` again"):
        Calibration.load(tmp_path / "bad.json")


def test_a_window_the_wearer_settles_into_is_calibrated_from_its_still_part() -> None:
    """Wearers settle into upright during the first seconds of the window they name: the
    still part calibrates (the whole window's mean would be off by the settle)."""
    mount = Rotation.from_euler("xyz", [20.0, -10.0, 35.0], degrees=True).as_matrix()
    settle = np.r_[np.full(20, -6.0), np.linspace(-6.0, 0.0, 10), np.zeros(70)]  # reclined
    acc = mounted(settle, np.zeros(100), mount)
    with pytest.raises(CalibrationError, match="moved"):
        upright_from_still(acc)
    part = still_part(acc)
    assert 10 <= part.start <= 30 and part.stop == 100
    up = upright_from_still(acc[part])
    assert math.degrees(math.acos(min(1.0, up @ mounted(0.0, 0.0, mount)[0]))) < 1.0


@pytest.mark.parametrize("flex", [
    np.r_[np.zeros(45), np.linspace(0.0, 20.0, 10), np.full(45, 20.0)],  # upright, slouch
    np.linspace(0.0, 30.0, 100),  # moving throughout
])
def test_a_window_whose_still_part_may_be_a_slouch_is_still_refused(flex) -> None:
    with pytest.raises(CalibrationError, match="moved during the calibration window"):
        still_part(mounted(flex, np.zeros(len(flex)), np.eye(3)))


def test_replay_names_the_still_part_of_a_window_it_used() -> None:
    rate, mount = 100.0, np.eye(3)
    t = np.arange(0.0, 60.0, 1 / rate)
    flex = np.clip(-6.0 + 6.0 * (t - 2.0), -6.0, 0.0)  # 2 s reclined, then upright
    chunk = SampleChunk(t, mounted(flex, np.zeros(len(t)), mount))
    records = Pipeline(Config(), calibrate_window=(0.0, 12.0)).process(chunk)
    cal = next(r for r in records if r["type"] == "calibrated")
    assert cal["method"].startswith("window 0-12 s (its still part ")
    start = float(cal["method"].split("still part ")[1].split("-")[0])
    assert 1.0 <= start <= 4.0  # the reclined seconds (0–2 s) mostly left out


# ---------------------------------------------------------------- slouch state machine


def run_slouch(flex: np.ndarray, block: np.ndarray | None = None, **kw: float):
    k = np.arange(len(flex), dtype=np.int64)
    blk = np.zeros(len(flex), np.int8) if block is None else block.astype(np.int8)
    res, st = detect_slouch(k, flex.astype(float), blk, SlouchParams(**kw))
    return res.events, st


def hold(*parts: tuple[float, float]) -> np.ndarray:
    """Piecewise-constant flexion: (degrees, seconds) pairs at the tick rate."""
    return np.concatenate([np.full(round(s * TICK_HZ), d, float) for d, s in parts])


def test_slouch_alerts_after_the_delay_and_ends_below_release() -> None:
    ev, _ = run_slouch(hold((0, 10), (20, 12), (13, 5), (11, 5)))
    assert [e["type"] for e in ev] == ["slouch_start", "slouch_end"]
    assert ev[0]["onset"] == 10.0 and ev[0]["t"] == 15.0
    # 13° is above release; 11° is under it but within the noise margin: the end comes
    # once it has held for RETURN_HOLD_S (1 s)
    assert ev[1]["t"] == 28.0 and ev[1]["reason"] == "released"
    assert ev[1]["peak_deg"] == 20.0 and 13.0 < ev[1]["mean_deg"] < 20.0


def test_reaches_shorter_than_the_delay_and_reclines_never_alert() -> None:
    ev, _ = run_slouch(hold((0, 5), (45, 4.9), (0, 5), (-30, 120), (0, 5), (40, 3), (0, 1)))
    assert ev == []


def test_a_dip_below_threshold_restarts_the_delay() -> None:
    ev, _ = run_slouch(hold((0, 2), (20, 3), (14, 0.2), (20, 6), (0, 1)))
    assert ev[0]["onset"] == 5.2 and ev[0]["t"] == 10.2


def test_walking_and_gaps_block_and_end_episodes() -> None:
    flex = hold((20, 30))
    block = np.zeros(len(flex), np.int8)
    block[round(3 * TICK_HZ):round(6 * TICK_HZ)] = BLOCK_REASONS.index("walking")
    block[round(20 * TICK_HZ)] = BLOCK_REASONS.index("gap")
    ev, _ = run_slouch(flex, block)
    # still slouched after the gap: a new episode with a new delay
    assert [(e["type"], e["t"]) for e in ev] == [("slouch_start", 11.0), ("slouch_end", 20.0),
                                                 ("slouch_start", 25.04)]
    assert ev[1]["reason"] == "gap" and ev[2]["onset"] == 20.04
    ev2, st = run_slouch(flex[:round(20 * TICK_HZ) + 1], block[:round(20 * TICK_HZ) + 1])
    assert ev2[-1]["reason"] == "gap" and st.phase == 0


@pytest.mark.parametrize("cuts", [[1], [7, 130, 131], list(range(37, 3000, 37))])
def test_slouch_machine_state_carries_across_blocks(cuts: list[int]) -> None:
    rng = np.random.default_rng(3)
    tt = np.arange(3000) / TICK_HZ
    flex = 5 + 20 * np.sin(2 * np.pi * tt / 25) + rng.normal(0, 2, len(tt))
    whole, _ = run_slouch(flex)
    k = np.arange(len(flex), dtype=np.int64)
    st, parts = None, []
    for a, b in zip([0, *cuts], [*cuts, len(flex)], strict=True):
        res, st = detect_slouch(k[a:b], flex[a:b], np.zeros(b - a, np.int8), SlouchParams(), st)
        parts += res.events
    assert parts == whole and len(whole) >= 6


# ------------------------------------------------------------------ sedentary bouts


def run_sed(active_runs: list[tuple[bool, int]], p: SedentaryParams | None = None,
            snooze_until: float | None = None, start: int = 0):
    p = p or SedentaryParams(1800.0, 60.0, 600.0)
    active = np.concatenate([np.full(n, a) for a, n in active_runs])
    sec = np.arange(start, start + len(active))
    from spinesense.edge.sedentary import SedentaryState
    st = SedentaryState()
    if snooze_until is not None:
        st.snooze_until = snooze_until
    ev, bouts, st = detect_sedentary(sec, active, p, st)
    return ev, bouts


def test_alert_at_the_limit_then_reminders_until_a_break() -> None:
    ev, bouts = run_sed([(False, 2500), (True, 90), (False, 100)])
    assert [(e["type"], e["t"]) for e in ev] == [
        ("sitting_alert", 1800.0), ("sitting_reminder", 2400.0), ("sitting_break", 2560.0)]
    assert ev[0]["bout_start"] == 0.0
    assert ev[2]["bout_start"] == 0.0 and ev[2]["bout_end"] == 2500.0
    assert bouts[2600] == 2590.0  # a new bout after the break


def test_short_stand_ups_stay_in_the_bout_and_hold_back_a_due_alert() -> None:
    ev, _ = run_sed([(False, 1790), (True, 40), (False, 100)])
    assert [(e["type"], e["t"]) for e in ev] == [("sitting_alert", 1830.0)]  # on sitting down
    ev2, _ = run_sed([(False, 1790), (True, 70), (False, 100)])
    assert [e["type"] for e in ev2] == ["sitting_break"]  # the bout ended before the limit


def test_snooze_postpones_and_a_long_gap_ends_the_bout_silently() -> None:
    ev, _ = run_sed([(False, 2000)], snooze_until=1900.0)
    assert [(e["type"], e["t"]) for e in ev] == [("sitting_alert", 1900.0)]
    p = SedentaryParams(1800.0, 60.0, 600.0)
    sec = np.concatenate([np.arange(0, 1000), np.arange(1100, 2950)])  # 100 s without data
    ev2, _, _ = detect_sedentary(sec, np.zeros(len(sec), bool), p)
    assert [(e["type"], e["t"]) for e in ev2] == [("sitting_alert", 2900.0)]  # new bout: 1100


# ----------------------------------------------------------------------------- metrics


def test_metrics_every_interval_with_the_schema_fields() -> None:
    mount = Rotation.random(random_state=5).as_matrix()
    t = 100.0 + np.arange(0, 60, 0.01)
    flex = np.where(t < 130, 0.0, 20.0)
    acc = mounted(flex, np.zeros_like(t), mount)
    rng = np.random.default_rng(0)
    acc += rng.normal(0, 0.003, acc.shape)
    up = upright_from_still(acc[:500])
    cal = Calibration(up, forward_from_lean(up, acc[-500:]))
    pipe = Pipeline(Config(), cal)
    recs = pipe.process(SampleChunk(t, acc)) + pipe.flush()
    metrics = [r for r in recs if r["type"] == "metric"]
    assert [m["t"] for m in metrics] == [110.0, 120.0, 130.0, 140.0, 150.0, 160.0]
    known = set(METRIC_FIELDS) - {"sample_rate_hz", "i2c_errors", "gap_s", "saturated",
                                  "spool_backlog", "unconfirmed"}
    for m in metrics:
        assert known <= set(m) and m["interval_s"] == 10 and isinstance(m["posture"], str)
        assert m["unknown_s"] + m["sitting_s"] + m["standing_s"] == 10
    assert abs(metrics[0]["flexion_mean"]) < 1.0
    assert metrics[-1]["flexion_mean"] == pytest.approx(20.0, abs=1.0)
    assert metrics[-1]["slouch_s"] == pytest.approx(10.0)
    assert metrics[-1]["bout_s"] == pytest.approx(60.0)
    starts = [r for r in recs if r["type"] == "slouch_start"]
    assert len(starts) == 1 and starts[0]["t"] == pytest.approx(135.0, abs=0.3)
