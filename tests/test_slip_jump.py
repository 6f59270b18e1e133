"""Sharp jumps (edge/slip_jump.py, SlipWatch._jump): a clip that slips while the wearer
holds still is re-anchored provisionally within seconds, before the flexion tilt it
brings can raise a slouch alert; a lean that comes back is undone; the decisions do not
depend on the chunking."""

from __future__ import annotations

import numpy as np
import pytest
from test_pipeline_calibration import _config, _mount_of
from test_pipeline_slip import _slipped

from spinesense.edge.calibration import Calibration
from spinesense.edge.replay import replay
from spinesense.edge.slip import SlipWatch
from spinesense.edge.slip_estimate import angle_of, rot_z
from spinesense.edge.slip_jump import JumpFinder
from spinesense.firmware.simulator import simulate


@pytest.mark.parametrize(("deg", "axis"), [(30.0, [0.4, 0.0, 1.0]),
                                           (-30.0, [0.0, -0.4, 1.0])])
def test_a_slip_while_typing_raises_no_alert_and_is_re_anchored_within_seconds(
        deg: float, axis: list[float]) -> None:
    """The slip tilts flexion forward by 10° or more (typing reads as a slouch); before
    the sharp-jump rule, the alert came 6–8 s later, long before the holds confirmed it."""
    sim = simulate("slouch_short", 3, duration_s=1500)
    at = 465.0
    cfg = _config(_mount_of(sim))
    cal = Calibration(sim.up_sensor, -sim.forward_sensor, method="test",
                      forward_method=f"board normal, mount {_mount_of(sim)}")
    recs = replay(_slipped(sim, at, deg, axis), cfg, calibration=cal, states=True)
    nxt = min(e["onset"] for e in sim.truth["slouch_episodes"] if e["onset"] > at)
    st = [r for r in recs if r["type"] == "state" and at + 1 < r["t"] < at + 4]
    assert max(r["flexion_deg"] for r in st) >= 15.0  # the slip's tilt did reach a slouch
    assert not [r for r in recs if r["type"] == "slouch_start" and at < r["onset"] < nxt - 3]
    late = [r for r in recs if r["type"] == "state" and at + 8 < r["t"] < nxt]
    true = np.interp([r["t"] + 0.5 for r in late], sim.t, sim.flexion_true)
    # most of the tilt is taken off at once (up to 2 sd of what a slip of 30° can do)
    assert np.median(np.abs(np.array([r["flexion_deg"] for r in late]) - true)) < 5.0
    prov = [r for r in recs if r["type"] == "calibrated" and "sharp turn" in r["method"]]
    assert prov and prov[0]["t"] < at + 8
    assert any(r["type"] == "slouch_start" and abs(r["onset"] - nxt) < 3 for r in recs)
    assert len([r for r in recs if r["type"] == "clip_moved"]) == 1  # confirmed once


def _lean_day(turn_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-second gravity: upright 100 s, a 1-s sideways turn about the board normal,
    held 80 s, and back (a lean on an armrest that comes back)."""
    up = np.array([0.0, -0.97, 0.24])
    up /= np.linalg.norm(up)
    leaned = rot_z(np.radians(turn_deg)) @ up
    rng = np.random.default_rng(1)
    g = np.vstack([np.tile(up, (100, 1)), np.tile(leaned, (80, 1)), np.tile(up, (100, 1))])
    g[100] = g[180] = (up + leaned) / np.linalg.norm(up + leaned)  # the second it turned
    g += rng.normal(0.0, 0.002, g.shape)
    g /= np.linalg.norm(g, axis=1)[:, None]
    return np.arange(len(g)), g, up


@pytest.mark.parametrize("sizes", [[280], [1], [7, 3, 50, 13]])
def test_a_sharp_lean_is_taken_provisionally_and_undone_when_it_comes_back(
        sizes: list[int]) -> None:
    sec, g, up = _lean_day(18.0)
    watch = SlipWatch(up=up.copy(), forward_sign=1.0)
    decisions, i, k = [], 0, 0
    while i < len(sec):
        n = sizes[k % len(sizes)]
        decisions += watch.feed(sec[i:i + n], g[i:i + n], np.zeros(len(sec[i:i + n]), bool))
        i, k = i + n, k + 1
    assert [d.provisional for d in decisions] == [True, True], decisions
    took, undone = decisions
    assert 101 <= took.sec <= 106 and abs(angle_of(took.rotation) - 18.0) < 1.0
    assert 181 <= undone.sec <= 200
    assert angle_of(undone.rotation @ took.rotation) < 0.1  # back where it was


def test_small_or_mostly_forward_jumps_are_not_slips() -> None:
    """A 6° sideways shift is a posture, and a forward drop is a slouch: no decision."""
    for turn in (6.0,):
        sec, g, up = _lean_day(turn)
        assert SlipWatch(up=up.copy()).feed(sec, g, np.zeros(len(sec), bool)) == []
    sec, g, up = _lean_day(0.0)
    b = np.array([0.0, 0.0, 1.0]) - (up @ [0.0, 0.0, 1.0]) * up
    b /= np.linalg.norm(b)
    slouched = np.cos(np.radians(25)) * up + np.sin(np.radians(25)) * b
    g[101:180] = slouched + np.radians(8) * np.cross(b, up)  # 25° forward, 8° sideways
    g /= np.linalg.norm(g, axis=1)[:, None]
    assert SlipWatch(up=up.copy()).feed(sec, g, np.zeros(len(sec), bool)) == []


def test_the_jump_finder_needs_steady_stretches_on_both_sides() -> None:
    sec, g, _up = _lean_day(18.0)
    jumps = JumpFinder().feed(sec, g)
    assert [j.sec for j in jumps] == [103, 183]
    noisy = g.copy()
    noisy[100:110] += np.random.default_rng(2).normal(0.0, 0.3, (10, 3))  # 10 s of moving
    noisy /= np.linalg.norm(noisy, axis=1)[:, None]
    first = JumpFinder().feed(sec, noisy)[0]
    assert first.sec == 112 and abs(np.degrees(np.arccos(first.before @ first.after)) - 18) < 1
    noisy[100:118] = noisy[100]  # moving for longer: the stretches are too far apart
    noisy[100:118] += np.random.default_rng(3).normal(0.0, 0.3, (18, 3))
    noisy /= np.linalg.norm(noisy, axis=1)[:, None]
    assert [j.sec for j in JumpFinder().feed(sec, noisy)] == [183]


def test_a_sharp_turn_is_dropped_when_the_next_posture_leans_the_other_way() -> None:
    """A slip moves every posture's lateral lean by the same turn; a lean to one side
    followed by a lean to the other is the wearer, not the clip."""
    sec, g, up = _lean_day(18.0)
    other = rot_z(np.radians(-15.0)) @ up
    g[181:] = other + np.random.default_rng(5).normal(0.0, 0.002, (len(g) - 181, 3))
    g /= np.linalg.norm(g, axis=1)[:, None]
    decisions = SlipWatch(up=up.copy(), forward_sign=1.0).feed(sec, g,
                                                               np.zeros(len(sec), bool))
    assert len(decisions) == 2 and all(d.provisional for d in decisions)
    assert 181 <= decisions[1].sec <= 186 and "other way" in decisions[1].record["method"]
    assert angle_of(decisions[1].rotation @ decisions[0].rotation) < 0.1
