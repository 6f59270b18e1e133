"""Hostile devices against one collector process, through the real broker and influxd.

Good messages from several devices are interleaved with bad ones from others: a lone
surrogate, type conflicts on events, metrics and status (sent first, so that a stored one
would fix the field's type for everyone), numeric and boolean postures, 10 000 distinct
event types, and 300 payloads of 1 MB while InfluxDB is down. Control characters are
good data and must come back unchanged. Every good message is stored with its content,
nothing wedges, and the collector's RSS stays within the documented 150 MB.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
from collector_harness import (
    CollectorProc,
    Publisher,
    count_points,
    rss_mb,
    wait_for,
    write_config,
)

from spinesense.schema import EVENT_TYPES, encode, make_message

pytestmark = pytest.mark.slow
NOW = int(time.time() * 1000)
GOOD = ("alice", "bob", "carol")
RSS_LIMIT_MB = 150.0
N_TYPES = 10_000
N_BIG = 300


class Good:
    """The good devices' messages, and what must come back from InfluxDB."""

    def __init__(self) -> None:
        self.seq = dict.fromkeys(GOOD, 0)
        self.events: dict[tuple[str, int], dict] = {}
        self.metrics: dict[tuple[str, int], dict] = {}
        self.statuses = 0
        self.i = 0

    def next(self) -> tuple[str, bytes]:
        """Round robin over devices and kinds; some strings carry control characters."""
        self.i += 1
        dev = GOOD[self.i % len(GOOD)]
        self.seq[dev] += 1
        seq = self.seq[dev]
        ts = NOW - 3_600_000 + self.i
        if self.i % 10 == 0:
            data = {"flexion_mean": 4.5 + seq % 3, "posture": "standing", "steps": 3,
                    "unconfirmed": 0}
            self.metrics[(dev, seq)] = data
            return f"spinesense/{dev}/metrics", encode(make_message(dev, seq, ts, "metric", data))
        if self.i % 25 == 1:
            self.statuses += 1
            data = {"state": "online", "clock_synced": True, "uptime_s": 1.5}
            return f"spinesense/{dev}/status", encode(make_message(dev, seq, ts, "status", data))
        reason = ("walking", "line1\nline2", "line1\\nline2", "tab\tnul\x00bell\x07",
                  'quote " and \\ and ☃')[seq % 5]
        data = {"onset": ts - 9000, "alert_t": ts - 4000, "duration_s": 9.0,
                "peak_deg": 20.0 + seq % 7, "mean_deg": 18.5, "reason": reason,
                "zzz": 1.0}  # a field no type declares: a number, as for everyone
        self.events[(dev, seq)] = data
        return f"spinesense/{dev}/events", encode(make_message(dev, seq, ts, "slouch_end",
                                                               data))


def conflicts(seq0: int) -> list[tuple[str, bytes]]:
    """mallory's forged types, each a field that good devices use with another type."""
    ts = NOW - 3_600_000
    bad_data = [
        ("events", "slouch_end", {"peak_deg": "high"}),
        ("events", "slouch_end", {"reason": 7}),
        ("events", "slouch_end", {"duration_s": True}),
        ("events", "slouch_start", {"zzz": "text"}),
        ("events", "brand_new", {"reason": 3.0}),
        ("metrics", "metric", {"posture": 3}),
        ("metrics", "metric", {"posture": True}),
        ("metrics", "metric", {"flexion_mean": "x"}),
        ("metrics", "metric", {"unconfirmed": "many"}),
        ("status", "status", {"state": 1.0}),
        ("status", "status", {"clock_synced": "yes"}),
        ("status", "cmd_error", {"uptime_s": "long"}),
    ]
    out = []
    for i, (kind, type_, data) in enumerate(bad_data):
        msg = make_message("mallory", seq0 + i, ts + i, type_, data)
        out.append((f"spinesense/mallory/{kind}", encode(msg)))
    surrogate = encode(make_message("mallory", seq0 + 99, ts, "slouch_end", {"reason": "R"}))
    out.append(("spinesense/mallory/events", surrogate.replace(b'"R"', b'"x\\ud800y"')))
    return out


class RssWatch(threading.Thread):
    """Samples a process's RSS every 50 ms; ``peak`` in MB."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.halt = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except Exception:  # the process ended
                return


def test_hostile_devices_cannot_stop_or_poison_the_good_ones(
        mosquitto_factory, influxd_factory, tmp_path: Path):
    broker, influx = mosquitto_factory(), influxd_factory()
    db = "hostile"
    dead = tmp_path / "dead.jsonl"
    cfg = write_config(tmp_path / "c.toml", mqtt_port=broker.port, influx_url=influx.url,
                       db=db, collector={"dead_letter_file": str(dead)})
    collector = CollectorProc(cfg, "hostile", tmp_path).start()
    watch = RssWatch(collector.pid)
    watch.start()
    pub = Publisher(broker.port, inflight=200)
    good = Good()
    n_bad = 0

    def dead_lines() -> int:
        return dead.read_text().count("\n") if dead.exists() else 0

    # 1. type conflicts first (a stored one would fix the type for everyone), then
    #    interleaved with good messages
    for _round in range(5):
        for topic, payload in conflicts(1000 * _round):
            pub.publish(topic, payload)
            n_bad += 1
            pub.publish(*good.next())
    for _ in range(600):
        pub.publish(*good.next())
    # 2. 10 000 distinct event types: stored, under one tag value
    for i in range(N_TYPES):
        msg = make_message("trudy", i, NOW - 3_000_000 + i, f"kind_{i}", {"x": float(i)})
        pub.publish("spinesense/trudy/events", encode(msg))
        if i % 20 == 0:
            pub.publish(*good.next())
    pub.wait_acked(180)
    wait_for(lambda: count_points(influx, db, "posture_event", "trudy") == N_TYPES, 120,
             what="trudy's events stored")
    # 3. InfluxDB down: 1 MB payloads, good messages in between
    influx.stop()
    big = b'{"v":1,"device":"mallory","pad":"' + b"x" * 1_048_576 + b'"}'
    for _ in range(N_BIG):
        pub.publish("spinesense/mallory/events", big)
        n_bad += 1
        pub.publish(*good.next())
    pub.wait_acked(180)
    wait_for(lambda: dead_lines() >= n_bad, 120, what="every bad message dead-lettered")
    time.sleep(1.0)
    influx.start()
    # 4. a last good message after everything: nothing wedged
    last = good.next()
    pub.publish(*last)
    expected_events = {d: sum(1 for k in good.events if k[0] == d) for d in GOOD}
    for dev in GOOD:
        wait_for(lambda dev=dev: count_points(influx, db, "posture_event", dev)
                 == expected_events[dev], 120, what=f"{dev}'s events stored")
    wait_for(lambda: count_points(influx, db, "posture") == len(good.metrics), 60,
             what="metrics stored")
    wait_for(lambda: len(influx.rows("SELECT state FROM device_status", db)) == good.statuses,
             60, what="statuses stored")
    watch.halt.set()
    assert collector.proc is not None and collector.proc.poll() is None, "collector died"
    assert collector.terminate() == 0
    pub.close()

    rows = influx.rows("SELECT * FROM posture_event WHERE device != 'trudy' GROUP BY *", db)
    stored = {(r["device"], r["seq"]): r for r in rows}
    assert set(stored) == set(good.events), "only the good events, all of them"
    for key, data in good.events.items():
        row = stored[key]
        assert (row["reason"], row["peak_deg"], row["type"]) == (
            data["reason"], data["peak_deg"], "slouch_end"), key
    metrics = influx.rows("SELECT * FROM posture GROUP BY *", db)
    assert {(r["device"], r["seq"]): r["posture"] for r in metrics} == {
        k: "standing" for k in good.metrics}
    tags = influx.query('SHOW TAG VALUES FROM posture_event WITH KEY = "type"', db)
    values = {v[1] for v in tags[0]["series"][0]["values"]}
    assert values == {"slouch_end", "other"}, values
    assert values <= {*EVENT_TYPES, "other"}
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(records) == n_bad
    reasons = " ".join(r["reason"] for r in records)
    for needle in ("lone surrogate", "data.posture must be a string", "over the limit",
                   "data.reason must be a string", "data.zzz must be a number"):
        assert needle in reasons, needle
    assert "Traceback" not in collector.log()
    print(f"collector peak RSS {watch.peak:.1f} MB with {N_BIG} x 1 MB payloads during "
          "the outage")
    assert 0 < watch.peak <= RSS_LIMIT_MB


def test_large_valid_messages_during_an_outage_stay_within_the_memory_bound(
        mosquitto_factory, influxd_factory, tmp_path: Path):
    """Valid messages can be large too (every declared string field at 1024 characters):
    while InfluxDB is down the collector holds at most its byte budget of them, the broker
    keeps the rest, and all are stored when InfluxDB is back."""
    from spinesense.schema import FIELD_TABLES

    broker, influx = mosquitto_factory(), influxd_factory()
    db = "large"
    cfg = write_config(tmp_path / "c.toml", mqtt_port=broker.port, influx_url=influx.url,
                       db=db, collector={"group": ""})
    collector = CollectorProc(cfg, "large", tmp_path).start()
    watch = RssWatch(collector.pid)
    watch.start()
    strings = sorted(n for n, ft in FIELD_TABLES["events"].items() if ft.kind == "string")
    text = "☃" * 1024  # 3 bytes each in UTF-8
    pub = Publisher(broker.port, inflight=200)
    influx.stop()
    n = 5000
    data: dict[str, str] = {}
    for name in strings:  # as many as fit under the collector's max_payload_bytes
        if len(encode(make_message("alice", n, NOW, "sensor_lost",
                                   {**data, name: text}))) > 60_000:
            break
        data[name] = text
    for seq in range(n):
        msg = make_message("alice", seq, NOW - 3_600_000 + seq, "sensor_lost", data)
        pub.publish("spinesense/alice/events", encode(msg))
    size = len(encode(msg))
    pub.wait_acked(180)
    time.sleep(3.0)
    influx.start()
    wait_for(lambda: count_points(influx, db, "posture_event", "alice") == n, 240,
             what="every large event stored")
    watch.halt.set()
    assert collector.terminate() == 0
    assert re.findall(r'"rejected":(\d+)', collector.log())[-1] == "0"
    pub.close()
    print(f"collector peak RSS {watch.peak:.1f} MB with {n} x {size / 1e3:.0f} kB valid "
          "messages offered during the outage")
    assert size > 25_000 and n * size > 100e6
    assert 0 < watch.peak <= RSS_LIMIT_MB
