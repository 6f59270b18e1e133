"""The MQTT publisher on a real Mosquitto: spool order, PUBACK deletes, will, auth, TLS."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from spinesense import schema
from spinesense.config import Config
from spinesense.devservers import Mosquitto
from spinesense.edge.publisher import RESEND_MAX_S, Publisher
from spinesense.edge.spool import Spool


class Subscriber:
    """A QoS 1 subscriber with a persistent session that records payloads per topic."""

    def __init__(self, port: int, topics: list[str], client_id: str, *, tls_ca: str = ""):
        self.got: list[tuple[str, dict, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port, 5)
        self.client.loop_start()
        assert self.subscribed.wait(PATIENCE)

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic, json.loads(msg.payload), msg.retain))

    def seqs(self, kind: str) -> list[int]:
        with self.lock:
            return [m["seq"] for t, m, _ in self.got if t.endswith("/" + kind)]

    def of_type(self, type_: str) -> list[dict]:
        with self.lock:
            return [m for _, m, _ in self.got if m["type"] == type_]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _cfg(port: int, device: str, tmp_path: Path, **mqtt_keys) -> Config:
    cfg = Config()
    cfg.device.id = device
    cfg.device.state_dir = str(tmp_path / "state")
    cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.reconnect_max_s = "127.0.0.1", port, 2.0
    cfg.spool.delete_on = "puback"  # no collector here (see the stored-mark tests)
    for key, value in mqtt_keys.items():
        setattr(cfg.mqtt, key, value)
    return cfg


def _fill(spool: Spool, n: int, device: str) -> None:
    spool.add([("events" if i % 5 == 0 else "metrics",
                schema.make_message(device, 0, 1_700_000_000_000 + i, "metric", {"i": i}), None)
               for i in range(n)])


# Deadlines for conditions that normally hold within a second; generous because CI shares
# two cores with other work. A deadline only bounds a wait; it never makes a test pass.
PATIENCE = 120.0


def _wait(cond, timeout: float = PATIENCE, step=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step:
            step()
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_spool_is_published_in_seq_order_and_deleted_on_puback(
        tmp_path: Path, mosquitto: Mosquitto, unique_device: str) -> None:
    cfg = _cfg(mosquitto.port, unique_device, tmp_path)
    cfg.spool.replay_rate = 2000
    sub = Subscriber(mosquitto.port, [f"spinesense/{unique_device}/#"], f"s-{unique_device}")
    spool = Spool(tmp_path / "spool.db")
    _fill(spool, 500, unique_device)
    pub = Publisher(cfg, inflight=16)
    pub.start()
    try:
        assert pub.connected.wait(PATIENCE)
        peak = 0

        def step() -> None:
            nonlocal peak
            pub.pump(spool)
            peak = max(peak, pub.unacked)
        assert _wait(lambda: spool.backlog == 0 and pub.unacked == 0, step=step)
        assert peak <= 16  # the inflight window holds
        assert _wait(lambda: len(sub.seqs("events")) + len(sub.seqs("metrics")) == 500)
        everything = [m["seq"] for t, m, _ in sub.got if not t.endswith("/status")]
        assert everything == list(range(1, 501))  # in order, exactly once
        assert sub.seqs("events") == list(range(1, 501, 5))
    finally:
        pub.stop({"state": "offline"})
        sub.close()


def test_replay_is_rate_limited(tmp_path: Path, mosquitto: Mosquitto,
                                unique_device: str) -> None:
    cfg = _cfg(mosquitto.port, unique_device, tmp_path)
    cfg.spool.replay_rate = 200
    spool = Spool(tmp_path / "spool.db")
    _fill(spool, 400, unique_device)
    pub = Publisher(cfg, inflight=50)
    pub.start()
    try:
        assert pub.connected.wait(PATIENCE)
        t0 = time.monotonic()
        assert pub.drain(spool, PATIENCE)
        elapsed = time.monotonic() - t0
        # 400 messages at 200/s with a 50-message burst allowance: at least ~1.75 s
        assert elapsed >= (400 - 50) / 200 * 0.9, elapsed
    finally:
        pub.stop(None)


_VANISHING_EDGE = """
import sys, time
from spinesense.config import Config
from spinesense.edge.publisher import RESEND_MAX_S, Publisher
cfg = Config()
cfg.device.id, cfg.mqtt.host, cfg.mqtt.port = sys.argv[1], "127.0.0.1", int(sys.argv[2])
pub = Publisher(cfg)
pub.start()
assert pub.connected.wait(120)
pub.publish_status({"state": "online", "sensor": "ok"}).wait_for_publish(120)
print("online", flush=True)
time.sleep(600)
"""


def test_retained_status_and_last_will_when_the_edge_vanishes(
        tmp_path: Path, mosquitto: Mosquitto, unique_device: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _VANISHING_EDGE, unique_device,
                             str(mosquitto.port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "online"
        late = Subscriber(mosquitto.port, [f"spinesense/{unique_device}/status"],
                          f"late-{unique_device}")
        assert _wait(lambda: late.of_type("status"))
        _topic, first, retained = late.got[0]
        assert retained and first["data"]["state"] == "online"
        proc.kill()  # a power cut: no goodbye, the broker publishes the will
        assert _wait(lambda: any(m["data"]["state"] == "offline"
                                 for m in late.of_type("status")))
        offline = late.of_type("status")[-1]
        assert offline["data"]["reason"] == "connection lost"
        late.close()
        again = Subscriber(mosquitto.port, [f"spinesense/{unique_device}/status"],
                           f"again-{unique_device}")
        assert _wait(lambda: again.got)
        assert again.got[0][2] and again.got[0][1]["data"]["state"] == "offline"  # retained
        again.close()
    finally:
        proc.kill()
        proc.wait()


def test_password_auth_from_the_environment_and_refusal(
        tmp_path: Path, mosquitto_factory, unique_device: str, monkeypatch, caplog) -> None:
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "edge", "s3cret"], check=True)
    pwfile.chmod(0o644)
    broker = mosquitto_factory(extra=f"password_file {pwfile}", anonymous=False)
    from spinesense.config import load

    toml = tmp_path / "c.toml"
    toml.write_text(f'[device]\nid = "{unique_device}"\nstate_dir = "{tmp_path}"\n'
                    f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "edge"\n'
                    'reconnect_max_s = 1.0\n[spool]\ndelete_on = "puback"\n')
    monkeypatch.setenv("SPINESENSE_MQTT_PASSWORD", "wrong")
    spool = Spool(tmp_path / "spool.db")
    _fill(spool, 3, unique_device)
    bad = Publisher(load(toml), client_id="bad")
    bad.start()
    assert _wait(lambda: "broker refused the connection" in caplog.text)
    assert not bad.connected.is_set()
    for _ in range(20):
        bad.pump(spool)
    assert spool.backlog == 3  # refused: nothing is lost
    bad.stop(None)
    monkeypatch.setenv("SPINESENSE_MQTT_PASSWORD", "s3cret")
    good = Publisher(load(toml), client_id="good")
    good.start()
    try:
        assert good.connected.wait(PATIENCE)
        assert good.drain(spool, PATIENCE) and spool.backlog == 0
    finally:
        good.stop({"state": "offline"})


def _make_certs(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, with the openssl CLI."""
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca_key, ca, key, csr, crt = (d / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr",
                                                   "srv.crt"))
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", str(ca_key), "-out", str(ca))
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(csr))
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
    for p in (ca, key, crt):
        p.chmod(0o644)
    return ca, crt, key


def test_tls_connection_with_a_private_ca(tmp_path: Path, mosquitto_factory,
                                          unique_device: str) -> None:
    ca, crt, key = _make_certs(tmp_path)
    broker = mosquitto_factory(extra=f"cafile {ca}\ncertfile {crt}\nkeyfile {key}")
    cfg = _cfg(broker.port, unique_device, tmp_path, tls=True, ca_file=str(ca))
    sub = Subscriber(broker.port, [f"spinesense/{unique_device}/events"], "tls-sub",
                     tls_ca=str(ca))
    spool = Spool(tmp_path / "spool.db")
    spool.add([("events", schema.make_message(unique_device, 0, 1, "slouch_start"), None)])
    pub = Publisher(cfg)
    pub.start()
    try:
        assert pub.connected.wait(PATIENCE)
        assert pub.drain(spool, PATIENCE)
        assert _wait(lambda: sub.seqs("events") == [1])
    finally:
        pub.stop(None)
        sub.close()


def test_mqtt_311_works_too(tmp_path: Path, mosquitto: Mosquitto, unique_device: str) -> None:
    cfg = _cfg(mosquitto.port, unique_device, tmp_path, protocol="v311")
    sub = Subscriber(mosquitto.port, [f"spinesense/{unique_device}/+"], f"s311-{unique_device}")
    spool = Spool(tmp_path / "spool.db")
    _fill(spool, 20, unique_device)
    pub = Publisher(cfg)
    pub.start()
    try:
        assert pub.connected.wait(PATIENCE)
        assert pub.drain(spool, PATIENCE)
        assert _wait(lambda: len(sub.seqs("events")) + len(sub.seqs("metrics")) == 20)
    finally:
        pub.stop(None)
        sub.close()


def test_commands_sent_while_offline_arrive_with_the_persistent_session(
        tmp_path: Path, mosquitto: Mosquitto, unique_device: str) -> None:
    cfg = _cfg(mosquitto.port, unique_device, tmp_path)
    first = Publisher(cfg)
    subscribed = threading.Event()
    first.client.on_subscribe = lambda *a: subscribed.set()
    first.start()
    assert first.connected.wait(PATIENCE)
    assert subscribed.wait(PATIENCE)  # the broker holds the cmd subscription
    first.stop({"state": "offline"})  # a clean stop keeps the session (expiry: a week)
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", mosquitto.port)
    sender.loop_start()
    sender.publish(f"spinesense/{unique_device}/cmd", b'{"cmd": "status"}',
                   qos=1).wait_for_publish(5)
    sender.loop_stop()
    sender.disconnect()
    second = Publisher(cfg)
    second.start()
    try:
        assert second.connected.wait(PATIENCE)
        assert second.commands.get(timeout=PATIENCE) == (b'{"cmd": "status"}', False)
    finally:
        second.stop(None)


def test_reconnect_backoff_is_exponential_jittered_and_capped(tmp_path: Path) -> None:
    cfg = _cfg(1883, "d", tmp_path)
    cfg.mqtt.reconnect_max_s = 8.0
    pub = Publisher(cfg)
    delays = []
    for _ in range(12):
        pub._backoff()
        delays.append(pub.client._reconnect_min_delay)
    caps = [min(8.0, 0.5 * 2 ** i) for i in range(12)]
    assert all(cap / 2 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len({round(d, 6) for d in delays[-6:]}) > 1  # jittered, not lock-step
    assert max(delays) <= 8.0


# -- end-to-end confirmation: the collector's stored mark, not the PUBACK, deletes ----------

def _stored_cfg(port: int, device: str, tmp_path: Path, resend_after_s: float) -> Config:
    cfg = _cfg(port, device, tmp_path)
    cfg.spool.delete_on = "stored"
    cfg.spool.resend_after_s = resend_after_s
    cfg.spool.replay_rate = 5000
    return cfg


def _publish_mark(port: int, device: str, mark: int) -> None:
    """What a collector does after a write: a retained QoS 1 stored mark."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    msg = schema.make_message(device, mark, int(time.time() * 1000), "stored",
                              {"above": [], "by": "test"})
    client.publish(f"spinesense/{device}/stored", schema.encode(msg), qos=1,
                   retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def test_only_the_stored_mark_deletes_and_unconfirmed_messages_are_resent(
        tmp_path: Path, mosquitto: Mosquitto, unique_device: str) -> None:
    # no re-send while the first send is checked, however slowly a loaded machine runs
    cfg = _stored_cfg(mosquitto.port, unique_device, tmp_path, resend_after_s=RESEND_MAX_S)
    sub = Subscriber(mosquitto.port, [f"spinesense/{unique_device}/+"], f"m-{unique_device}")
    spool = Spool(tmp_path / "spool.db")
    _fill(spool, 100, unique_device)
    pub = Publisher(cfg, inflight=200)
    pub.start()
    try:
        assert pub.connected.wait(PATIENCE)
        step = lambda: pub.pump(spool)  # noqa: E731
        assert _wait(lambda: len(sub.seqs("events")) + len(sub.seqs("metrics")) == 100,
                     step=step)
        assert _wait(lambda: pub.unacked == 0, step=step)
        # every message was PUBACKed, none is confirmed: nothing may go
        assert spool.backlog == 100 and pub.unconfirmed(spool) == 100
        sent = [m for t, m, _ in sub.got if not t.endswith("/status")]
        assert [m["seq"] for m in sent] == list(range(1, 101))
        assert [m["prev"] for m in sent] == list(range(0, 100))  # each links to the last
        _publish_mark(mosquitto.port, unique_device, 40)
        pub.resend_after_s = 1.5  # as configured; the mark's progress starts this wait
        assert _wait(lambda: spool.backlog == 60, step=step)
        assert spool.first_seq() == 41 and pub.unconfirmed(spool) == 60
        # 41..100 stay unconfirmed: after resend_after_s they go again, in order, once
        data = lambda: [m for t, m, _ in sub.got if t.rsplit("/", 1)[1] in  # noqa: E731
                        ("events", "metrics")]
        assert _wait(lambda: len(data()) >= 160, step=step)
        again = data()[100:160]  # (a slow run may see the doubled wait's next re-send)
        assert [m["seq"] for m in again] == list(range(41, 101))
        assert {k: v for k, v in again[0].items() if k != "prev"} == {
            k: v for k, v in sent[40].items() if k != "prev"}  # the same message
        assert again[0]["prev"] == 0  # nothing below 41 is held any more
        _publish_mark(mosquitto.port, unique_device, 100)
        assert pub.drain(spool, PATIENCE) and spool.backlog == 0
        assert pub.unconfirmed(spool) == 0
    finally:
        pub.stop(None)
        sub.close()


def test_a_restarted_edge_deletes_by_the_retained_mark_before_sending(
        tmp_path: Path, mosquitto: Mosquitto, unique_device: str) -> None:
    cfg = _stored_cfg(mosquitto.port, unique_device, tmp_path, resend_after_s=30)
    spool = Spool(tmp_path / "spool.db")
    _fill(spool, 50, unique_device)
    _publish_mark(mosquitto.port, unique_device, 30)  # stored while the edge was down
    sub = Subscriber(mosquitto.port, [f"spinesense/{unique_device}/events",
                                      f"spinesense/{unique_device}/metrics"],
                     f"r-{unique_device}")
    pub = Publisher(cfg, inflight=100)
    pub.start()
    try:
        assert pub.connected.wait(PATIENCE)
        # the product waits MARK_WAIT_S for the retained mark, then sends anyway (harmless
        # duplicates); this test is about what a mark that did arrive deletes
        assert pub._mark_arrived.wait(PATIENCE)
        assert _wait(lambda: len(sub.got) >= 20, step=lambda: pub.pump(spool))
        time.sleep(0.5)  # anything sent beyond those 20 would show up here
        assert [m["seq"] for _, m, _ in sub.got] == list(range(31, 51))
        assert sub.got[0][1]["prev"] == 0  # nothing below 31 is held any more
    finally:
        pub.stop(None)
        sub.close()


def test_a_mark_from_an_earlier_spool_is_ignored(
        tmp_path: Path, mosquitto: Mosquitto, unique_device: str, caplog) -> None:
    cfg = _stored_cfg(mosquitto.port, unique_device, tmp_path, resend_after_s=30)
    _publish_mark(mosquitto.port, unique_device, 5000)  # the device was reinstalled
    spool = Spool(tmp_path / "spool.db")
    _fill(spool, 10, unique_device)
    pub = Publisher(cfg)
    pub.start()
    try:
        assert pub.connected.wait(PATIENCE)
        assert _wait(lambda: pub._mark_arrived.is_set())
        for _ in range(50):
            pub.pump(spool)
            time.sleep(0.01)
        assert spool.backlog == 10
        assert "belongs to an earlier spool" in caplog.text
    finally:
        pub.stop(None)


def test_broker_outage_is_logged_first_then_with_its_length(
        tmp_path: Path, unique_device: str, caplog, monkeypatch) -> None:
    import logging

    from spinesense.devservers import free_port
    from spinesense.edge import publisher as publisher_module

    monkeypatch.setattr(publisher_module, "OUTAGE_LOG_FIRST_S", 1.0)
    port = free_port()
    cfg = _cfg(port, unique_device, tmp_path)
    cfg.mqtt.reconnect_max_s = 1.0
    caplog.set_level(logging.INFO, logger="spinesense.edge.publisher")
    pub = Publisher(cfg)
    pub.start()
    broker = Mosquitto(tmp_path / "late", port=port)
    try:
        assert _wait(lambda: "unreachable for" in caplog.text)
        first = caplog.text.index(f"cannot reach the broker at 127.0.0.1:{port}")
        assert first < caplog.text.index("unreachable for")
        assert caplog.text.count("cannot reach") == 1  # once, then the backed-off reports
        broker.start()
        assert pub.connected.wait(PATIENCE)
        assert "without the broker" in caplog.text
        assert pub.outage_s == 0.0
    finally:
        pub.stop(None)
        broker.stop()


def test_prev_links_step_over_metrics_the_spool_bound_dropped(
        tmp_path: Path, mosquitto: Mosquitto, unique_device: str) -> None:
    cfg = _stored_cfg(mosquitto.port, unique_device, tmp_path, resend_after_s=30)
    sub = Subscriber(mosquitto.port, [f"spinesense/{unique_device}/events",
                                      f"spinesense/{unique_device}/metrics"],
                     f"p-{unique_device}")
    spool = Spool(tmp_path / "spool.db", max_mb=0.003, hard_cap_mb=1.0)
    _fill(spool, 60, unique_device)  # over the budget: the oldest metrics go
    assert spool.dropped_metrics > 10
    held = [seq for seq, _k, _p in spool.fetch(0, 1000)]
    pub = Publisher(cfg)
    pub.start()
    try:
        assert pub.connected.wait(PATIENCE)
        assert _wait(lambda: len(sub.got) == len(held), step=lambda: pub.pump(spool))
        got = [m for _, m, _ in sub.got]
        assert [m["seq"] for m in got] == held
        # each message names the next lower seq still held: what lies between is gone
        assert [m["prev"] for m in got] == [0, *held[:-1]]
        assert any(m["seq"] - m["prev"] > 1 for m in got)
    finally:
        pub.stop(None)
        sub.close()


def test_an_unreachable_broker_is_reported_truthfully_at_stop(tmp_path: Path) -> None:
    """The whole run without a broker: the stop message gives the outage's real length,
    not the drain timeout."""
    import re

    from spinesense.devservers import free_port

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path}"\n[mqtt]\nport = {free_port()}\n'
                   'reconnect_max_s = 1.0\n')
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "spinesense", "edge", "run", "-c", str(cfg),
                          "--emulate", "mpu6050", "--duration", "160", "--speed", "20",
                          "--drain-timeout", "1"], capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    assert res.returncode == 3, res.stderr[-2000:]
    assert res.stderr.count("cannot reach the broker") == 1, res.stderr[-2000:]
    found = re.search(r"still spooled \(the broker has been unreachable for (\d+) s\)",
                      res.stderr)
    assert found, res.stderr[-2000:]
    assert 7 <= int(found.group(1)) <= wall + 1  # the run lasted 8 s: not the 1 s drain
