"""The stored watermark (collector/marks.py): contiguity, prev links over dropped seqs,
merging across the collectors of one shared group, republishing; and the ACL that
guards the stored topic, on a real Mosquitto with the shipped ACL file."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from spinesense import schema
from spinesense.collector import marks as marks_module
from spinesense.collector.marks import Watermarks
from spinesense.devservers import Mosquitto

ROOT = Path(__file__).resolve().parent.parent


def _settle(w: Watermarks, device: str, seqs, prev=None) -> None:
    w.settled([(device, s, s - 1 if prev is None else prev) for s in seqs])


def test_the_mark_is_the_highest_contiguous_seq_in_any_arrival_order() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 120)
        seqs = list(range(1, n + 1))
        rng.shuffle(seqs)
        hole = rng.choice(seqs) if rng.random() < 0.5 else None
        w = Watermarks("sp", "c")
        done: set[int] = set()
        for s in seqs:
            if s == hole:
                continue
            _settle(w, "d", [s])
            done.add(s)
            expect = 0
            while expect + 1 in done:
                expect += 1
            assert w.mark("d") == expect


def test_prev_steps_over_seqs_the_spool_dropped_for_good() -> None:
    w = Watermarks("sp", "c")
    _settle(w, "d", [1, 2, 3])
    w.settled([("d", 9, 3)])  # 4..8 were dropped by the edge's bound: settled
    assert w.mark("d") == 9
    w.settled([("d", 12, 10)])  # 11 dropped; 10 not yet stored
    assert w.mark("d") == 9
    _settle(w, "d", [10])
    assert w.mark("d") == 12


def _exchange(collectors: list[Watermarks], rounds: int = 6) -> int:
    """Deliver every published mark to every collector (as the broker would)."""
    published = 0
    for _ in range(rounds):
        out = [(t, p) for w in collectors for t, p in w.due()]
        published += len(out)
        for topic, payload in out:
            for w in collectors:
                w.merge(topic.split("/")[-2], payload)
        time.sleep(marks_module.REPUBLISH_MIN_S + 0.01)
    return published


def test_collectors_of_one_group_merge_to_the_full_mark_and_then_fall_quiet() -> None:
    a, b, c = (Watermarks("sp", name) for name in "abc")
    seqs = list(range(1, 301))
    random.Random(3).shuffle(seqs)
    for i, s in enumerate(seqs):  # a shared subscription spreads one device's stream
        _settle((a, b, c)[i % 3], "d", [s])
    assert max(w.mark("d") for w in (a, b, c)) < 300  # none of them sees it contiguously
    _exchange([a, b, c])
    assert a.mark("d") == b.mark("d") == c.mark("d") == 300
    assert _exchange([a, b, c], rounds=2) == 0  # converged: nothing more to say


def test_a_message_at_or_below_the_mark_makes_the_collector_republish() -> None:
    w = Watermarks("sp", "c")
    _settle(w, "d", range(1, 11))
    (_topic, payload), = w.due()
    w.merge("d", payload)
    assert w.due() == []
    time.sleep(marks_module.REPUBLISH_MIN_S + 0.01)
    _settle(w, "d", [4])  # the edge re-sent: it has not seen the mark
    (topic2, payload2), = w.due()
    msg = json.loads(payload2)
    assert topic2 == "sp/d/stored" and msg["seq"] == 10 and msg["type"] == "stored"
    assert msg["device"] == "d" and msg["v"] == schema.SCHEMA_VERSION


def test_malformed_marks_are_ignored() -> None:
    w = Watermarks("sp", "c")
    for bad in (b"", b"[]", b'{"type":"stored","seq":-1,"device":"d"}',
                b'{"type":"stored","seq":"9","device":"d"}',
                b'{"type":"stored","seq":9,"device":"e"}', b"\xff"):
        w.merge("d", bad)
    assert w.mark("d") == 0


# -- the shipped ACL ---------------------------------------------------------------------

def _client(port: int, user: str, password: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.time_ns()}",
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.got = []  # type: ignore[attr-defined]
    c.on_message = lambda _c, _u, m: c.got.append((m.topic, m.payload))  # type: ignore
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_only_collectors_write_stored_and_a_device_reads_only_its_own(
        tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    users = {"alice": "a1", "bob": "b1", "collector.spinesense": "c1"}
    for i, (user, secret) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *([] if i else ["-c"]), str(pw), user,
                        secret], check=True)
    pw.chmod(0o644)
    acl = tmp_path / "acl"
    acl.write_text((ROOT / "deploy" / "mosquitto" / "acl").read_text())
    acl.chmod(0o644)
    broker = Mosquitto(tmp_path / "broker", anonymous=False,
                       extra=f"password_file {pw}\nacl_file {acl}").start()
    clients = []
    try:
        alice = _client(broker.port, "alice", "a1")
        collector = _client(broker.port, "collector.spinesense", "c1")
        clients += [alice, collector]
        time.sleep(0.5)
        alice.subscribe([("spinesense/alice/stored", 1), ("spinesense/bob/stored", 1)])
        collector.subscribe("spinesense/+/stored", 0)
        time.sleep(0.5)
        forged = schema.encode(schema.make_message("alice", 10**9, 1, "stored"))
        alice.publish("spinesense/alice/stored", forged, qos=1, retain=True)
        alice.publish("spinesense/bob/stored", forged, qos=1, retain=True)
        time.sleep(0.5)
        assert not collector.got, "a device wrote a stored mark"
        for device in ("alice", "bob"):
            real = schema.encode(schema.make_message(device, 5, 1, "stored"))
            collector.publish(f"spinesense/{device}/stored", real, qos=1,
                              retain=True).wait_for_publish(5)
        done = threading.Event()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not done.is_set():
            if len(collector.got) >= 2 and alice.got:
                done.wait(0.5)  # anything more for alice would arrive by now
                break
            time.sleep(0.05)
        assert sorted(t for t, _ in collector.got) == ["spinesense/alice/stored",
                                                       "spinesense/bob/stored"]
        assert [t for t, _ in alice.got] == ["spinesense/alice/stored"]  # not bob's
        assert json.loads(alice.got[0][1])["seq"] == 5
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()
        broker.stop()


def test_the_collector_reconnects_within_mqtt_reconnect_max_s(tmp_path: Path) -> None:
    from spinesense.collector.service import Collector
    from spinesense.config import Config

    cfg = Config()
    cfg.mqtt.reconnect_max_s = 4.0
    cfg.collector.dead_letter_file = str(tmp_path / "dead.jsonl")
    collector = Collector(cfg, instance="r")
    try:
        assert collector.client._reconnect_max_delay == 4.0
        assert collector.client._reconnect_min_delay <= 1.0
    finally:
        collector.writer.close()
        collector.dead_letter.close()
