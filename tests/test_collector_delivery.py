"""End-to-end delivery guarantees of the collector, with real Mosquitto and influxd:
nothing lost and nothing duplicated through crashes, InfluxDB outages and scale-out."""

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
    event,
    metric,
    rss_mb,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


def publish_paced(pub: Publisher, device: str, seqs: list[int], rate: float,
                  base_ms: int) -> threading.Thread:
    """Publish events for ``seqs`` at about ``rate`` per second in a background thread."""
    def run() -> None:
        t0 = time.monotonic()
        for i, seq in enumerate(seqs):
            pub.publish(f"spinesense/{device}/events", event(device, seq, base_ms + seq))
            ahead = i / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def stored_seqs(influx, db: str, device: str) -> list[int]:
    rows = influx.rows(f"SELECT seq FROM posture_event WHERE device = '{device}'", db)
    return sorted(int(r["seq"]) for r in rows)


def last_stats(log: str) -> dict:
    found = re.findall(r"stats (\{.*\})", log)
    return json.loads(found[-1]) if found else {}


@pytest.mark.parametrize("protocol", ["v5", "v311"])
def test_sigkill_and_restart_loses_and_duplicates_nothing(
        protocol, mosquitto_factory, influxd, unique_db, unique_device, tmp_path: Path):
    broker = mosquitto_factory()
    cfg = write_config(tmp_path / "c.toml", mqtt_port=broker.port, influx_url=influxd.url,
                       db=unique_db, mqtt_extra={"protocol": protocol},
                       collector={"flush_interval_s": 0.3, "group": ""})
    collector = CollectorProc(cfg, "k", tmp_path).start()
    pub = Publisher(broker.port)
    base = int(time.time() * 1000) - 3_600_000
    n = 4000
    # every event is sent, and a quarter of them twice more (as an edge re-sending after a
    # lost PUBACK would): the unique count is what must land
    seqs = list(range(n)) + list(range(0, n, 4)) * 2
    sender = publish_paced(pub, unique_device, seqs, rate=1500, base_ms=base)
    wait_for(lambda: count_points(influxd, unique_db, "posture_event", unique_device) > 300,
             20, what="first points stored")
    collector.kill()  # SIGKILL mid-stream: unacked messages stay in the broker session
    at_kill = count_points(influxd, unique_db, "posture_event", unique_device)
    time.sleep(1.0)
    collector.start()
    sender.join(60)
    pub.wait_acked()
    wait_for(lambda: count_points(influxd, unique_db, "posture_event", unique_device) >= n,
             60, what="all events stored")
    time.sleep(1.5)  # let any stray redelivery land: it must overwrite, not add
    assert at_kill < n, "the kill happened after everything was stored; test proves nothing"
    assert stored_seqs(influxd, unique_db, unique_device) == list(range(n))
    assert "session resumed" in collector.log()
    assert collector.terminate() == 0
    pub.close()


def test_influxdb_outage_loses_nothing_and_memory_stays_bounded(
        mosquitto_factory, influxd_factory, unique_device, tmp_path: Path):
    broker = mosquitto_factory()
    influx = influxd_factory()
    window = 2000
    cfg = write_config(tmp_path / "c.toml", mqtt_port=broker.port, influx_url=influx.url,
                       db="outage", collector={"max_inflight": window, "group": ""})
    collector = CollectorProc(cfg, "o", tmp_path).start()
    pub = Publisher(broker.port)
    base = int(time.time() * 1000) - 3_600_000
    rate, outage_s = 400, 30.0
    n = int(rate * (outage_s + 6))
    sender = publish_paced(pub, unique_device, list(range(n)), rate=rate, base_ms=base)
    wait_for(lambda: count_points(influx, "outage", "posture_event") > 200, 20,
             what="first points stored")
    influx.stop()
    peak = 0.0
    t_end = time.monotonic() + outage_s
    while time.monotonic() < t_end:
        peak = max(peak, rss_mb(collector.pid))
        time.sleep(0.5)
    during = last_stats(collector.log())
    influx.start()  # same port, same data
    sender.join(60)
    pub.wait_acked()
    wait_for(lambda: count_points(influx, "outage", "posture_event") >= n, 90,
             what="backlog written after the outage")
    peak = max(peak, rss_mb(collector.pid))
    assert count_points(influx, "outage", "posture_event") == n
    assert stored_seqs(influx, "outage", unique_device) == list(range(n))
    assert during["retries"] > 0, "the collector never noticed the outage"
    # backpressure: the collector held at most its window; the broker kept the rest
    assert during["backlog"] <= window
    assert peak < 150, f"collector RSS reached {peak:.0f} MB during the outage"
    assert collector.terminate() == 0
    pub.close()


def test_shared_subscription_splits_the_load_and_stores_each_event_once(
        mosquitto_factory, influxd, unique_db, tmp_path: Path):
    broker = mosquitto_factory()
    cfg = write_config(tmp_path / "c.toml", mqtt_port=broker.port, influx_url=influxd.url,
                       db=unique_db, collector={"group": "g1"})
    a = CollectorProc(cfg, "a", tmp_path).start()
    b = CollectorProc(cfg, "b", tmp_path).start()
    pub = Publisher(broker.port)
    base = int(time.time() * 1000) - 3_600_000
    devices = [f"w{i}" for i in range(8)]
    per_device = 400
    for seq in range(per_device):
        for dev in devices:
            pub.publish(f"spinesense/{dev}/events", event(dev, seq, base + seq))
        if seq % 50 == 0:
            pub.publish(f"spinesense/{devices[0]}/metrics", metric(devices[0], 10_000 + seq,
                                                                   base + seq))
    pub.wait_acked()
    total = per_device * len(devices)
    wait_for(lambda: count_points(influxd, unique_db, "posture_event") >= total, 60,
             what="all events stored")
    time.sleep(1.5)
    assert count_points(influxd, unique_db, "posture_event") == total
    assert count_points(influxd, unique_db, "posture") == per_device // 50
    assert a.terminate() == 0 and b.terminate() == 0
    got = {}
    for proc in (a, b):
        m = re.search(r"stopped: (\d+) in", proc.log())
        assert m, proc.log()[-500:]
        got[proc.instance] = int(m.group(1))
    assert got["a"] > 0 and got["b"] > 0, f"one collector got nothing: {got}"
    assert got["a"] + got["b"] == total + per_device // 50, got
    # self-metrics: each instance wrote its own spinesense_collector series
    rows = influxd.rows('SELECT last("msgs_in") FROM spinesense_collector GROUP BY "instance"',
                        unique_db)
    assert {r["instance"] for r in rows} >= {"a", "b"}
    pub.close()


def test_sigterm_flushes_and_acknowledges_pending_messages(
        mosquitto_factory, influxd, unique_db, unique_device, tmp_path: Path):
    broker = mosquitto_factory()
    # a long flush interval and a large batch: only the shutdown flush can write these
    cfg = write_config(tmp_path / "c.toml", mqtt_port=broker.port, influx_url=influxd.url,
                       db=unique_db, collector={"flush_interval_s": 30.0, "group": "",
                                                "stats_interval_s": 60.0})
    collector = CollectorProc(cfg, "t", tmp_path).start()
    pub = Publisher(broker.port)
    base = int(time.time() * 1000) - 3_600_000
    for seq in range(50):
        pub.publish(f"spinesense/{unique_device}/events", event(unique_device, seq, base + seq))
    pub.wait_acked()
    time.sleep(0.5)
    assert collector.terminate(90) == 0  # the stop may wait out one slow write
    assert count_points(influxd, unique_db, "posture_event", unique_device) == 50
    # restarted, nothing is redelivered: everything was acknowledged before exit
    collector.start()
    time.sleep(2.0)
    assert collector.terminate(90) == 0  # the stop may wait out one slow write
    assert re.findall(r"stopped: (\d+) in", collector.log())[-1] == "0"
    pub.close()


def test_refused_points_are_isolated_and_dead_lettered(
        mosquitto_factory, influxd, unique_db, unique_device, tmp_path: Path):
    broker = mosquitto_factory()
    dead = tmp_path / "dead.jsonl"
    cfg = write_config(tmp_path / "c.toml", mqtt_port=broker.port, influx_url=influxd.url,
                       db=unique_db, collector={"dead_letter_file": str(dead), "group": "",
                                                "flush_interval_s": 1.0})
    collector = CollectorProc(cfg, "r", tmp_path).start()
    pub = Publisher(broker.port)
    base = int(time.time() * 1000) - 3_600_000
    topic = f"spinesense/{unique_device}/events"
    pub.publish(topic, event(unique_device, 0, base))  # peak_deg lands as a float
    pub.wait_acked()
    wait_for(lambda: count_points(influxd, unique_db, "posture_event") == 1, 20, what="first")
    from spinesense.collector.writers import InfluxV1Writer
    from spinesense.config import InfluxConfig
    from spinesense.schema import encode, make_message
    # the validator refuses a wrong type, so InfluxDB can only refuse a field that something
    # else (an older collector) stored with another type: legacy_note as a string
    InfluxV1Writer(InfluxConfig(url=influxd.url, database=unique_db)).write(
        [f'posture_event,device=legacy,type=slouch_start legacy_note="text" {base}'])
    conflicting = encode(make_message(unique_device, 1, base + 1, "slouch_start",
                                      {"legacy_note": 1.5}))  # field type conflict
    for seq in range(2, 100):
        pub.publish(topic, event(unique_device, seq, base + seq))
        if seq == 50:
            pub.publish(topic, conflicting)
    pub.wait_acked()
    wait_for(lambda: count_points(influxd, unique_db, "posture_event", unique_device) >= 99, 30,
             what="rest")
    assert stored_seqs(influxd, unique_db, unique_device) == [0, *range(2, 100)]
    wait_for(lambda: dead.exists() and dead.read_text().strip(), 10, what="dead letter")
    records = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len(records) == 1
    assert "field type conflict" in records[0]["reason"]
    assert json.loads(records[0]["payload"])["seq"] == 1
    assert collector.terminate() == 0
    pub.close()


def test_collector_waits_for_the_broker_and_survives_its_restart(
        influxd, unique_db, unique_device, tmp_path: Path):
    from spinesense.devservers import Mosquitto, free_port

    port = free_port()
    cfg = write_config(tmp_path / "c.toml", mqtt_port=port, influx_url=influxd.url,
                       db=unique_db, collector={"group": ""})
    collector = CollectorProc(cfg, "w", tmp_path).spawn()
    collector.wait_ready("cannot reach the MQTT broker", 20)  # says so, keeps trying
    broker = Mosquitto(tmp_path / "late-broker", port=port).start()
    try:
        collector.wait_ready("subscribed to", 40)
        base = int(time.time() * 1000) - 3_600_000
        pub = Publisher(port)
        for seq in range(100):
            pub.publish(f"spinesense/{unique_device}/events",
                        event(unique_device, seq, base + seq))
        pub.wait_acked()
        pub.close()
        broker.stop()  # a broker restart: the collector reconnects and resubscribes
        broker.start()
        pub = Publisher(port)
        for seq in range(100, 200):
            pub.publish(f"spinesense/{unique_device}/events",
                        event(unique_device, seq, base + seq))
        pub.wait_acked()
        wait_for(lambda: count_points(influxd, unique_db, "posture_event") >= 200, 60,
                 what="events from before and after the broker restart")
        assert stored_seqs(influxd, unique_db, unique_device) == list(range(200))
        assert collector.terminate() == 0
        pub.close()
    finally:
        broker.stop()


def test_a_second_sigterm_exits_at_once_and_loses_nothing(
        mosquitto_factory, influxd, unique_db, unique_device, tmp_path: Path):
    """systemd's stop (or an impatient Ctrl-C) while InfluxDB is down: the first signal
    starts a flush that cannot succeed, the second one exits at once. Nothing was
    acknowledged, so the broker redelivers every message to the restarted collector."""
    import signal

    from spinesense.devservers import free_port
    broker = mosquitto_factory()
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: every write is retried
    down = write_config(tmp_path / "down.toml", mqtt_port=broker.port, influx_url=nowhere,
                        db=unique_db, collector={"group": ""})
    collector = CollectorProc(down, "s2", tmp_path).start()
    pub = Publisher(broker.port)
    base = int(time.time() * 1000) - 3_600_000
    for seq in range(20):
        pub.publish(f"spinesense/{unique_device}/events", event(unique_device, seq, base + seq))
    pub.wait_acked()
    wait_for(lambda: "write of" in collector.log(), 20, what="a failed write")
    assert collector.proc is not None
    collector.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert collector.proc.poll() is None  # still trying to flush
    t0 = time.monotonic()
    collector.proc.send_signal(signal.SIGTERM)
    assert collector.proc.wait(10) == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 5.0
    assert "second stop signal" in collector.log()
    up = write_config(tmp_path / "up.toml", mqtt_port=broker.port, influx_url=influxd.url,
                      db=unique_db, collector={"group": ""})
    CollectorProc(up, "s2", tmp_path).start()
    wait_for(lambda: count_points(influxd, unique_db, "posture_event", unique_device) == 20,
             30, what="all 20 redelivered and stored")
    pub.close()
