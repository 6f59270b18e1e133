"""The contract between the stages: every record the pipeline emits survives the wire.

Pipeline records → record_to_message (edge) → JSON → Validator (collector) →
message_to_line: nothing the edge publishes may be dead-lettered by the collector.
"""

from __future__ import annotations

import json
import tempfile

from spinesense.collector.points import message_to_line
from spinesense.collector.validate import Validator
from spinesense.config import Config
from spinesense.edge.replay import replay
from spinesense.firmware.simulator import simulate
from spinesense.schema import encode, kind_of, record_to_message, topic


def test_every_published_record_is_accepted_and_storable() -> None:
    sim = simulate("mixed", 5, duration_s=1800)
    records = [r for r in replay(sim.chunk(), Config()) if r["type"] != "state"]
    types = {r["type"] for r in records}
    assert {"calibrated", "metric", "slouch_start", "slouch_end"} <= types
    validator = Validator()
    base_ms = 1_764_000_000_000
    for seq, rec in enumerate(records, start=1):
        msg = record_to_message(rec, "alice", seq, lambda t: base_ms + t * 1000)
        kind = kind_of(rec["type"])
        _, _, checked = validator.check(topic("spinesense", "alice", kind), encode(msg))
        line = message_to_line(kind, checked)
        assert f"seq={seq}i" in line
        # times inside data are UTC milliseconds on the wire, not pipeline seconds
        for key in ("onset", "bout_start", "bout_end"):
            if key in msg["data"]:
                assert msg["data"][key] > base_ms


def test_vectors_are_flattened_into_scalar_fields() -> None:
    msg = record_to_message({"type": "calibrated", "t": 1.0, "up": [0.0, 0.6, 0.8],
                             "method": "window"}, "bob", 1, lambda t: t * 1000)
    assert msg["data"] == {"up_x": 0.0, "up_y": 0.6, "up_z": 0.8, "method": "window"}
    assert json.loads(encode(msg))["ts"] == 1000


def test_numpy_scalars_and_missing_values_become_plain_json() -> None:
    import numpy as np
    msg = record_to_message({"type": "metric", "t": 2.0, "flexion_mean": np.float64(3.5),
                             "steps": np.int64(4), "cadence_spm": float("nan"),
                             "up": np.array([0.0, 0.0, 1.0])}, "bob", 2, lambda t: t * 1000)
    assert msg["data"] == {"flexion_mean": 3.5, "steps": 4, "up_x": 0.0, "up_y": 0.0,
                           "up_z": 1.0}
    assert type(msg["data"]["steps"]) is int
    encode(msg)  # would raise on NaN


def _accepted(kind: str, msg: dict) -> str:
    _, _, checked = Validator().check(topic("spinesense", msg["device"], kind), encode(msg))
    return message_to_line(kind, checked)


def test_sensor_events_from_a_faulty_bus_are_accepted() -> None:
    """The reader's own records (sensor_lost/back, fifo_overflow, gap with its reason),
    from an emulated chip with injected faults, pass the declared types."""
    from spinesense.config import SensorConfig
    from spinesense.firmware.reader import open_sensor

    now = [1000.0]
    reader = open_sensor(SensorConfig(), emulate="mpu6050", clock=lambda: now[0],
                         faults="eio@5x40,disconnect@10+3,overflow@20")
    events = []
    for _ in range(120):
        now[0] += 0.25
        events += reader.poll()[1]
    assert {"sensor_lost", "sensor_back", "fifo_overflow", "gap"} <= {e["type"] for e in events}
    base_ms = 1_764_000_000_000
    for seq, rec in enumerate(events, start=1):
        msg = record_to_message(rec, "alice", seq, lambda t: base_ms + t * 1000)
        assert f"seq={seq}i" in _accepted("events", msg)


def test_command_replies_and_status_are_accepted() -> None:
    """Every command reply (edge/commands.py) is a storable status-topic record."""
    from spinesense.edge.commands import CommandHandler
    from spinesense.schema import make_message

    class Target:
        def snooze(self, minutes: float) -> None: ...
        def recalibrate(self) -> None: ...
        def set_thresholds(self, **kwargs: float) -> None: ...

    status = {"state": "online", "version": "0.1.0", "sensor": "ok", "chip": "mpu6050",
              "rate_hz": 100.0, "spool_backlog": 0, "dropped_events": 0,
              "clock_synced": True, "uptime_s": 12.5, "commands_ok": 1,
              "commands_refused": 0}
    with tempfile.TemporaryDirectory() as state_dir:
        cfg = Config()
        cfg.device.state_dir = state_dir
        handler = CommandHandler(cfg, Target(), lambda: dict(status))
        payloads = [b'{"cmd":"status","id":7}', b'{"cmd":"snooze","minutes":5,"id":"a"}',
                    b'{"cmd":"recalibrate"}', b'{"cmd":"set_thresholds","slouch":'
                    b'{"threshold_deg":18}}', b'{"cmd":"nope"}', b"not json",
                    b'{"cmd":"snooze","minutes":-1}']
        ts = 1_764_000_000_000
        lines = [_accepted("status", make_message("alice", 0, ts, "status", status))]
        for i, payload in enumerate(payloads, start=1):
            type_, data = handler.handle(payload)
            lines.append(_accepted("status", make_message("alice", 0, ts + i, type_, data)))
    assert any(",type=cmd_error " in line for line in lines)
    assert any('id="7"' in line for line in lines)  # an integer id is stored as text


def test_mount_clip_and_dropped_sample_records_are_accepted() -> None:
    """The calibration's own records (a wrong mount's warning and the re-issued
    calibrations, a moved clip, samples dropped at the input) pass the declared types."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    from spinesense.edge.calibration import Calibration
    from spinesense.samples import SampleChunk

    records = []
    sim = simulate("mixed", 401, accel_only=True, duration_s=3600)
    wrong = "back-in" if sim.mounting[0, 2] < 0 else "back-out"
    cfg = Config()
    cfg.sensor.mount = wrong
    records += replay(sim.chunk(), cfg)
    walk = simulate("walking", 5, duration_s=600)
    # a clip slip turns the board about (nearly) its normal, its z axis
    moved = Rotation.from_rotvec(np.radians(35) * np.array([0.1, -0.1, 1.0])
                                 / np.sqrt(1.02)).as_matrix()
    acc, gyro = walk.acc.copy(), walk.gyro.copy()
    acc[walk.t > 300] = acc[walk.t > 300] @ moved.T
    gyro[walk.t > 300] = gyro[walk.t > 300] @ moved.T
    acc[1000:1010] = np.nan  # dropped at the input, and counted
    cal = Calibration(walk.up_sensor, -walk.forward_sensor, method="test")
    records += replay(SampleChunk(walk.t, acc, gyro), Config(), calibration=cal)
    types = {r["type"] for r in records}
    assert {"mount_warning", "clip_moved", "samples_dropped", "calibrated"} <= types, types
    base_ms = 1_764_000_000_000
    for seq, rec in enumerate(records, start=1):
        if rec["type"] == "state":
            continue
        msg = record_to_message(rec, "alice", seq, lambda t: base_ms + t * 1000)
        _accepted(kind_of(rec["type"]), msg)
