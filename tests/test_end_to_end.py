"""End to end on real servers: emulated sensor → edge → Mosquitto → collector → InfluxDB.

An independent MQTT subscriber witnesses what the edge published; InfluxDB must then hold
exactly those events and metrics, counted by their per-device sequence numbers: one lost
or duplicated point fails the test.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mqtt_witness import Witness

from spinesense.devservers import InfluxD, Mosquitto

EXE = [sys.executable, "-m", "spinesense"]


def _config(path: Path, device: str, mqtt_port: int, influx: InfluxD, db: str) -> Path:
    path.write_text(f"""[device]
id = "{device}"
state_dir = "{path.parent / 'state'}"
[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
[influx]
api = "v1"
url = "{influx.url}"
database = "{db}"
[collector]
group = ""
client_id = "collector-{device}"
flush_interval_s = 0.1
dead_letter_file = "{path.parent / 'dead.jsonl'}"
""")
    return path


def _influx_seqs(influx: InfluxD, db: str, measurement: str, device: str) -> list[int]:
    rows = influx.rows(f"SELECT seq FROM {measurement} WHERE \"device\" = '{device}' "
                       "AND time > 0 AND time < now() + 3650d", db)
    return sorted(int(r["seq"]) for r in rows)


def test_edge_events_arrive_in_influxdb_exactly_once(
        tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxD, unique_db: str,
        unique_device: str) -> None:
    cfg = _config(tmp_path / "c.toml", unique_device, mosquitto.port, influxd, unique_db)
    witness = Witness(mosquitto.port, unique_device)
    log = (tmp_path / "collector.log").open("wb")
    collector = subprocess.Popen([*EXE, "collector", "run", "-c", str(cfg)],
                                 stdout=subprocess.DEVNULL, stderr=log)
    try:
        edge = subprocess.run(
            [*EXE, "edge", "run", "-c", str(cfg), "--emulate", "lsm6dsox", "--scenario", "mixed",
             "--seed", "3", "--speed", "400", "--duration", "40m"],
            capture_output=True, text=True, timeout=240)
        assert edge.returncode == 0, edge.stderr[-3000:]
        time.sleep(0.5)  # the witness's last deliveries
        events, metrics = witness.seqs("events"), witness.seqs("metrics")
        # the edge lost nothing: one contiguous sequence shared by events and metrics
        assert len(events) > 5 and len(metrics) > 100
        everything = sorted(events + metrics)
        assert everything == list(range(everything[0], everything[0] + len(everything)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stored = _influx_seqs(influxd, unique_db, "posture_event", unique_device)
            if len(stored) >= len(events):
                break
            time.sleep(0.25)
        time.sleep(1.0)  # a late duplicate would show up here
        assert _influx_seqs(influxd, unique_db, "posture_event", unique_device) == events
        assert _influx_seqs(influxd, unique_db, "posture", unique_device) == metrics
        types = {m["type"] for m in witness.sequenced() if m["type"] != "metric"}
        assert "slouch_start" in types and "slouch_end" in types
        assert collector.poll() is None, "the collector died"
    finally:
        witness.close()
        collector.terminate()
        collector.wait(20)
