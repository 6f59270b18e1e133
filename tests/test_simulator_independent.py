"""The independent simulator (firmware.worldsim): physics, mounting, slips, timestamps,
truth, determinism and the `spinesense simulate --model independent` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from spinesense.cli import main
from spinesense.edge.replay import replay
from spinesense.firmware.worldsim import DAY_TYPES, simulate_world

SHORT = {"minutes": 20.0}


@pytest.fixture(scope="module")
def office() -> object:
    return simulate_world("office", 3, rate_hz=100.0, stamps="clean", slip=False,
                          accel_only=False, ideal_sensor=True, **SHORT)


def _gravity(sim) -> np.ndarray:
    sos = butter(2, 0.3 / (sim.rate_hz / 2), output="sos")
    g = sosfiltfilt(sos, sim.acc, axis=0)
    return g / np.linalg.norm(g, axis=1)[:, None]


def test_still_upright_reads_one_g_along_the_true_up(office) -> None:
    cal = office.truth["calibration"]
    sel = (office.t >= cal["start"]) & (office.t <= cal["end"])
    mean = office.acc[sel].mean(axis=0)
    assert abs(np.linalg.norm(mean) - 1.0) < 0.01
    up = np.array(office.truth["up_sensor"])
    assert np.degrees(np.arccos(mean @ up / np.linalg.norm(mean))) < 2.0


@pytest.mark.parametrize("facing", ["back-out", "back-in"])
def test_truth_axes_recover_the_flexion_for_both_facings(facing: str) -> None:
    """Gravity read through the truth's forward axis gives the true flexion: the labels
    describe what the sensor saw (noise, bias and scale error on)."""
    sim = simulate_world("office", 5, rate_hz=50.0, facing=facing, stamps="clean",
                         slip=False, **SHORT)
    fw = np.array(sim.truth["forward_sensor"])
    flex = np.degrees(np.arcsin(np.clip(-(_gravity(sim) @ fw), -1, 1)))
    quiet = np.isin(sim.posture, (0, 1))
    err = np.abs(flex[quiet] - sim.flexion_true[quiet])
    assert np.median(err) < 2.5 and np.percentile(err, 90) < 5.0
    # DESIGN A3: with back-out, forward is the projection of −z; with back-in, of +z
    z_sign = -1.0 if facing == "back-out" else 1.0
    assert z_sign * fw[2] > np.cos(np.radians(31.0))
    assert sim.truth["mount_tilt_deg"] <= 30.0 + 1e-9


def test_slip_turns_the_board_and_leaves_the_truth_alone() -> None:
    a = simulate_world("office", 8, rate_hz=50.0, slip=True, stamps="clean", **SHORT)
    b = simulate_world("office", 8, rate_hz=50.0, slip=False, stamps="clean", **SHORT)
    slip = a.truth["slips"][0]
    assert 5.0 <= slip["angle_deg"] <= 40.0 and not b.truth["slips"]
    m0, m1 = np.array(a.truth["mounting"]), np.array(a.truth["mounting_end"])
    turned = np.degrees(np.arccos(np.clip((np.trace(m0.T @ m1) - 1) / 2, -1, 1)))
    assert turned == pytest.approx(slip["angle_deg"], abs=0.01)
    np.testing.assert_array_equal(a.flexion_true, b.flexion_true)
    assert a.truth["slouch_episodes"] == b.truth["slouch_episodes"]
    before = a.t < slip["t"]
    np.testing.assert_allclose(a.acc_true[before], b.acc_true[before], atol=1e-6)
    after = a.t > slip["end"] + 1.0
    assert np.abs(a.acc_true[after] - b.acc_true[after]).max() > 0.05


def test_logger_stamps_tick_and_repeat() -> None:
    sim = simulate_world("walker", 2, rate_hz=100.0, stamps="logger", **SHORT)
    dt = np.diff(sim.t)
    assert (dt >= 0).all()
    assert (dt == 0).mean() > 0.3  # repeated stamps
    steps = dt[dt > 0]
    assert steps.min() > 0.009 and np.median(steps) < 0.045
    assert abs(sim.t[-1] - sim.t[0] - sim.truth["duration_s"]) < 30.0


def test_slow_walking_is_fainter_than_brisk_walking() -> None:
    """Accelerations come from displacements: a slow gait really is faint (unlike a
    model with fixed acceleration amplitudes)."""
    from spinesense.firmware.worldsim_actor import GaitBout
    from spinesense.firmware.worldsim_gait import render_gait

    t = np.arange(0.0, 60.0, 0.01)
    heading = np.zeros_like(t)
    amp = {}
    for spm in (60.0, 120.0):
        rms = []
        for seed in range(6):
            g = render_gait([GaitBout(5.0, 55.0, spm / 60.0, "level")], t, heading,
                            np.random.default_rng(seed))
            z = g["pos"][:, 2]
            acc = np.gradient(np.gradient(z)) / 0.01 ** 2 / 9.81
            rms.append(acc[1000:5000].std())
        amp[spm] = np.median(rms)
    assert amp[120.0] > 2.0 * amp[60.0]
    assert amp[60.0] > 0.02


def test_same_seed_same_day_and_all_day_types_label() -> None:
    a = simulate_world("creep", 4, **SHORT)
    b = simulate_world("creep", 4, **SHORT)
    np.testing.assert_array_equal(a.acc, b.acc)
    np.testing.assert_array_equal(a.t, b.t)
    c = simulate_world("creep", 5, **SHORT)
    assert len(c.t) != len(a.t) or not np.array_equal(c.acc, a.acc)
    for day in DAY_TYPES:
        sim = simulate_world(day, 1, minutes=max(20.0, DAY_TYPES[day].minutes[0]),
                             rate_hz=25.0)
        tr = sim.truth
        assert tr["segments"][0]["start"] == pytest.approx(tr["t0"])
        ends = [s["end"] for s in tr["segments"]]
        starts = [s["start"] for s in tr["segments"][1:]]
        np.testing.assert_allclose(ends[:-1], starts, atol=1e-3)
        assert tr["calibration"]["end"] > tr["calibration"]["start"]
        json.dumps(tr)


def test_recline_start_day_has_no_stand_up_for_an_hour() -> None:
    sim = simulate_world("recline_start", 2, rate_hz=25.0)
    segs = sim.truth["segments"]
    t0 = sim.truth["t0"]
    assert segs[0]["activity"] == "recline"
    assert all(s["posture"] in ("sitting", "lying") for s in segs if s["start"] - t0 < 3600)
    assert sim.truth["sitting_alerts"]


def test_cli_writes_a_day_that_replay_reads(tmp_path, capsys) -> None:
    out = tmp_path / "day.csv"
    rc = main(["simulate", "--model", "independent", "--scenario", "walker", "--seed", "3",
               "--duration", "20m", "--rate", "50", "--accel-only", "--stamps", "clean",
               "--out", str(out)])
    assert rc == 0
    line = capsys.readouterr().out
    assert "independent walker seed 3" in line and "accel only" in line
    header = out.read_text().splitlines()[:2]
    assert header[0] == "t,ax,ay,az,gx,gy,gz" and header[1].endswith(",,,")
    truth = json.loads((tmp_path / "day.truth.json").read_text())
    assert truth["model"] == "independent" and truth["stamps"] == "clean"
    records = replay(out, states=True)
    assert any(r["type"] == "state" for r in records)


def test_cli_rejects_unknown_day_and_scripted_options(tmp_path, capsys) -> None:
    assert main(["simulate", "--model", "independent", "--scenario", "nap", "--out",
                 str(tmp_path / "x.csv")]) == 2
    assert "unknown day type 'nap'" in capsys.readouterr().err
    assert main(["simulate", "--model", "independent", "--jitter", "2", "--out",
                 str(tmp_path / "x.csv")]) == 2
    assert "--stamps" in capsys.readouterr().err
    assert main(["simulate", "--model", "independent", "--list"]) == 0
    assert "recline_start" in capsys.readouterr().out


def test_gyro_is_the_rate_of_the_boards_orientation(office) -> None:
    """Integrating the gyro over a second reproduces the board's rotation (from the
    truth's trunk angles and mounting), to within 10 % of the turn (the chip's low-pass
    lags)."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_euler("ZYX", office.euler_deg, degrees=True) \
        * Rotation.from_matrix(office.mounting)
    rate = office.rate_hz
    errors = []
    for start in range(1000, len(office.t) - 200, 197):
        sl = slice(start, start + int(rate))
        step = Rotation.identity()
        for w in office.gyro[sl]:
            step = step * Rotation.from_rotvec(np.radians(w) / rate)
        truth = rot[start].inv() * rot[start + int(rate)]
        if np.degrees(truth.magnitude()) > 2.0:  # seconds that really turn
            errors.append((truth.inv() * step).magnitude() / truth.magnitude())
    assert len(errors) > 20 and np.median(errors) < 0.1


def test_gaps_drop_samples_and_block_slouch_truth() -> None:
    sim = simulate_world("office", 3, gaps=True, minutes=30.0, rate_hz=50.0, stamps="clean")
    gaps = sim.truth["gaps"]
    assert 1 <= len(gaps) <= 3 and sim.truth["n_samples"] == len(sim.t)
    for g in gaps:
        assert not ((sim.t > g["start"] + 0.05) & (sim.t < g["end"] - 0.05)).any()
        for ep in sim.truth["slouch_episodes"]:
            assert not (ep["onset"] < g["start"] + 0.05 < ep["end"] - 0.05)


def test_rate_switch_changes_the_sample_rate_mid_file() -> None:
    base = simulate_world("office", 9, minutes=20.0, rate_hz=50.0, stamps="clean",
                          rate_switch=False)
    sim = simulate_world("office", 9, minutes=20.0, rate_hz=50.0, stamps="clean",
                         rate_switch=True)
    change = sim.truth["rate_changes"][0]
    dt = np.diff(sim.t)
    before, after = sim.t[1:] < change["t"] - 0.5, sim.t[1:] > change["t"] + 0.5
    assert np.median(dt[before]) == pytest.approx(1 / 50.0, rel=0.02)
    assert np.median(dt[after]) == pytest.approx(1 / change["rate_hz"], rel=0.02)
    assert not base.truth["rate_changes"]
    # the switch has its own random stream: the day itself is the same
    assert sim.truth["segments"] == base.truth["segments"]
