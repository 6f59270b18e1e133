"""The live loop in process: alerts reach the vibration motor (gpiozero mock pins)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from spinesense.config import Config
from spinesense.devservers import free_port
from spinesense.edge.service import EdgeService


def test_slouch_alerts_buzz_the_motor(tmp_path: Path) -> None:
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.port = free_port()
    cfg.haptics.enabled, cfg.haptics.pin = True, 23
    cfg.pipeline.calibration_wait_s = 30.0
    factory = MockFactory()
    svc = EdgeService(cfg, emulate="mpu6050", scenario="slouch_short", seed=1, speed=1000,
                      duration_s=720, pin_factory=factory)
    pin = factory.pin(23)
    try:
        spooled = []
        for _ in range(4 * 720):
            before = svc.spool.next_seq
            svc.tick()
            if svc.spool.next_seq > before:
                rows = svc.spool.fetch(before - 1, 1000)
                spooled += [p for _, k, p in rows if k == "events"]
            if svc.haptics.played:
                break
        assert svc.haptics.played == 1
        assert any(b'"slouch_start"' in p for p in spooled)
        time.sleep(1.2)  # the pattern plays in gpiozero's thread
        ons = [s for s in pin.states[1:] if s.state]
        assert len(ons) == 3  # the slouch pattern: three taps
    finally:
        svc.haptics.close()
        svc.spool.close()
        svc.reader.close()


def test_haptics_without_gpio_is_an_error_not_a_crash(tmp_path: Path, caplog,
                                                      monkeypatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "nonexistent")
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.port = free_port()
    cfg.haptics.enabled = True
    svc = EdgeService(cfg, emulate="mpu6050", speed=1000, duration_s=10)
    try:
        assert svc.haptics is None
        assert "haptics disabled" in caplog.text
        svc.tick()
    finally:
        svc.spool.close()
        svc.reader.close()


def test_accelerated_runs_end_at_the_real_end(tmp_path: Path) -> None:
    """A simulated span is stamped so it ends when the run really ends: in the past."""
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.port = free_port()
    now_ms = time.time() * 1000
    svc = EdgeService(cfg, emulate="mpu6050", scenario="slouch_short", seed=1, speed=100)
    try:
        assert svc.duration_s == 720  # the scenario's length
        real_end = now_ms + 720 / 100 * 1000
        assert abs(svc.clock.to_ms(720.0) - real_end) < 3000
        assert abs(svc.clock.to_ms(0.0) - (real_end - 720_000)) < 3000
    finally:
        svc.spool.close()
        svc.reader.close()


_FOOTPRINT = """
import sys
from spinesense.cli import main
sys.argv = ["spinesense", "edge", "run", "-c", sys.argv[1], "--emulate", "mpu6050",
            "--duration", "20", "--speed", "20", "--drain-timeout", "0"]
rc = main()
print("matplotlib" in sys.modules, "tqdm" in sys.modules, rc)
"""


def test_edge_run_stays_lean(tmp_path: Path) -> None:
    """The Pi process never loads the plotting or tuning stack."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path}"\n[mqtt]\nport = {free_port()}\n')
    res = subprocess.run([sys.executable, "-c", _FOOTPRINT, str(cfg)], capture_output=True,
                         text=True, timeout=120)
    assert res.stdout.split() == ["False", "False", "3"], res.stderr[-2000:]


def test_sensor_faults_become_events_health_and_status(tmp_path: Path) -> None:
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.port = free_port()
    cfg.pipeline.calibration_wait_s = 30.0
    svc = EdgeService(cfg, emulate="mpu6050", scenario="mixed", seed=3, speed=1000,
                      duration_s=1200, faults="disconnect@700+5,eio@900x3,overflow@1000")
    states = set()
    try:
        for _ in range(4 * 1100):
            svc.tick()
            states.add(svc.sensor_state)
        svc.emit(svc.pipeline.flush(), [])
        msgs = [json.loads(p) for _, _, p in svc.spool.fetch(0, 100_000)]
    finally:
        svc.spool.close()
        svc.reader.close()
    events = {m["type"]: m for m in msgs if m["type"] != "metric"}
    assert {"sensor_lost", "sensor_back", "gap", "fifo_overflow"} <= set(events)
    assert states == {"ok", "lost"}
    assert 4.0 <= events["sensor_back"]["data"]["down_s"] <= 6.5
    metrics = [m for m in msgs if m["type"] == "metric"]
    t0 = metrics[0]["ts"] - 10_000 * round(metrics[0]["data"]["interval_s"] / 10)

    def health(at_s: float) -> dict:
        """The metric whose interval covers virtual second ``at_s``."""
        return next(m["data"] for m in metrics if m["ts"] - t0 > at_s * 1000)

    during = health(702)  # the pipeline's interval skips the hole; health reports it
    assert during["interval_s"] < 10 and 95 < during["sample_rate_hz"] < 106
    assert 5.0 <= during["gap_s"] < 6.0 and during["i2c_errors"] > 0
    assert health(900.5)["i2c_errors"] >= 3
    assert health(600)["gap_s"] == 0 and 95 < health(600)["sample_rate_hz"] < 106
    assert sum(m["data"]["gap_s"] for m in metrics) < 12  # only the injected holes
