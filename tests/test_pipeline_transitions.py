"""Sit/stand pushes (edge/transitions.py) and the posture inference that uses them
(edge/activity.py), on trunk movements built here from a body model: a trunk pivoting at
the hips with the sensor on a lever above them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from spinesense.edge.activity import (
    CLEAR_PUSH_M,
    LANDING_S,
    SITTING,
    STAND_HOLD_S,
    STANDING,
    UNKNOWN,
    WALKING,
    WEAK_STAND_HOLD_S,
    classify,
)
from spinesense.edge.features import FrontEnd, G
from spinesense.edge.filters import Resampler
from spinesense.edge.sedentary import SedentaryParams, detect_sedentary
from spinesense.edge.transitions import Transition, zero_velocity_weights
from spinesense.samples import SampleChunk

RATE = 100.0


def _smooth(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u ** 3 * (10 - 15 * u + 6 * u * u)


def _pulse(t: np.ndarray, start: float, dur: float, peak: float) -> np.ndarray:
    """0 → peak → 0 over ``dur`` seconds from ``start``."""
    u = (t - start) / dur
    return peak * np.where(u < 0.5, _smooth(2 * u), _smooth(2 - 2 * u))


def _step(t: np.ndarray, start: float, dur: float, height: float) -> np.ndarray:
    return height * _smooth((t - start) / dur)


def body_day(moves: list[tuple[str, float, float, float]], seconds: float = 60.0,
             lever_m: float = 0.45, seed: int = 0) -> SampleChunk:
    """Sensor samples (g) for a list of (kind, start, duration, size): ``rise``/``drop``
    move the hips by ``size`` m with a 25° forward lean, ``reach`` bends ``size``° and
    back with the hips still. The sensor sits ``lever_m`` above the hips."""
    t = np.arange(0.0, seconds, 1.0 / RATE)
    hip_z, flex = np.zeros_like(t), np.zeros_like(t)
    for kind, start, dur, size in moves:
        if kind == "reach":
            flex += _pulse(t, start, dur, size)
        else:
            flex += _pulse(t, start, dur, 25.0)
            hip_z += _step(t, start + 0.3 * dur, 0.7 * dur, size if kind == "rise" else -size)
    th = np.radians(flex)
    x, z = lever_m * np.sin(th), hip_z + lever_m * np.cos(th)
    ax, az = (np.gradient(np.gradient(v, t), t) / G for v in (x, z))
    az = az + 1.0
    acc = np.stack([ax * np.cos(th) - az * np.sin(th), np.zeros_like(t),
                    ax * np.sin(th) + az * np.cos(th)], axis=1)
    acc += np.random.default_rng(seed).normal(0.0, 0.003, acc.shape)
    return SampleChunk(t + 1000.0, acc)


def pushes(chunk: SampleChunk, cuts: list[int] | None = None) -> list[Transition]:
    rs, fe = Resampler(0.5), FrontEnd(0.5, 1.5)
    bounds = [0, *(cuts or []), len(chunk.t)]
    out: list[Transition] = []
    for a, b in itertools.pairwise(bounds):
        ticks, _ = rs.push(SampleChunk(chunk.t[a:b], chunk.acc[a:b]))
        if len(ticks):
            out += fe.seconds(fe.ticks(ticks)).transitions
    return out


def test_zero_velocity_weights_ignore_a_constant_bias_and_recover_a_rise() -> None:
    h = zero_velocity_weights(150, 25)
    assert abs(float(h @ np.full(150, 0.3))) < 1e-9   # an accelerometer offset
    t = np.arange(150) / 25.0
    z = _step(t, 1.5, 2.5, 0.4)
    a = np.gradient(np.gradient(z, t), t)
    assert float(h @ a) == pytest.approx(0.4, abs=0.02)
    assert float(h @ -a) == pytest.approx(-0.4, abs=0.02)


@pytest.mark.parametrize("lever_m", [0.3, 0.55])
def test_a_stand_up_and_a_sit_down_are_found_with_their_size(lever_m: float) -> None:
    got = pushes(body_day([("rise", 10.0, 2.5, 0.4), ("drop", 35.0, 1.6, 0.4)],
                          lever_m=lever_m))
    assert [tr.kind for tr in got] == ["sit_to_stand", "stand_to_sit"]
    assert got[0].lift_m == pytest.approx(0.4, abs=0.1)
    assert got[1].lift_m == pytest.approx(-0.4, abs=0.1)
    assert 10.0 < got[0].t - 1000.0 < 15.0 and 35.0 < got[1].t - 1000.0 < 40.0


def test_a_deep_reach_with_the_hips_still_is_not_a_transition() -> None:
    assert pushes(body_day([("reach", 10.0, 2.0, 50.0), ("reach", 30.0, 3.5, 40.0)])) == []


def test_pushes_do_not_depend_on_the_chunking() -> None:
    chunk = body_day([("rise", 10.0, 2.5, 0.4), ("drop", 35.0, 1.6, 0.45),
                      ("reach", 48.0, 2.0, 45.0)], seed=3)
    whole = [(tr.t, tr.kind, tr.lift_m) for tr in pushes(chunk)]
    rng = np.random.default_rng(7)
    for _ in range(3):
        cuts = sorted(rng.choice(np.arange(1, len(chunk.t)), 40, replace=False).tolist())
        assert [(tr.t, tr.kind, tr.lift_m) for tr in pushes(chunk, cuts)] == whole


def _transition(t: float, kind: str) -> Transition:
    return Transition(t, kind, 0.4 if kind == "sit_to_stand" else -0.4, 20.0,
                      np.zeros(3))


def test_standing_without_support_becomes_unknown_not_standing_for_ever() -> None:
    sec = np.arange(1000)
    walking = (sec >= 10) & (sec < 40)          # a sustained walk
    post, _, _ = classify(sec, walking, np.zeros(len(sec)), [], 60.0)
    assert (post[40:40 + STAND_HOLD_S] == STANDING).all()
    assert (post[40 + STAND_HOLD_S + 1:] == UNKNOWN).all()
    # a few steps (a seated fidget can fake them) lapse before they could make a break
    few = (sec >= 10) & (sec < 13)
    post, _, _ = classify(sec, few, np.zeros(len(sec)), [], 60.0)
    assert WEAK_STAND_HOLD_S < 60
    assert (post[13:13 + WEAK_STAND_HOLD_S] == STANDING).all()
    assert (post[13 + WEAK_STAND_HOLD_S + 1:] == UNKNOWN).all()
    # a clear stand-up holds standing like a walk, a faint one like a few steps; a
    # sit-down holds sitting for good
    faint = Transition(600.5, "sit_to_stand", CLEAR_PUSH_M - 0.05, 20.0, np.zeros(3))
    post, _, _ = classify(sec, np.zeros(len(sec), bool), np.zeros(len(sec)),
                          [_transition(100.5, "sit_to_stand"), _transition(400.2, "stand_to_sit"),
                           faint], 60.0)
    assert (post[100:100 + STAND_HOLD_S] == STANDING).all()
    assert (post[100 + STAND_HOLD_S + 1:400] == UNKNOWN).all()
    assert (post[400:600] == SITTING).all()
    assert (post[600:600 + WEAK_STAND_HOLD_S] == STANDING).all()
    assert (post[600 + WEAK_STAND_HOLD_S + 1:] == UNKNOWN).all()


def test_a_landing_bounce_after_sitting_down_does_not_mean_standing() -> None:
    sec = np.arange(300)
    walking = np.zeros(len(sec), bool)
    walking[101:103] = True                      # two rhythmic seconds while landing
    walking[200:203] = True                      # later, real steps
    post, _, _ = classify(sec, walking, np.zeros(len(sec)),
                       [_transition(100.3, "stand_to_sit")], 60.0)
    assert LANDING_S >= 101 - 100
    assert (post[103:200] == SITTING).all() and (post[101:103] == WALKING).all()
    assert (post[203:203 + WEAK_STAND_HOLD_S] == STANDING).all()
    # the same across blocks
    post2a, _, st2 = classify(sec[:150], walking[:150], np.zeros(150),
                           [_transition(100.3, "stand_to_sit")], 60.0)
    post2b, _, _ = classify(sec[150:], walking[150:], np.zeros(150), [], 60.0, st2)
    assert np.array_equal(np.concatenate((post2a, post2b)), post)


def test_a_bout_after_lapsed_standing_is_dated_from_the_last_sign_of_standing() -> None:
    """A sit-down missed after a walk: standing lapses into unknown STAND_HOLD_S later,
    and the sitting alert still falls due 30 min after the walk ended, not after that."""
    sec = np.arange(2400)
    walking = (sec >= 100) & (sec < 200)
    post, idle_since, _ = classify(sec, walking, np.zeros(len(sec)), [], 60.0)
    active = (post == STANDING) | (post == WALKING)
    p = SedentaryParams(limit_s=1800.0, break_s=60.0, repeat_s=600.0)
    events, _, _ = detect_sedentary(sec, active, p, None, idle_since)
    alerts = [e for e in events if e["type"] == "sitting_alert"]
    assert [e["type"] for e in events][:1] == ["sitting_break"]
    assert len(alerts) == 1 and alerts[0]["bout_start"] == 200.0
    assert alerts[0]["t"] == pytest.approx(2000.0)
    # without the dating, the bout would only start when standing lapsed
    events, _, _ = detect_sedentary(sec, active, p)
    assert [e["bout_start"] for e in events if e["type"] == "sitting_alert"] == [
        200.0 + STAND_HOLD_S]


def _walk_then(t: np.ndarray, *, stairs: bool) -> SampleChunk:
    """Walking 10–30 s (hips bobbing 2 cm at 1.8 steps/s), then sitting straight down,
    or the same walk down a flight of stairs (0.17 m per second) and standing still."""
    hip_z = np.where((t >= 10) & (t < 30), 0.02 * np.sin(2 * np.pi * 1.8 * (t - 10)), 0.0)
    flex = np.zeros_like(t)
    if stairs:
        hip_z = hip_z - 0.17 * np.clip(t - 10, 0, 20)
    else:
        flex += _pulse(t, 30.0, 2.0, 25.0)
        hip_z = hip_z + _step(t, 30.6, 1.4, -0.4)
    th = np.radians(flex)
    x, z = 0.45 * np.sin(th), hip_z + 0.45 * np.cos(th)
    ax, az = (np.gradient(np.gradient(v, t), t) / G for v in (x, z))
    az = az + 1.0
    acc = np.stack([ax * np.cos(th) - az * np.sin(th), np.zeros_like(t),
                    ax * np.sin(th) + az * np.cos(th)], axis=1)
    acc += np.random.default_rng(0).normal(0.0, 0.003, acc.shape)
    return SampleChunk(t + 1000.0, acc)


def test_a_sit_down_straight_out_of_a_walk_is_found_and_stairs_are_not_one() -> None:
    t = np.arange(0.0, 60.0, 1.0 / RATE)
    got = pushes(_walk_then(t, stairs=False))
    assert [tr.kind for tr in got] == ["stand_to_sit"]
    assert 30.0 < got[0].t - 1000.0 < 36.0 and got[0].lift_m < -0.25
    assert pushes(_walk_then(t, stairs=True)) == []
