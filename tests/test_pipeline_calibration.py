"""Calibration: guided (`spinesense calibrate`, emulated chip), stored and reused, learned
from data, stale after the clip moved, and the no-evidence fallback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from spinesense.cli import main
from spinesense.config import Config
from spinesense.edge.calibration import Calibration, angle_deg
from spinesense.edge.pipeline import Pipeline
from spinesense.edge.replay import replay, summary
from spinesense.firmware.simulator import simulate
from spinesense.samples import SampleChunk


def test_guided_calibration_with_an_emulated_chip(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n')
    code = main(["calibrate", "--config", str(cfg), "--emulate", "mpu6050", "--yes",
                 "--seed", "4"])
    out = capsys.readouterr().out
    assert code == 0 and "Step 1/2" in out and "lean forward" in out
    cal = Calibration.load(tmp_path / "state" / "calibration.json")
    sim = simulate("calibration", 4, duration_s=40.0)
    assert angle_deg(cal.up, sim.up_sensor) < 4.0
    assert angle_deg(cal.forward, -sim.forward_sensor) < 6.0  # where gravity swings
    assert cal.forward_method == "guided lean"


def test_a_stored_calibration_is_used_as_is(tmp_path: Path) -> None:
    sim = simulate("slouch_short", 2, duration_s=300)
    cal = Calibration(sim.up_sensor, -sim.forward_sensor, method="test")
    recs = replay(sim.chunk(), Config(), calibration=cal)
    assert not any(r["type"] == "calibrated" for r in recs)  # nothing to learn, no hold
    assert sum(r["type"] == "slouch_start" for r in recs) == len(sim.truth["slouch_episodes"])


def _on_the_wire(records: list[dict]) -> None:
    """Every new record type passes the collector's validator (the wire contract)."""
    from spinesense.collector.validate import Validator
    from spinesense.schema import encode, kind_of, record_to_message, topic

    validator = Validator()
    for seq, rec in enumerate(records, start=1):
        msg = record_to_message(rec, "alice", seq, lambda t: 1_764_000_000_000 + t * 1000)
        kind = kind_of(rec["type"])
        validator.check(topic("spinesense", "alice", kind), encode(msg))


def _mount_of(sim) -> str:
    """The facing the simulated board really has (its z axis along body −x: back-out)."""
    return "back-out" if sim.mounting[0, 2] < 0 else "back-in"


def _config(mount: str) -> Config:
    cfg = Config()
    cfg.sensor.mount = mount
    return cfg


@pytest.mark.parametrize("seed", [9, 10])
def test_forward_comes_from_the_board_normal_and_the_mount(seed: int) -> None:
    """Set right, the mount gives forward at once (no evidence needed, no hold) and the
    evidence of the day agrees: no warning."""
    sim = simulate("calibration", seed, accel_only=True)
    recs = replay(sim.chunk(), _config(_mount_of(sim)))
    cal = next(r for r in recs if r["type"] == "calibrated")
    assert angle_deg(np.array(cal["up"]), sim.up_sensor) < 5.0
    assert angle_deg(np.array(cal["forward"]), -sim.forward_sensor) < 15.0
    assert cal["facing"] == _mount_of(sim) and cal["confidence"] == "normal"
    assert cal["t"] < 30.0  # locked once upright was known
    assert not any(r["type"] == "mount_warning" for r in recs)


def test_a_wrong_mount_raises_a_warning_and_never_runs_inverted() -> None:
    sim = simulate("mixed", 401, accel_only=True, duration_s=3600)
    wrong = "back-out" if _mount_of(sim) == "back-in" else "back-in"
    recs = replay(sim.chunk(), _config(wrong), states=True)
    warn = [r for r in recs if r["type"] == "mount_warning"]
    assert len(warn) == 1 and warn[0]["agreement"] <= -0.5 and warn[0]["n_evidence"] >= 3
    assert warn[0]["mount"] == wrong and "mounted the other way" in warn[0]["message"]
    _on_the_wire([r for r in recs if r["type"] in ("mount_warning", "calibrated")])
    text = summary(recs)
    assert "MOUNT WARNING" in text and "confidence low" in text
    # from the warning on, slouch is judged either way: the true slouch alerts
    after = [r for r in recs if r["type"] == "slouch_start" and r["t"] > warn[0]["t"]]
    truth = [e for e in sim.truth["slouch_episodes"] if e["alert"] > warn[0]["t"] + 1]
    assert truth and len(after) >= len(truth)


@pytest.mark.parametrize("seed", [9, 10])
def test_auto_mount_judges_either_way_until_the_sign_is_learned(seed: int) -> None:
    sim = simulate("calibration", seed, accel_only=True)
    recs = replay(sim.chunk(), _config("auto"), states=True)
    cals = [r for r in recs if r["type"] == "calibrated"]
    assert cals[0]["signed"] == 0 and cals[0]["confidence"] == "low"
    assert cals[-1]["signed"] == 1 and cals[-1]["facing"] == _mount_of(sim)
    assert angle_deg(np.array(cals[-1]["forward"]), -sim.forward_sensor) < 15.0
    learned = cals[-1]["t"]
    # before the sign is known flexion is unsigned: never inverted
    early = [r["flexion_deg"] for r in recs if r["type"] == "state" and r["t"] < learned]
    assert early and min(early) >= 0.0
    ok = [e for e in sim.truth["slouch_episodes"]]
    starts = [r for r in recs if r["type"] == "slouch_start"]
    assert all(any(abs(s["onset"] - e["onset"]) < 3 for s in starts) for e in ok)


def test_a_first_walk_far_from_upright_reports_a_stale_calibration() -> None:
    sim = simulate("walking", 5, duration_s=600)
    wrong_up = Rotation.from_rotvec(np.radians(30) * np.array([0.0, 1.0, 0.0])).apply(
        sim.up_sensor)
    cal = Calibration(wrong_up, -sim.forward_sensor, method="test")
    recs = replay(sim.chunk(), Config(), calibration=cal)
    stale = [r for r in recs if r["type"] == "calibration_stale"]
    assert len(stale) == 1 and stale[0]["angle_deg"] > 20
    assert stale[0]["reanchored"] == "walking upright"


def test_a_still_wearer_needs_no_forward_evidence() -> None:
    """Upright from the first still stretch; forward from the board normal at once."""
    t = np.arange(0, 120, 0.02)
    acc = np.tile([0.0, 0.6, 0.8], (len(t), 1)) + np.random.default_rng(1).normal(
        0, 0.003, (len(t), 3))
    pipe = Pipeline(Config())
    recs = pipe.process(SampleChunk(t, acc))
    cal = next(r for r in recs if r["type"] == "calibrated")
    assert cal["t"] <= 6.0 and "still" in cal["method"] and cal["confidence"] == "normal"
    assert cal["forward_method"] == "board normal, mount back-out"
    np.testing.assert_allclose(cal["forward"], [0.0, -0.8, 0.6], atol=1e-3)
    recs += pipe.flush()
    assert len([r for r in recs if r["type"] == "metric"]) == 12
    assert not any(r["type"].startswith("slouch") for r in recs)


def test_calibration_wait_limit_releases_held_output() -> None:
    """No still stretch at all: after the wait, the mean direction, said loudly."""
    cfg = Config()
    cfg.pipeline.calibration_wait_s = 60.0
    t = np.arange(0, 300, 0.02)
    acc = np.tile([0.0, 0.6, 0.8], (len(t), 1)) + np.random.default_rng(2).normal(
        0, 0.05, (len(t), 3))
    recs = Pipeline(cfg).process(SampleChunk(t, acc))
    cal = next(r for r in recs if r["type"] == "calibrated")
    assert cal["t"] == pytest.approx(60.0)  # released without waiting for the end
    assert cal["confidence"] == "low" and "no still stretch" in cal["method"]


def test_no_calibration_and_no_auto_calibrate_is_refused() -> None:
    cfg = Config()
    cfg.pipeline.auto_calibrate = False
    with pytest.raises(ValueError, match="spinesense calibrate"):
        Pipeline(cfg)


def test_replay_with_a_stored_calibration_file(tmp_path: Path, capsys) -> None:
    sim = simulate("slouch_short", 6, duration_s=240)
    path = tmp_path / "r.csv"
    sim.write(path)
    calp = tmp_path / "cal.json"
    Calibration(sim.up_sensor, -sim.forward_sensor, method="test").save(calp)
    assert main(["replay", str(path), "--calibration", str(calp), "--jsonl"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sum(r["type"] == "slouch_start" for r in recs) == len(sim.truth["slouch_episodes"])
    calp.write_text("{}")
    assert main(["replay", str(path), "--calibration", str(calp)]) == 2
    assert "not a calibration record" in capsys.readouterr().err


def test_evaluate_prints_the_table(capsys) -> None:
    code = main(["evaluate", "--scenario", "calibration", "--seeds", "1", "--accel-only"])
    out = capsys.readouterr().out
    assert code == 0 and "ep_F1" in out and "calibration" in out and "walking" in out


def test_live_commands_snooze_thresholds_recalibrate() -> None:
    sim = simulate("sitting_long", 3, duration_s=2700)
    cal = Calibration(sim.up_sensor, -sim.forward_sensor, method="test")
    chunk = sim.chunk()
    cut = int(np.searchsorted(sim.t, 1750.0))
    pipe = Pipeline(Config(), cal)
    recs = pipe.process(chunk[:cut])
    pipe.snooze(10)  # 10 minutes from t=1750: the 30-min alert waits until 2350
    pipe.set_thresholds(threshold_deg=60.0, release_deg=55.0)  # no more slouch alerts
    recs += pipe.process(chunk[cut:]) + pipe.flush()
    snoozed = next(r for r in recs if r["type"] == "snoozed")
    assert snoozed["until"] == pytest.approx(1750.0 + 600.0, abs=0.1)
    alert = next(r for r in recs if r["type"] == "sitting_alert")
    assert alert["t"] == pytest.approx(snoozed["until"], abs=1.0)
    assert not any(r["type"] == "slouch_start" and r["t"] > 1751 for r in recs)
    with pytest.raises(ValueError, match="below"):
        pipe.set_thresholds(release_deg=70.0)
    pipe2 = Pipeline(Config(), cal)
    pipe2.process(chunk[:cut])
    pipe2.recalibrate()
    recs2 = pipe2.process(chunk[cut:]) + pipe2.flush()
    assert pipe2.calibration is not None
    assert any(r["type"] == "calibrated" and r["t"] > 1750 for r in recs2)


def test_window_upright_with_a_stored_forward_axis() -> None:
    sim = simulate("slouch_short", 8, duration_s=300)
    stored = Calibration(sim.up_sensor, -sim.forward_sensor, method="test")
    recs = replay(sim.chunk(), Config(), calibrate=(2.0, 15.0), calibration=stored)
    cal = next(r for r in recs if r["type"] == "calibrated")
    assert cal["t"] == pytest.approx(16.0) and "stored calibration" in cal["forward_method"]
    assert angle_deg(np.array(cal["forward"]), -sim.forward_sensor) < 3.0
