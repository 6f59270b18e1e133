"""The motion simulator: physics, truth self-consistency, determinism, CSV/JSON output."""

from __future__ import annotations

import csv
import gzip
import itertools
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from spinesense.cli import main
from spinesense.firmware.kinematics import LEVER_ARM_M, G
from spinesense.firmware.motion import ArrayMotion, MotionSource, StaticMotion
from spinesense.firmware.simulator import (
    POSTURES,
    SCENARIOS,
    SensorModel,
    mounting_matrix,
    simulate,
)

TRUTH_KEYS = {"scenario", "seed", "rate_hz", "duration_s", "mounting", "label_params",
              "calibration", "slouch_episodes", "sitting_bouts", "sitting_alerts", "breaks",
              "segments", "walking", "reaches", "reclines"}


@pytest.fixture(scope="module")
def workday():
    return simulate("workday", 7)


@pytest.fixture(scope="module")
def mixed():
    return simulate("mixed", 3)


@pytest.fixture(scope="module")
def mixed_flexion(mixed):
    return flexion_from_orientation(mixed)


def flexion_from_orientation(sim) -> np.ndarray:
    """Forward tilt of the spine, recomputed from the orientation (not from the labeller's
    input): world up seen in the body frame, angle of its backward component."""
    up_body = sim.orientation().inv().apply([0.0, 0.0, 1.0])
    return np.degrees(np.arcsin(np.clip(-up_body[:, 0], -1.0, 1.0)))


def at(sim, t: float) -> int:
    """First sample at or after ``t``."""
    return int(np.searchsorted(sim.t, t - 1e-9))


def index(sim, t: float) -> int:
    i = int(np.searchsorted(sim.t, t - 1e-5))  # truth times are rounded to 1 µs
    assert abs(sim.t[i] - t) < 1e-5, f"{t} is not a sample time"
    return i


# -- slouch truth ----------------------------------------------------------------------

def check_episodes(sim, truth: dict, flex: np.ndarray) -> None:
    """Every labelled episode obeys the definition on the noiseless flexion ``flex``, and
    every stretch that obeys it is labelled (nothing missed)."""
    t = sim.t
    p = truth["label_params"]
    thr, rel, delay = p["threshold_deg"], p["release_deg"], p["delay_s"]
    eligible = sim.posture_index() <= POSTURES.index("standing")
    inside = np.zeros(len(t), bool)
    for ep in truth["slouch_episodes"]:
        i, j, k = index(sim, ep["onset"]), index(sim, ep["alert"]), index(sim, ep["end"])
        assert flex[i] > thr and eligible[i]
        assert flex[i - 1] <= thr or not eligible[i - 1], "onset is the crossing sample"
        assert np.all(flex[i:j + 1] > thr) and np.all(eligible[i:j + 1]), "held until alert"
        assert t[j] - t[i] >= delay - 1e-9 and (j == i or t[j - 1] - t[i] < delay - 1e-9)
        if ep["open"]:  # still slouching when the recording ends
            assert k == len(flex) - 1 and np.all(flex[j:] >= rel) and np.all(eligible[j:])
            inside[i:] = True
            continue
        assert flex[k] < rel or not eligible[k], "ends at the release crossing"
        assert np.all(flex[j:k] >= rel) and np.all(eligible[j:k])
        assert ep["peak_deg"] == pytest.approx(flex[i:k].max(), abs=1e-3)
        inside[i:k] = True
    above = (flex > thr) & eligible
    edges = np.diff(above.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1),
                           strict=True):
        if not inside[start]:
            assert t[stop - 1] - t[start] < delay - 1e-9, f"missed episode at {t[start]}"


@pytest.mark.parametrize("name", ["slouch_short", "mixed", "calibration", "marginal"])
def test_slouch_truth_matches_the_noiseless_flexion(name):
    sim = simulate(name, 11)
    flex = flexion_from_orientation(sim)
    np.testing.assert_allclose(flex, sim.flexion_true, atol=1e-6)
    assert sim.truth["slouch_episodes"] or name == "calibration"
    check_episodes(sim, sim.truth, flex)


@settings(max_examples=40, deadline=None)
@given(threshold=st.floats(6.0, 40.0), hysteresis=st.floats(0.2, 8.0),
       delay=st.floats(0.0, 30.0))
def test_slouch_truth_holds_for_any_label_parameters(mixed, mixed_flexion, threshold,
                                                     hysteresis, delay):
    truth = mixed.relabel(threshold_deg=threshold, release_deg=threshold - hysteresis,
                          delay_s=delay)
    check_episodes(mixed, truth, mixed_flexion)


def test_episodes_come_only_from_designed_slouches(workday):
    """Typing, sway and transitions never cross into a labelled slouch by accident."""
    slouches = [(s["start"], s["end"]) for s in workday.truth["segments"]
                if s["activity"] in ("slouch", "calibration_lean")]
    assert len(workday.truth["slouch_episodes"]) >= 10
    for ep in workday.truth["slouch_episodes"]:
        assert any(a <= ep["onset"] <= b for a, b in slouches), ep
    holds = [ep["end"] - ep["alert"] for ep in workday.truth["slouch_episodes"]]
    assert min(holds) < 60 and max(holds) > 300, "slouches of many lengths"


def test_reaches_never_satisfy_the_delay():
    sim = simulate("reaches", 5)
    assert sim.truth["slouch_episodes"] == []
    assert len(sim.truth["reaches"]) >= 10
    p = sim.truth["label_params"]
    for reach in sim.truth["reaches"]:
        assert 25.0 <= reach["peak_deg"] <= 53.0
        a, b = at(sim, reach["start"]), at(sim, reach["end"] + 1.0)
        assert np.count_nonzero(sim.flexion_true[a:b] > p["threshold_deg"]) / sim.rate_hz \
            < p["delay_s"] - 0.5
    # a shorter labelled delay turns the same reaches into episodes
    short = simulate("reaches", 5, labels={"delay_s": 0.5})
    assert len(short.truth["slouch_episodes"]) >= len(sim.truth["reaches"]) - 1
    np.testing.assert_array_equal(short.acc, sim.acc)


def test_reclines_are_backward_and_never_slouches():
    sim = simulate("recline", 2)
    assert sim.truth["slouch_episodes"] == []
    assert len(sim.truth["reclines"]) >= 4
    for rec in sim.truth["reclines"]:
        assert -29.0 <= rec["min_deg"] <= -8.0
    after_calibration = at(sim, sim.truth["calibration"]["lean"]["end"])
    assert sim.flexion_true[after_calibration:].max() < sim.truth["label_params"]["release_deg"]


def test_label_overrides_change_only_the_truth():
    base = simulate("slouch_short", 4)
    strict = simulate("slouch_short", 4, labels={"threshold_deg": 25.0, "release_deg": 20.0})
    np.testing.assert_array_equal(base.acc, strict.acc)
    assert strict.truth["label_params"]["threshold_deg"] == 25.0
    assert len(strict.truth["slouch_episodes"]) < len(base.truth["slouch_episodes"])
    for ep in strict.truth["slouch_episodes"]:
        i = index(strict, ep["onset"])
        assert strict.flexion_true[i - 1] <= 25.0 < strict.flexion_true[i]
    with pytest.raises(ValueError, match="release_deg"):
        simulate("slouch_short", 4, labels={"release_deg": 16.0})
    with pytest.raises(ValueError, match=r"unknown label parameter.*threshold_deg"):
        simulate("slouch_short", 4, labels={"threshold": 16.0})


# -- segments and sitting truth --------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_segments_tile_the_recording(name, workday):
    sim = workday if name == "workday" else simulate(name, 1, duration_s=None)
    segs = sim.truth["segments"]
    assert segs[0]["start"] == sim.t[0] == 0.0
    assert segs[-1]["end"] == pytest.approx(sim.truth["duration_s"])
    for a, b in itertools.pairwise(segs):
        assert a["end"] == pytest.approx(b["start"], abs=1e-6) and b["end"] > b["start"]
    assert {s["posture"] for s in segs} <= set(POSTURES)
    assert set(sim.truth) >= TRUTH_KEYS
    json.dumps(sim.truth)  # JSON-able
    assert len(sim.t) == round(sim.truth["duration_s"] * sim.rate_hz)
    if name != "workday":
        assert sim.truth["duration_s"] <= 20 * 60 or name in ("sitting_long", "mixed")


def sedentary_bouts(sim, break_s: float) -> list[tuple[float, float]]:
    """Bouts recomputed per sample from the posture track, independently of the labeller."""
    posture = sim.posture_index()
    active = (posture == POSTURES.index("standing")) | (posture == POSTURES.index("walking"))
    edges = np.diff(active.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    n, dt = len(sim.t), 1.0 / sim.rate_hz
    sedentary = np.flatnonzero(~active)
    bouts: list[tuple[float, float]] = []
    bout_start = sim.t[sedentary[0]] if len(sedentary) else None
    for s, e in zip(starts, stops, strict=True):
        if bout_start is None or sim.t[s] < bout_start:
            continue
        if (e - s) * dt >= break_s:
            bouts.append((bout_start, sim.t[s]))
            bout_start = sim.t[e] if e < n else None
    if bout_start is not None:
        bouts.append((bout_start, sim.t[-1] + dt))
    return bouts


def check_sitting(sim, truth: dict) -> None:
    """Bouts equal those recomputed per sample; alerts, reminders and breaks sit exactly
    where the definition puts them."""
    p = truth["label_params"]
    limit, repeat = p["sitting_limit_s"], p["repeat_s"]
    bouts = truth["sitting_bouts"]
    recomputed = sedentary_bouts(sim, p["break_s"])
    assert len(recomputed) == len(bouts)
    for (a, b), bout in zip(recomputed, bouts, strict=True):
        assert a == pytest.approx(bout["start"], abs=0.011)
        assert b == pytest.approx(bout["end"], abs=0.011)
    long_bouts = [b for b in bouts if b["end"] - b["start"] >= limit - 1e-6]
    assert [a["bout_start"] for a in truth["sitting_alerts"]] == [b["start"] for b in long_bouts]
    for alert in truth["sitting_alerts"]:
        assert alert["t"] == pytest.approx(alert["bout_start"] + limit)
    expected = [(b["start"], k) for b in long_bouts for k in range(1, 10_000)
                if repeat > 0 and b["start"] + limit + k * repeat < b["end"] - 1e-6]
    assert [(r["bout_start"], r["n"]) for r in truth["sitting_reminders"]] == expected
    for rem in truth["sitting_reminders"]:
        assert rem["t"] == pytest.approx(rem["bout_start"] + limit + rem["n"] * repeat)
    assert len(truth["breaks"]) == len([b for b in bouts if not b["open"]])
    for brk, bout in zip(truth["breaks"], bouts, strict=False):
        assert (brk["bout_start"], brk["bout_end"]) == (bout["start"], bout["end"])
        assert brk["t"] == pytest.approx(brk["bout_end"] + p["break_s"])


def active_runs(truth: dict) -> list[float]:
    """Lengths of the stretches of standing/walking segments."""
    runs, current = [], 0.0
    for seg in truth["segments"]:
        if seg["posture"] in ("standing", "walking"):
            current += seg["end"] - seg["start"]
        elif current:
            runs.append(current)
            current = 0.0
    return [*runs, current] if current else runs


def test_sitting_truth_is_consistent(workday):
    tr = workday.truth
    p = tr["label_params"]
    bouts = tr["sitting_bouts"]
    check_sitting(workday, tr)
    long_bouts = [b for b in bouts if b["end"] - b["start"] > p["sitting_limit_s"]]
    assert len(long_bouts) >= 3 and tr["sitting_reminders"]
    for bout in bouts[:-1]:  # clear truth: closed bouts stay 3 min away from the limit
        assert abs(bout["end"] - bout["start"] - p["sitting_limit_s"]) > 170.0
        assert bout["end"] - bout["start"] > 5 * 60
    # short stand-ups (< break_s) happen inside bouts and do not end them
    segs = tr["segments"]
    inside = [s for s in segs if s["activity"] == "sit_to_stand"
              and any(b["start"] < s["start"] < b["end"] for b in bouts)]
    assert len(inside) >= 3
    assert any(s["activity"] == "walking" and s["end"] - s["start"] > 7 * 60 for s in segs)


@settings(max_examples=25, deadline=None)
@given(limit=st.floats(60.0, 4000.0), break_s=st.floats(5.0, 400.0),
       repeat=st.sampled_from([0.0, 60.0, 300.0, 600.0, 1234.5]))
def test_sitting_truth_holds_for_any_label_parameters(workday, limit, break_s, repeat):
    # a stand-up lasting within a sample of break_s is a coin toss per sample: skip those
    assume(all(abs(run - break_s) > 0.03 for run in active_runs(workday.truth)))
    truth = workday.relabel(sitting_limit_s=limit, break_s=break_s, repeat_s=repeat)
    check_sitting(workday, truth)


def test_sitting_long_alerts_reminds_and_breaks():
    sim = simulate("sitting_long", 8)
    tr = sim.truth
    assert tr["sitting_bouts"][0]["start"] == 0.0
    assert tr["sitting_bouts"][0]["end"] == pytest.approx(41.5 * 60, abs=0.01)
    assert tr["sitting_alerts"][0] == {"t": 1800.0, "bout_start": 0.0}
    assert [r["t"] for r in tr["sitting_reminders"]] == [2400.0]
    assert tr["breaks"][0]["t"] == pytest.approx(41.5 * 60 + 60.0, abs=0.01)
    shorter = simulate("sitting_long", 8, labels={"sitting_limit_s": 600.0, "repeat_s": 0.0})
    assert shorter.truth["sitting_alerts"][0]["t"] == 600.0
    assert shorter.truth["sitting_reminders"] == []


# -- physics ---------------------------------------------------------------------------

def test_still_sensor_reads_one_g_along_the_true_up():
    sim = simulate("calibration", 9, sensor=SensorModel.ideal())
    cal = sim.truth["calibration"]
    a, b = index(sim, cal["start"]), index(sim, cal["end"])
    acc = sim.acc[a:b]
    assert np.abs(np.linalg.norm(acc, axis=1) - 1.0).max() < 2e-3
    cosang = acc @ sim.up_sensor / np.linalg.norm(acc, axis=1)
    assert np.degrees(np.arccos(cosang.min())) < 1.5
    assert np.abs(sim.gyro[a:b]).max() < 3.0
    # with sensor errors: still about 1 g (bias, scale) and quantised to the LSB
    real = simulate("calibration", 9)
    assert np.abs(np.linalg.norm(real.acc[a:b], axis=1).mean() - 1.0) < 0.07
    counts = real.acc / SensorModel().accel_lsb_g
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)


def test_gyro_is_the_orientation_derivative(mixed):
    """Integrating the body-frame gyro reproduces the orientation change."""
    rot, dt = mixed.orientation(), 1.0 / mixed.rate_hz
    omega_body = mixed.gyro_true.astype(float) @ mixed.mounting.T
    for seg in [s for s in mixed.truth["segments"]
                if s["activity"] in ("reach", "sit_to_stand", "walking", "lie_down")][:6]:
        a = at(mixed, seg["start"])
        b = min(a + 400, len(mixed.t) - 1)
        steps = Rotation.from_rotvec(np.radians(0.5 * (omega_body[a:b] + omega_body[a + 1:b + 1]))
                                     * dt)
        r = rot[a]
        for k in range(b - a):
            r = r * steps[k]
        err = (r.inv() * rot[b]).magnitude()
        assert np.degrees(err) < 0.2, seg


def test_specific_force_is_gravity_plus_lever_arm(mixed):
    """f = Rᵀ(a + g): recompute the sensor's acceleration by differentiating its position
    (hip fixed while sitting) and compare with the simulated specific force."""
    seg = next(s for s in mixed.truth["segments"] if s["activity"] == "reach")
    a = at(mixed, seg["start"]) - 50
    b = a + 600
    rot = mixed.orientation()[a:b]
    pos = rot.apply(LEVER_ARM_M)
    dt = 1.0 / mixed.rate_hz
    acc_world = np.gradient(np.gradient(pos, dt, axis=0), dt, axis=0) / G
    expected = rot.inv().apply(acc_world + np.array([0.0, 0.0, 1.0]))
    got = mixed.acc_true[a:b].astype(float) @ mixed.mounting.T
    err = np.abs(got - expected)[5:-5]
    assert err.max() < 0.01 and err.mean() < 5e-4  # finite differences are not exact
    assert np.abs(got - rot.inv().apply([0.0, 0.0, 1.0])).max() > 0.02  # lever arm matters


def test_walking_has_steps_at_1_6_to_2_hz():
    sim = simulate("walking", 12, sensor=SensorModel.ideal())
    walks = sim.truth["walking"]
    assert len(walks) >= 3
    acc_body = sim.acc @ sim.mounting.T
    gyro_body = sim.gyro @ sim.mounting.T
    for w in walks:
        a, b = at(sim, w["start"]) + 300, at(sim, w["end"]) - 300
        vert = acc_body[a:b, 2] - acc_body[a:b, 2].mean()
        freqs = np.fft.rfftfreq(len(vert), 1.0 / sim.rate_hz)
        peak = freqs[np.argmax(np.abs(np.fft.rfft(vert)))]
        assert 1.6 <= peak <= 2.0 and peak == pytest.approx(w["step_hz"], abs=0.02)
        assert 0.05 < vert.std() < 0.25, "vertical trunk acceleration ~0.1–0.3 g amplitude"
        assert acc_body[a:b, 0].std() > 0.02 and acc_body[a:b, 1].std() > 0.02
        assert np.all(gyro_body[a:b].std(axis=0) > 3.0)
        assert 2.0 < sim.flexion_true[a:b].mean() < 9.0, "slight forward lean"
    assert all(s["activity"] != "walking" or s["posture"] == "walking"
               for s in sim.truth["segments"])


def test_postures_look_right(mixed):
    flex, posture = mixed.flexion_true, mixed.posture_index()
    lying = posture == POSTURES.index("lying")
    assert lying.any()
    lying_segs = [s for s in mixed.truth["segments"] if s["activity"] == "lying"]
    supine = at(mixed, lying_segs[0]["start"] + 30.0)
    assert flex[supine] < -70.0
    side = at(mixed, lying_segs[1]["start"] + 30.0)
    assert abs(mixed.euler_deg[side, 2]) > 70.0
    for seg in mixed.truth["segments"]:
        if seg["activity"] == "sit_to_stand":
            assert 20.0 <= seg["peak_deg"] <= 36.0
            i = at(mixed, seg["start"])
            body = mixed.acc_true[i:i + 300].astype(float) @ mixed.mounting.T
            vert = mixed.orientation()[i:i + 300].apply(body)[:, 2] - 1.0
            assert vert.max() > 0.12, "the push up shows as vertical acceleration"
    typing = [s for s in mixed.truth["segments"] if s["activity"] == "typing"]
    for seg in typing:
        a, b = at(mixed, seg["start"]), at(mixed, seg["end"])
        assert flex[a + 300:b].max() < 15.0
    assert np.abs(np.diff(flex)).max() < 2.5, "continuous motion"


# -- mounting, sensor errors, determinism ----------------------------------------------

def test_mounting_varies_and_is_a_rotation():
    rng = np.random.default_rng(0)
    mounts = [mounting_matrix(rng) for _ in range(200)]
    for m in mounts:
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(m) == pytest.approx(1.0)
    normals = np.array([m[:, 2] for m in mounts])  # sensor z in body coordinates
    flipped = normals[:, 0] > 0
    assert 20 < flipped.sum() < 80 and np.all(np.abs(normals[:, 0]) > 0.95)
    in_plane = np.degrees(np.arctan2([m[2, 0] for m in mounts], [m[1, 0] for m in mounts]))
    assert np.histogram(in_plane, bins=8, range=(-180, 180))[0].min() > 5
    flip = mounting_matrix(rng, "flipped")
    assert flip[0, 2] > 0.95
    sim = simulate("calibration", 1, mounting="aligned", sensor=SensorModel.ideal())
    np.testing.assert_allclose(sim.up_sensor, [0, 0, 1])


def test_deterministic_and_seed_dependent():
    a = simulate("slouch_short", 21, duration_s=200)
    b = simulate("slouch_short", 21, duration_s=200)
    c = simulate("slouch_short", 22, duration_s=200)
    np.testing.assert_array_equal(a.acc, b.acc)
    np.testing.assert_array_equal(a.gyro, b.gyro)
    assert a.truth == b.truth
    assert not np.allclose(a.acc, c.acc)
    assert a.truth["mounting"] != c.truth["mounting"]


def test_motion_does_not_depend_on_rate_or_accel_only():
    fast = simulate("calibration", 5, rate_hz=200.0)
    slow = simulate("calibration", 5, rate_hz=50.0, accel_only=True)
    np.testing.assert_allclose(fast.flexion_true[::4], slow.flexion_true, atol=1e-9)
    np.testing.assert_allclose(fast.acc_true[::4], slow.acc_true, atol=1e-5)
    assert slow.gyro is None and fast.gyro is not None
    full = simulate("calibration", 5, rate_hz=50.0)
    np.testing.assert_array_equal(full.acc, slow.acc)
    shifted = simulate("calibration", 5, rate_hz=50.0, t0=1000.0)
    assert shifted.t[0] == 1000.0
    assert shifted.truth["slouch_episodes"][0]["onset"] == pytest.approx(
        full.truth["slouch_episodes"][0]["onset"] + 1000.0)
    assert shifted.truth["segments"][1]["start"] == full.truth["segments"][1]["start"] + 1000


def test_sensor_errors_have_the_configured_size():
    ideal = simulate("calibration", 6, sensor=SensorModel.ideal(), duration_s=60)
    real = simulate("calibration", 6, duration_s=60)
    err = real.acc - ideal.acc
    model = SensorModel()
    bias = err.mean(axis=0)
    assert np.all(np.abs(bias) < model.accel_bias_g + 0.025)  # bias + scale × 1 g
    noise = np.diff(err, axis=0).std(axis=0) / np.sqrt(2)
    np.testing.assert_allclose(noise, model.accel_noise_g, rtol=0.1)
    gerr = real.gyro - ideal.gyro
    assert np.all(np.abs(gerr.mean(axis=0)) < model.gyro_bias_dps + 0.8)


def test_duration_cuts_and_extends():
    short = simulate("reaches", 3, duration_s=45.0)
    assert short.truth["duration_s"] == 45.0 and len(short.t) == 4500
    long = simulate("reaches", 3, duration_s=900.0)
    assert len(long.truth["reaches"]) > 2 * len(simulate("reaches", 3).truth["reaches"]) - 2
    with pytest.raises(ValueError, match="unknown scenario"):
        simulate("nope", 1)
    with pytest.raises(ValueError, match="too short"):
        simulate("reaches", 1, duration_s=0.001)
    with pytest.raises(ValueError, match="rotation"):
        simulate("reaches", 1, mounting=np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="jitter"):
        simulate("reaches", 1, jitter_s=-1.0)


def test_motion_sources():
    sim = simulate("calibration", 2, duration_s=30)
    src = sim.motion()
    assert isinstance(src, MotionSource) and isinstance(StaticMotion(), MotionSource)
    acc, gyro = src.sample(sim.t[:50] - sim.t[0])
    np.testing.assert_allclose(acc, sim.acc[:50])
    np.testing.assert_allclose(gyro, sim.gyro[:50])
    mid, _ = src.sample(np.array([0.005]))
    np.testing.assert_allclose(mid[0], (sim.acc[0] + sim.acc[1]) / 2)
    end, _ = src.sample(np.array([1e6]))
    np.testing.assert_allclose(end[0], sim.acc[-1])
    true_acc, _ = sim.motion(sensor_errors=False).sample(np.array([0.0]))
    np.testing.assert_allclose(true_acc[0], sim.acc_true[0], atol=1e-6)
    _, g0 = ArrayMotion(sim.t, sim.acc).sample(np.array([1.0]))
    np.testing.assert_array_equal(g0, 0.0)
    static_acc, static_gyro = StaticMotion((0, 1, 0)).sample(np.arange(3.0))
    assert static_acc.shape == (3, 3) and np.all(static_acc[:, 1] == 1)
    assert np.all(static_gyro == 0)


# -- files and CLI ---------------------------------------------------------------------

def read_rows(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        return list(csv.reader(f))


def test_csv_matches_design_a1(tmp_path):
    sim = simulate("calibration", 4, duration_s=20)
    csv_path, truth_path = sim.write(tmp_path / "day.csv")
    assert truth_path == tmp_path / "day.truth.json"
    rows = read_rows(csv_path)
    assert rows[0] == ["t", "ax", "ay", "az", "gx", "gy", "gz"]
    data = np.array(rows[1:], dtype=float)
    assert len(data) == len(sim.t)
    np.testing.assert_allclose(data[:, 0], sim.t, atol=1e-5)
    np.testing.assert_allclose(data[:, 1:4], sim.acc, atol=1e-6)
    np.testing.assert_allclose(data[:, 4:], sim.gyro, atol=1e-4)
    assert abs(np.linalg.norm(data[100, 1:4]) - 1.0) < 0.07, "g units"
    assert json.loads(truth_path.read_text()) == json.loads(json.dumps(sim.truth))

    acc_only = simulate("calibration", 4, duration_s=20, accel_only=True)
    gz_csv, gz_truth = acc_only.write(tmp_path / "acc.csv.gz")
    assert gz_truth.name == "acc.truth.json"
    rows = read_rows(gz_csv)
    assert rows[0] == ["t", "ax", "ay", "az", "gx", "gy", "gz"]
    assert all(r[4:] == ["", "", ""] for r in rows[1:])
    np.testing.assert_allclose(np.array([r[1:4] for r in rows[1:]], float), acc_only.acc,
                               atol=1e-6)


def test_cli_writes_and_summarises(tmp_path, capsys):
    out = tmp_path / "sub" / "r.csv"
    assert main(["simulate", "--scenario", "reaches", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err    # no folder is made for a file
    out.parent.mkdir()
    assert main(["simulate", "--scenario", "reaches", "--seed", "3", "--out", str(out),
                 "--rate", "50", "--duration", "2m", "--label-delay", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and str(out) in line and "slouch episodes" in line
    truth = json.loads((tmp_path / "sub" / "r.truth.json").read_text())
    assert truth["rate_hz"] == 50.0 and truth["duration_s"] == 120.0
    assert truth["label_params"]["delay_s"] == 1.0
    assert truth == json.loads(json.dumps(simulate("reaches", 3, rate_hz=50.0, duration_s=120,
                                                   labels={"delay_s": 1.0}).truth))
    assert len(read_rows(out)) == 6001

    assert main(["simulate", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in SCENARIOS)

    assert main(["simulate", "--scenario", "nope", "--out", str(out)]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "x.txt")]) == 2
    assert ".csv" in capsys.readouterr().err
    assert main(["simulate", "--scenario", "reaches"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["simulate", "--scenario", "reaches", "--out", str(out), "--force",
                 "--label-threshold", "10", "--label-release", "12"]) == 2
    assert "release_deg" in capsys.readouterr().err


def test_cli_takes_label_defaults_from_config(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[slouch]\nthreshold_deg = 20.0\nrelease_deg = 17.0\n"
                   "[sitting]\nlimit_min = 10.0\n")
    out = tmp_path / "c.csv"
    assert main(["simulate", "--config", str(cfg), "--scenario", "recline",
                 "--duration", "60", "--out", str(out)]) == 0
    params = json.loads((tmp_path / "c.truth.json").read_text())["label_params"]
    assert params["threshold_deg"] == 20.0 and params["sitting_limit_s"] == 600.0


def test_fast_csv_formatting_matches_printf():
    """The vectorised writer prints exactly what "%.Nf" prints (minus signs on zero aside)."""
    import io
    import re

    from spinesense.firmware.csvfast import write_stream

    rng = np.random.default_rng(1)
    n = 3000
    t = np.sort(rng.uniform(0, 200000.0, n))
    acc = rng.normal(0, 1.5, (n, 3)) * rng.choice([1e-7, 1e-3, 1.0, 50.0], (n, 3))
    gyro = rng.normal(0, 100, (n, 3)) * rng.choice([1e-6, 1.0, 10.0], (n, 3))
    acc[:4] = [[0.0, -0.0, 1e-9], [-1e-7, 4.0, -4.0], [0.5, -0.5, 10.25], [9.9999996, -1, 1]]
    buf = io.BytesIO()
    write_stream(buf, t, acc, gyro)
    expected = "".join("%.5f,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f\n" % (ti, *a, *g)  # noqa: UP031
                       for ti, a, g in zip(t, acc, gyro, strict=True))
    expected = re.sub(r"-(0\.0+)(?=[,\n])", r"\1", expected)
    assert buf.getvalue().decode() == "t,ax,ay,az,gx,gy,gz\n" + expected


def test_gaps_drop_samples_and_end_episodes():
    """A gap removes its samples; an episode running into it ends at its start, and one
    that would start inside it starts at the first sample after it (a new crossing)."""
    base = simulate("slouch_short", 4)
    ep = next(e for e in base.truth["slouch_episodes"] if e["end"] - e["alert"] > 20)
    gap_start = ep["alert"] + 5.0
    gapped = simulate("slouch_short", 4, gaps=[(gap_start, 12.0)])
    assert len(gapped.t) == len(base.t) - 1200 == gapped.truth["n_samples"]
    assert gapped.truth["gaps"] == [{"start": gap_start, "end": gap_start + 12.0}]
    dt = np.diff(gapped.t)
    assert dt.max() == pytest.approx(12.01) and np.sum(dt > 0.011) == 1
    ends = [e["end"] for e in gapped.truth["slouch_episodes"]]
    assert gap_start in ends
    after = next(e for e in gapped.truth["slouch_episodes"] if e["onset"] > gap_start)
    assert after["onset"] == pytest.approx(gap_start + 12.0)
    assert after["alert"] == pytest.approx(gap_start + 17.0)
    keep = (base.t < gap_start - 1e-9) | (base.t >= gap_start + 12.0 - 1e-9)
    np.testing.assert_array_equal(gapped.acc, base.acc[keep])
    np.testing.assert_array_equal(gapped.flexion_true, base.flexion_true[keep])
    assert gapped.truth["sitting_bouts"] == base.truth["sitting_bouts"]
    with pytest.raises(ValueError, match="gap"):
        simulate("slouch_short", 4, gaps=[(10.0, 0.0)])


def test_jitter_keeps_time_increasing_and_motion_regular():
    base = simulate("calibration", 3, duration_s=120)
    jittery = simulate("calibration", 3, duration_s=120, jitter_s=0.002)
    offsets = jittery.t - base.t
    assert 0.0015 < offsets.std() < 0.0025 and np.abs(offsets).max() <= 0.004 + 1e-12
    assert np.all(np.diff(jittery.t) > 0)
    np.testing.assert_array_equal(jittery.acc, base.acc)
    for ep, ref in zip(jittery.truth["slouch_episodes"], base.truth["slouch_episodes"],
                       strict=True):
        assert ep["onset"] == pytest.approx(ref["onset"], abs=0.005)
        i = index(jittery, ep["onset"])
        assert jittery.flexion_true[i - 1] <= 15.0 < jittery.flexion_true[i]


def test_cli_gaps_and_jitter(tmp_path, capsys):
    out = tmp_path / "g.csv"
    assert main(["simulate", "--scenario", "recline", "--duration", "3m", "--out", str(out),
                 "--gap", "60:30", "--gap", "0:5s", "--jitter", "1"]) == 0
    truth = json.loads((tmp_path / "g.truth.json").read_text())
    assert truth["gaps"] == [{"start": 0.0, "end": 5.0}, {"start": 60.0, "end": 90.0}]
    assert truth["n_samples"] == 18000 - 3500 == len(read_rows(out)) - 1
    capsys.readouterr()
    with pytest.raises(SystemExit):  # argparse: usage error
        main(["simulate", "--scenario", "recline", "--out", str(out), "--gap", "60"])
    assert "START:LENGTH" in capsys.readouterr().err
    assert main(["simulate", "--scenario", "recline", "--out", str(out),
                 "--jitter", "5"]) == 2
    assert "0.4 sample" in capsys.readouterr().err


def test_standing_desk_slouches_while_standing():
    sim = simulate("standing_desk", 2)
    posture = sim.posture_index()
    episodes = sim.truth["slouch_episodes"]
    assert len(episodes) >= 2
    assert all(posture[index(sim, e["onset"])] == POSTURES.index("standing") for e in episodes)
    assert sim.truth["sitting_alerts"] == [] and len(sim.truth["breaks"]) == 1
    assert {s["posture"] for s in sim.truth["segments"][4:]} <= {"standing", "walking"}


@pytest.mark.parametrize("mounting", ["random", "flipped"])
def test_truth_axes_recover_flexion_from_the_accelerometer(mounting):
    """up_sensor/forward_sensor are what calibration must find: with them, the low-passed
    accelerometer alone gives the true flexion in quasi-static stretches, for any mounting."""
    for seed in range(3):
        sim = simulate("calibration", seed, mounting=mounting)
        forward = np.array(sim.truth["forward_sensor"])
        up = np.array(sim.truth["up_sensor"])
        kernel = np.ones(100) / 100  # 1 s moving average
        smooth = np.column_stack([np.convolve(sim.acc[:, i], kernel, "same") for i in range(3)])
        g = smooth / np.linalg.norm(smooth, axis=1, keepdims=True)
        flex = np.degrees(np.arcsin(np.clip(-g @ forward, -1, 1)))
        for seg in sim.truth["segments"]:
            if seg["activity"] in ("still_upright", "slouch", "recline") \
                    and seg["end"] - seg["start"] > 10:
                a, b = at(sim, seg["start"] + 5), at(sim, seg["end"] - 1)
                err = flex[a:b] - sim.flexion_true[a:b]
                assert np.abs(err).max() < 3.0, (seed, seg)  # bias ≤ 30 mg ≈ 1.7°
        cal = sim.truth["calibration"]
        a, b = index(sim, cal["start"]), index(sim, cal["end"])
        assert np.degrees(np.arccos(np.clip(g[a:b] @ up, -1, 1))).max() < 3.0


def test_relabel_equals_simulating_with_those_labels():
    labels = {"threshold_deg": 20.0, "release_deg": 16.0, "delay_s": 2.0,
              "sitting_limit_s": 900.0, "break_s": 30.0, "repeat_s": 300.0}
    for kwargs in ({}, {"gaps": [(300.0, 20.0)], "jitter_s": 0.001, "t0": 50.0}):
        base = simulate("mixed", 5, duration_s=1500, **kwargs)
        direct = simulate("mixed", 5, duration_s=1500, labels=labels, **kwargs)
        relabelled = base.relabel(**labels)
        assert relabelled == direct.truth
        assert relabelled != base.truth
        assert base.relabel() == base.truth
    with pytest.raises(ValueError, match="valid: threshold_deg"):
        base.relabel(limit=3)


def test_mount_slip_turns_the_sensor_but_not_the_truth():
    still = simulate("calibration", 4, sensor=SensorModel.ideal())
    slipped = simulate("calibration", 4, sensor=SensorModel.ideal(), mount_slip_deg=10.0)
    np.testing.assert_array_equal(slipped.flexion_true, still.flexion_true)
    assert slipped.truth["slouch_episodes"] == still.truth["slouch_episodes"]
    end = np.array(slipped.truth["mounting_end"])
    start = np.array(slipped.truth["mounting"])
    np.testing.assert_allclose(end @ end.T, np.eye(3), atol=1e-8)
    turn = Rotation.from_matrix(start.T @ end)
    assert np.degrees(turn.magnitude()) == pytest.approx(10.0, abs=1e-6)
    assert abs(turn.as_rotvec()[2]) < 1e-9, "slips about an axis in the plane of the back"
    up_body = slipped.orientation().inv().apply([0.0, 0.0, 1.0])
    last = slice(-300, None)  # sitting still at the end
    def angle(a: np.ndarray, b: np.ndarray) -> float:
        cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())

    got = slipped.acc_true[last].astype(float)
    assert angle(got, up_body[last] @ end) < 0.6  # Mᵀ·up, row-wise, with the final mounting
    moved = angle(up_body[last] @ start, up_body[last] @ end)
    assert moved > 2.0 and angle(got, up_body[last] @ start) == pytest.approx(moved, abs=0.6)
    first = slice(0, 300)  # before any movement nothing has slipped yet
    np.testing.assert_allclose(slipped.acc_true[first], still.acc_true[first], atol=1e-6)


def test_cli_count_and_plot(tmp_path, capsys):
    out = tmp_path / "r-{seed}.csv.gz"
    assert main(["simulate", "--scenario", "reaches", "--seed", "5", "--count", "2",
                 "--duration", "40", "--out", str(out), "--plot",
                 str(tmp_path / "r-{seed}.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "seed 5" in lines[0] and "seed 6" in lines[1]
    for seed in (5, 6):
        assert (tmp_path / f"r-{seed}.csv.gz").exists()
        assert (tmp_path / f"r-{seed}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        truth = json.loads((tmp_path / f"r-{seed}.truth.json").read_text())
        assert truth["seed"] == seed
    assert main(["simulate", "--count", "2", "--out", str(tmp_path / "x.csv")]) == 2
    assert "{seed}" in capsys.readouterr().err


def test_knocks_are_brief_accelerations_that_change_no_posture():
    calm = simulate("mixed", 6, knocks_per_h=0.0, sensor=SensorModel.ideal())
    bumpy = simulate("mixed", 6, knocks_per_h=30.0, sensor=SensorModel.ideal())
    assert calm.truth["knocks"] == [] and len(bumpy.truth["knocks"]) >= 15
    np.testing.assert_array_equal(bumpy.flexion_true, calm.flexion_true)
    assert bumpy.truth["slouch_episodes"] == calm.truth["slouch_episodes"]
    assert bumpy.truth["segments"] == calm.truth["segments"]
    cal = calm.truth["calibration"]
    diff = np.linalg.norm(bumpy.acc_true.astype(float) - calm.acc_true, axis=1)
    near = np.zeros(len(diff), bool)
    for knock in bumpy.truth["knocks"]:
        assert not cal["start"] <= knock["t"] <= cal["end"]
        a = at(bumpy, knock["t"])
        near[a:a + 60] = True
        assert 0.25 * knock["peak_g"] < diff[a:a + 60].max() <= knock["peak_g"] + 1e-3
    assert diff[~near].max() < 1e-6, "nothing changes away from the bumps"


def test_breathing_shows_in_the_flexion_at_12_to_18_per_minute(mixed):
    seg = max((s for s in mixed.truth["segments"] if s["activity"] in ("sitting_upright",
                                                                        "typing")),
              key=lambda s: s["end"] - s["start"])
    a, b = at(mixed, seg["start"] + 5), at(mixed, seg["end"] - 2)
    x = mixed.flexion_true[a:b] - mixed.flexion_true[a:b].mean()
    freqs = np.fft.rfftfreq(len(x), 1.0 / mixed.rate_hz)
    power = np.abs(np.fft.rfft(x)) ** 2
    band = (freqs > 0.15) & (freqs < 0.6)
    assert 0.19 <= freqs[band][np.argmax(power[band])] <= 0.31
    assert power[(freqs > 0.18) & (freqs < 0.32)].sum() > 3 * power[(freqs > 0.35)
                                                                  & (freqs < 0.6)].sum()


def test_marginal_leans_hover_around_the_threshold():
    sim = simulate("marginal", 1)
    holds = [s for s in sim.truth["segments"] if s["activity"] == "slouch"]
    above = [s for s in holds if s["target_deg"] > 16.5]
    below = [s for s in holds if s["target_deg"] < 13.5]
    assert above and below
    episodes = sim.truth["slouch_episodes"]
    assert 0 < len(episodes) < len(holds), "some leans alert, some do not"
    for seg in below:  # well below the threshold: never an episode
        assert not any(seg["start"] <= e["onset"] <= seg["end"] for e in episodes)
