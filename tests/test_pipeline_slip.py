"""Clip slips (edge/slip.py): a board that turns on the back is found and re-anchored, in
sitting and in walking; a day without a slip gives no clip_moved."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_feed import feed_in_chunks
from test_pipeline_calibration import _config, _mount_of, _on_the_wire

from spinesense.edge.calibration import Calibration, angle_deg
from spinesense.edge.replay import replay, summary
from spinesense.edge.slip import rotation_between
from spinesense.edge.slip_estimate import flexion_shift, flexion_tilt
from spinesense.firmware.simulator import simulate
from spinesense.samples import SampleChunk


def _slipped(sim, at: float, deg: float, axis: list[float]) -> SampleChunk:
    """The day as the sensor reads it when the board turns by ``deg`` about ``axis``
    (sensor frame: near z, the board normal) at ``at`` s and stays turned."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    th = np.radians(deg)
    turn = np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * (k @ k)
    acc, gyro = sim.acc.copy(), None if sim.gyro is None else sim.gyro.copy()
    late = sim.t > at
    acc[late] = acc[late] @ turn  # the sensor's axes turned by `turn` in the old frame
    if gyro is not None:
        gyro[late] = gyro[late] @ turn
    return SampleChunk(sim.t, acc, gyro)


def _flexion_error_after(recs: list[dict], sim, t_from: float) -> float:
    st = [r for r in recs if r["type"] == "state" and r["t"] > t_from
          and r["flexion_deg"] is not None]
    true = np.interp([r["t"] + 0.5 for r in st], sim.t, sim.flexion_true)
    return float(np.median(np.abs(np.array([r["flexion_deg"] for r in st]) - true)))


@pytest.mark.parametrize(("scenario", "seed", "at", "deg", "axis"), [
    ("slouch_short", 3, 465.0, 28.0, [0.15, -0.1, 1.0]),  # while typing
    ("walking", 5, 500.0, -22.0, [-0.1, 0.2, 1.0]),
])
def test_a_clip_that_turns_on_the_back_is_found_and_re_anchored(
        scenario: str, seed: int, at: float, deg: float, axis: list[float]) -> None:
    sim = simulate(scenario, seed, duration_s=1500)
    cfg = _config(_mount_of(sim))
    cal = Calibration(sim.up_sensor, -sim.forward_sensor, method="test",
                      forward_method=f"board normal, mount {_mount_of(sim)}")
    ok = replay(sim.chunk(), cfg, calibration=cal)
    assert not any(r["type"] in ("clip_moved", "calibration_stale") for r in ok)
    recs = replay(_slipped(sim, at, deg, axis), cfg, calibration=cal, states=True)
    moved = [r for r in recs if r["type"] == "clip_moved"]
    assert len(moved) == 1 and at < moved[0]["t"] < at + 420, moved
    assert abs(moved[0]["shift_deg"] - abs(deg)) < 8.0
    _on_the_wire([r for r in recs if r["type"] in ("clip_moved", "calibrated")])
    assert "clip moved at t=" in summary(recs)
    # re-anchored: upright turned with the board, and flexion is the true one again
    # (without it, flexion would be off by several degrees and lateral by the turn)
    up = np.array([r for r in recs if r["type"] == "calibrated"][-1]["up"])
    a = np.asarray(axis) / np.linalg.norm(axis)
    th = np.radians(deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    turned_up = (np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * (k @ k)).T @ sim.up_sensor
    assert angle_deg(up, turned_up) < 4.0
    assert _flexion_error_after(recs, sim, moved[0]["t"]) < 3.0
    if scenario == "slouch_short":  # and the slouches after it are all found
        starts = [r["onset"] for r in recs if r["type"] == "slouch_start"]
        late = [e for e in sim.truth["slouch_episodes"] if e["onset"] > moved[0]["t"]]
        assert late and all(any(abs(s - e["onset"]) < 3 for s in starts) for e in late)


def test_flexion_tilt_overlays_every_posture_and_keeps_only_what_a_slip_can_do() -> None:
    rng = np.random.default_rng(4)
    sitting, typing, reclined = rng.normal(1.0, 1.0, 300), rng.normal(7.0, 1.5, 200), \
        rng.normal(-20.0, 3.0, 200)
    before = np.concatenate((sitting, typing[:60], reclined[:40]))
    # after the slip: the same postures, 4° further forward, from other moments (a third
    # of them, in the same mix): every mode moved by the slip, none by the wearer
    after = np.concatenate((sitting[::3], typing[1:60:3], reclined[1:40:3])) + 4.0
    assert flexion_shift(before, after, 15.0) == pytest.approx(4.0, abs=0.5)
    assert flexion_shift(before, after, 2.5) is None                # beyond what a slip does
    assert flexion_shift(before[:2], after, 15.0) is None           # too little to say
    # a large turn keeps most of the measured shift; a small one (it can only tilt
    # flexion a little) keeps little; nothing measured: no tilt
    assert 0.7 * 4.0 < flexion_tilt(4.0, 35.0) < 4.0
    assert 0.0 < flexion_tilt(4.0, 6.0) < 0.2 * 4.0
    assert flexion_tilt(None, 30.0) == 0.0
    r = rotation_between(np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    np.testing.assert_allclose(r @ [1.0, 0, 0], [0, 1.0, 0], atol=1e-12)


@pytest.mark.parametrize("sizes", [[100], [997, 13, 4000, 250]])
def test_a_slip_is_decided_the_same_whatever_the_chunking(sizes: list[int]) -> None:
    sim = simulate("walking", 5, duration_s=1200)
    chunk = _slipped(sim, 500.0, -22.0, [-0.1, 0.2, 1.0])
    cal = sim.truth["calibration"]
    window = (cal["start"], cal["end"])
    ref = feed_in_chunks(chunk, [len(chunk)], window)
    assert any(r["type"] == "clip_moved" for r in ref)
    assert feed_in_chunks(chunk, sizes, window) == ref


def test_a_board_off_the_back_runs_without_a_slip_watch() -> None:
    """A sensor lying flat (z along upright, e.g. on a desk while testing) has no board
    normal to turn about: the pipeline runs, says the axis is unknown, watches no slip."""
    t = np.arange(0.0, 120.0, 0.01)
    acc = np.tile([0.0, 0.0, 1.0], (len(t), 1))  # as the register emulator reads it at rest
    recs = replay(SampleChunk(t, acc, None), _config("back-out"), calibrate=(1.0, 10.0))
    cal = [r for r in recs if r["type"] == "calibrated"]
    assert cal and cal[0]["confidence"] == "none" and cal[0]["facing"] == "unknown"
    assert not [r for r in recs if r["type"] == "clip_moved"]


def test_a_slip_during_the_first_walk_is_re_anchored_once() -> None:
    """The first walk after the calibration comes right after a slip: the stale check
    re-anchors on that walk (it reads far from upright because of the slip), then the
    slip watch confirms the slip. The watch's upright replaces the stale one; turning the
    stale one by the slip again left flexion off by ~11° for the rest of the day. (Now the
    slip's sharp turn inside that walk is re-anchored provisionally at once, so the walk
    no longer reads stale; either way the slip must be counted once.)"""
    from spinesense.edge.robustness import labels_of
    from spinesense.firmware.worldsim import simulate_world

    sim = simulate_world("long_sit", 20216, labels=labels_of(_config("back-out")))
    tr = sim.truth
    assert tr["slips"] and tr["slips"][0]["during"] == "walking"
    cal = tr["calibration"]
    recs = replay(sim.chunk(), _config(tr["facing"]), calibrate=(cal["start"], cal["end"]),
                  states=True)
    kinds = [r["type"] for r in recs if r["type"] in ("calibration_stale", "clip_moved")]
    assert kinds in (["calibration_stale", "clip_moved"], ["clip_moved"])
    moved = next(r["t"] for r in recs if r["type"] == "clip_moved")
    st = [r for r in recs if r["type"] == "state" and r["t"] > moved
          and r["posture"] in ("sitting", "standing") and r["flexion_deg"] is not None]
    true = np.interp([r["t"] + 0.5 for r in st], sim.labelling["t"], sim.flexion_true)
    err = np.array([r["flexion_deg"] for r in st]) - true
    assert len(st) > 600 and abs(float(np.median(err))) < 3.0
