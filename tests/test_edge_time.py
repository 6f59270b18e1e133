"""The live loop's time handling, in process: unsynced stamps are flagged, then fixed."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np

from spinesense import schema
from spinesense.config import Config
from spinesense.devservers import Mosquitto, free_port
from spinesense.edge.calibration import Calibration
from spinesense.edge.clock import WallClock, detect_sync
from spinesense.edge.service import EdgeService


def _rows(svc: EdgeService) -> list[dict]:
    return [json.loads(p) for _, _, p in svc.spool.fetch(0, 100_000)]


def test_stamps_before_clock_sync_are_flagged_then_restamped(tmp_path: Path) -> None:
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.port = free_port()  # nobody listens: everything stays spooled
    cfg.pipeline.calibration_wait_s = 10.0
    svc = EdgeService(cfg, emulate="mpu6050", scenario="slouch_short", seed=1, speed=1000,
                      duration_s=600)
    synced = {"now": False}
    wall = {"offset": 3600.0}  # the Pi booted thinking it is 1970-01-01T01:00
    svc.clock = WallClock(svc.mono, lambda: wall["offset"] + svc.mono(),
                          lambda: (synced["now"], "test"), recheck_s=5.0)
    try:
        for _ in range(4 * 200):  # 200 s of data
            svc.tick()
        before = _rows(svc)
        assert len(before) >= 10
        assert all(m["synced"] is False and m["ts"] < 10**10 for m in before)
        # NTP steps the clock; the next check notices and re-stamps the spool
        synced["now"] = True
        wall["offset"] = 1_750_000_000.0
        for _ in range(4 * 100):
            svc.tick()
        after = _rows(svc)
        assert len(after) > len(before)
        assert all("synced" not in m for m in after)
        old = {m["seq"]: m for m in before}
        for m in after:
            if m["seq"] in old:  # same message, moved by exactly the clock step
                shift = round((1_750_000_000.0 - 3600.0) * 1000)
                assert abs(m["ts"] - old[m["seq"]]["ts"] - shift) <= 1
                assert m["data"] == {k: v + shift if k in schema.TIME_KEYS else v
                                     for k, v in old[m["seq"]]["data"].items()}
        metrics = [m for m in after if m["type"] == "metric"]
        gaps = {b["ts"] - a["ts"] for a, b in itertools.pairwise(metrics)}
        assert gaps == {10_000}  # one metric per 10 s, continuous across the re-stamp
        assert svc.status()["clock_synced"] is True
    finally:
        svc.spool.close()
        svc.reader.close()


def test_real_time_loop_on_an_smbus_stand_in(tmp_path: Path, mosquitto: Mosquitto,
                                             unique_device: str) -> None:
    """The hardware code path: monotonic clock, real pacing, wall clock from the system."""
    from spinesense.firmware.emulated_chips import make_chip
    from spinesense.firmware.emulator import EmulatedBus
    from spinesense.firmware.motion import StaticMotion

    cfg = Config()
    cfg.device.id = unique_device
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.host, cfg.mqtt.port = "127.0.0.1", mosquitto.port
    cfg.spool.delete_on = "puback"  # no collector here: nothing would confirm storage
    born = time.monotonic()  # the chip samples from here on, at its 100 Hz
    bus = EmulatedBus(1)  # time.monotonic, like the real bus
    bus.attach(make_chip("mpu6050", StaticMotion()))
    svc = EdgeService(cfg, duration_s=3.0, bus=bus)
    assert isinstance(svc.clock, WallClock)  # the system clock, trusted once synced
    assert svc.clock.synced == detect_sync()[0]
    t0 = time.monotonic()
    assert svc.run() == 0
    elapsed = time.monotonic() - t0
    assert 3.0 <= elapsed < 8.0
    samples = svc.reader.stats.samples
    # real time, not accelerated: no more samples than the chip's rate allows since it
    # was made (a loaded machine starts the service later, with a fuller FIFO)
    assert 2.5 * 100 <= samples <= 1.05 * 100 * (time.monotonic() - born)
    assert svc.sensor_state == "ok"


def test_recalibrate_command_saves_the_new_calibration(tmp_path: Path) -> None:
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.port = free_port()
    cfg.pipeline.calibration_wait_s = 30.0
    svc = EdgeService(cfg, emulate="mpu6050", scenario="mixed", seed=4, speed=1000,
                      duration_s=3600)
    path = tmp_path / "calibration.json"
    try:
        for _ in range(4 * 300):
            svc.tick()
        assert svc.pipeline.calibration is not None  # learned by itself...
        assert not path.exists()  # ...and not saved: the next session may sit differently
        svc.publisher.commands.put((b'{"cmd": "recalibrate"}', False))
        ticks = 0
        while not path.exists() and ticks < 4 * 1800:
            svc.tick()
            ticks += 1
        assert path.exists(), "no calibration saved within 30 min after recalibrate"
        saved = Calibration.load(path)
        assert saved.complete
        assert np.allclose(saved.up, svc.pipeline.calibration.up)
    finally:
        svc.spool.close()
        svc.reader.close()
