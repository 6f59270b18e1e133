"""End to end on real servers: emulated sensor → edge → Mosquitto → collector → InfluxDB.

An independent MQTT subscriber witnesses what the edge published; InfluxDB must then hold
exactly those events and metrics, counted by their per-device sequence numbers: one lost
or duplicated point fails the test.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from collector_harness import CollectorProc
from mqtt_witness import Witness

from spinesense.devservers import InfluxD, Mosquitto

EXE = [sys.executable, "-m", "spinesense"]
PATIENCE = 180.0  # bounds waits that normally take a second; CI shares two loaded cores


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


def _wait(cond) -> bool:
    deadline = time.monotonic() + PATIENCE
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def test_edge_events_arrive_in_influxdb_exactly_once(
        tmp_path: Path, mosquitto: Mosquitto, influxd: InfluxD, unique_db: str,
        unique_device: str) -> None:
    cfg = _config(tmp_path / "c.toml", unique_device, mosquitto.port, influxd, unique_db)
    witness = Witness(mosquitto.port, unique_device)
    # subscribed before the edge starts: what it publishes first is not left to re-sends
    collector = CollectorProc(cfg, "e2e", tmp_path).start(timeout=PATIENCE)
    try:
        edge = subprocess.run(
            [*EXE, "edge", "run", "-c", str(cfg), "--emulate", "lsm6dsox", "--scenario", "mixed",
             "--seed", "3", "--speed", "400", "--duration", "40m"],
            capture_output=True, text=True, timeout=PATIENCE * 3)
        assert edge.returncode == 0, edge.stderr[-3000:]
        with sqlite3.connect(tmp_path / "state" / "spool.sqlite3") as db:
            last = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()[0]
        # the witness's last deliveries; a copy the edge re-sent because storage was slow
        # to confirm counts once here (InfluxDB, below, must hold each seq once anyway)
        witnessed = lambda: set(witness.seqs("events") + witness.seqs("metrics"))  # noqa: E731
        assert _wait(lambda: len(witnessed()) >= last), (len(witnessed()), last)
        events = sorted(set(witness.seqs("events")))
        metrics = sorted(set(witness.seqs("metrics")))
        # the edge lost nothing: one contiguous sequence shared by events and metrics
        assert len(events) > 5 and len(metrics) > 100
        assert sorted(events + metrics) == list(range(1, last + 1))
        copies = len(witness.seqs("events")) + len(witness.seqs("metrics")) - last
        assert not copies or "storage has not confirmed" in edge.stderr, \
            f"{copies} seqs published twice without a re-send"
        # exit 0 means storage confirmed every seq; this only waits for the query to see it
        assert _wait(lambda: len(_influx_seqs(influxd, unique_db, "posture_event",
                                              unique_device)) >= len(events))
        time.sleep(1.0)  # a late duplicate would show up here
        assert _influx_seqs(influxd, unique_db, "posture_event", unique_device) == events
        assert _influx_seqs(influxd, unique_db, "posture", unique_device) == metrics
        types = {m["type"] for m in witness.sequenced() if m["type"] != "metric"}
        assert "slouch_start" in types and "slouch_end" in types
        assert collector.proc.poll() is None, "the collector died"
    finally:
        witness.close()
        collector.terminate()
