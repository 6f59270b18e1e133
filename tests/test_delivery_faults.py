"""Black box: nothing lost, nothing doubled, nothing changed, whatever crashes.

Real Mosquitto, real influxd, two real `spinesense collector run` processes in one
`$share` group and the real `spinesense edge run --emulate …`, all as child processes with
the shipped defaults except for shorter timeouts. During one run the test SIGKILLs the
broker (persistence on, then again with persistence off), SIGKILLs collectors and the edge
twice each, and stops InfluxDB for 20 s. Then the edge must drain (exit 0: storage
confirmed every message), and InfluxDB must hold every event and metric seq the edge ever
produced exactly once, with its content unchanged.

What the edge produced is recorded independently of everything under test: before the
first start, the test creates the spool database with a trigger that copies every row the
edge inserts (in the edge's own transaction) into a table the edge never touches.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from collector_harness import ROOT, CollectorProc, write_config
from mqtt_witness import Witness

from spinesense.edge import spool as spool_module

pytestmark = pytest.mark.slow

DEVICE = "faulty"
SPEED = 60  # virtual minutes per real second
PATIENCE = 180.0  # bounds waits that normally take seconds; CI shares two loaded cores

_RECORDER = """
CREATE TABLE produced (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TRIGGER produced_insert AFTER INSERT ON outbox BEGIN
    INSERT OR REPLACE INTO produced VALUES (new.seq, new.kind, new.payload); END;
CREATE TRIGGER produced_update AFTER UPDATE OF payload ON outbox BEGIN
    UPDATE produced SET payload = new.payload WHERE seq = new.seq; END;
"""


def _edge_config(path: Path, port: int) -> Path:
    path.write_text(f"""[device]
id = "{DEVICE}"
state_dir = "{path.parent / 'edge-state'}"
[mqtt]
host = "127.0.0.1"
port = {port}
reconnect_max_s = 2.0
[spool]
resend_after_s = 3.0
""")
    return path


class Edge:
    """`spinesense edge run` as a child process that can be SIGKILLed and restarted."""

    def __init__(self, config: Path, log: Path):
        self.config, self.log_path, self.proc = config, log, None
        self.runs = 0

    def start(self, duration: str, drain_timeout: float = 60.0) -> None:
        self.runs += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "spinesense", "edge", "run", "-c", str(self.config),
                 "--emulate", "mpu6050", "--scenario", "mixed", "--seed", str(self.runs),
                 "--speed", str(SPEED), "--duration", duration,
                 "--drain-timeout", str(drain_timeout)],
                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT)

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log()[-3000:]
        self.proc.kill()
        self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _produced(spool_path: Path) -> dict[int, tuple[str, dict]]:
    with sqlite3.connect(spool_path) as db:
        rows = db.execute("SELECT seq, kind, payload FROM produced").fetchall()
    return {seq: (kind, json.loads(payload)) for seq, kind, payload in rows}


def _stored(influx, db: str) -> dict[str, list[dict]]:
    where = f"\"device\" = '{DEVICE}' AND time > 0 AND time < now() + 3650d"
    return {kind: influx.rows(f"SELECT * FROM {measurement} WHERE {where}", db)
            for kind, measurement in (("metrics", "posture"), ("events", "posture_event"))}


def _expected_fields(msg: dict) -> dict:
    """The fields a message becomes in InfluxDB (numbers as floats; see points.py)."""
    out = {}
    for key, value in msg["data"].items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str) else float(value)
    if "synced" in msg:
        out["synced"] = float(bool(msg["synced"]))
    return out


def _check_stored_exactly_once(produced: dict[int, tuple[str, dict]],
                               stored: dict[str, list[dict]]) -> None:
    by_seq: dict[int, list[tuple[str, dict]]] = {}
    for kind, rows in stored.items():
        for row in rows:
            by_seq.setdefault(int(row["seq"]), []).append((kind, row))
    missing = sorted(set(produced) - set(by_seq))
    assert not missing, f"{len(missing)} seqs never stored, e.g. {missing[:10]}"
    extra = sorted(set(by_seq) - set(produced))
    assert not extra, f"stored seqs the edge never produced: {extra[:10]}"
    doubled = sorted(s for s, rows in by_seq.items() if len(rows) > 1)
    assert not doubled, f"seqs stored more than once: {doubled[:10]}"
    for seq, (kind, msg) in produced.items():
        got_kind, row = by_seq[seq][0]
        assert got_kind == kind, f"seq {seq}: stored as {got_kind}, produced as {kind}"
        assert row["time"] == msg["ts"], f"seq {seq}: time {row['time']} != ts {msg['ts']}"
        if kind == "events":
            assert row["type"] == msg["type"], f"seq {seq}: type changed"
        want = _expected_fields(msg)
        have = {k: v for k, v in row.items()
                if v is not None and k not in ("time", "device", "type", "seq")}
        assert have == want, f"seq {seq}: stored fields differ from what the edge produced"


def test_every_seq_is_stored_exactly_once_through_crashes_and_outages(
        tmp_path: Path, mosquitto_factory, influxd_factory) -> None:
    t_start = time.monotonic()
    broker = mosquitto_factory()
    influx = influxd_factory()
    cfg = write_config(tmp_path / "collector.toml", mqtt_port=broker.port,
                       influx_url=influx.url, db="faults",
                       mqtt_extra={"reconnect_max_s": 2.0},
                       collector={"group": "g", "flush_interval_s": 0.1,
                                  "dead_letter_file": str(tmp_path / "dead.jsonl")})
    collectors = {name: CollectorProc(cfg, name, tmp_path).start(timeout=PATIENCE)
                  for name in ("a", "b")}
    witness = Witness(broker.port, DEVICE)  # only to see that the edge really re-sent

    edge_cfg = _edge_config(tmp_path / "edge.toml", broker.port)
    spool_path = tmp_path / "edge-state" / "spool.sqlite3"
    spool_path.parent.mkdir()
    with sqlite3.connect(spool_path) as db:
        db.executescript(spool_module._SCHEMA + _RECORDER)
    edge = Edge(edge_cfg, tmp_path / "edge.log")
    edge.start("2h")

    def produced_count() -> int:
        with sqlite3.connect(spool_path) as db:
            return db.execute("SELECT count(*) FROM produced").fetchone()[0]

    def restart_broker(persistence: bool) -> None:
        conf = broker.conf.read_text()
        broker.kill()  # SIGKILL: no final save
        broker.conf.write_text(conf.replace("persistence true", "persistence false")
                               if not persistence else conf)
        time.sleep(2)
        broker.start()

    def kill_collector(name: str) -> None:
        collectors[name].kill()
        time.sleep(1)
        collectors[name].start(timeout=PATIENCE)

    def kill_edge(then_duration: str, drain_timeout: float = 60.0) -> None:
        edge.kill()
        time.sleep(1)
        edge.start(then_duration, drain_timeout)

    def produce(n: int, since: int | None = None) -> None:
        """Let the running edge spool ``n`` more messages (about n/6 s at 60x) than now or
        than ``since``. The faults are paced by the edge's progress, not by the clock: on
        a loaded machine a fixed sleep may end before a restarted edge is past start-up."""
        target = (produced_count() if since is None else since) + n
        deadline = time.monotonic() + PATIENCE
        while produced_count() < target:
            assert edge.proc is not None and edge.proc.poll() is None, edge.log()[-3000:]
            assert time.monotonic() < deadline, edge.log()[-3000:]
            time.sleep(0.2)

    try:
        produce(30)  # the pipeline has calibrated and is publishing
        restart_broker(persistence=True)
        produce(30)
        kill_collector("a")
        produce(30)
        kill_edge("2h")
        produce(36)
        influx.stop()  # 20 s without storage: the collectors retry, the edge re-sends
        outage_from = produced_count()
        time.sleep(6)
        kill_collector("b")
        time.sleep(14)
        produce(120, since=outage_from)  # and the edge spooled 20 s worth meanwhile
        influx.start()
        produce(30)
        restart_broker(persistence=False)  # sessions, queues and retained marks are gone
        produce(30)
        kill_collector("a")
        produce(24)
        kill_edge("10m", drain_timeout=90)  # the last run ends by itself and drains
        assert edge.proc is not None
        rc = edge.proc.wait(PATIENCE * 2)
        assert rc == 0, f"the edge did not drain (exit {rc}):\n{edge.log()[-4000:]}"

        produced = _produced(spool_path)
        with sqlite3.connect(spool_path) as db:
            left = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        assert left == 0, "exit 0 but the spool still holds messages"
        assert "dropped the" not in edge.log(), "the spool bound dropped data"
        time.sleep(1.0)  # a late write would show up here
        _check_stored_exactly_once(produced, _stored(influx, "faults"))
        events = sum(1 for kind, _ in produced.values() if kind == "events")
        assert events >= 10 and len(produced) - events >= 300, (events, len(produced))
        # re-sends happened (edge restarts, unconfirmed timeouts) and were harmless:
        fresh: dict[int, int] = {}
        for msg, dup in witness.deliveries():
            if not dup:
                fresh[msg["seq"]] = fresh.get(msg["seq"], 0) + 1
        resent = sum(1 for n in fresh.values() if n > 1)
        assert resent > 0, "no message was sent twice: point identity went untested"
        for proc in collectors.values():
            assert "Traceback" not in proc.log(), proc.log()[-3000:]
        elapsed = time.monotonic() - t_start
        print(f"\nfaults test: {len(produced)} messages ({events} events) from 3 edge runs; "
              f"{resent} seqs sent more than once; all stored once; {elapsed:.0f} s")
    finally:
        witness.close()
        if edge.proc is not None and edge.proc.poll() is None:
            edge.proc.kill()
        for proc in collectors.values():
            proc.kill()
