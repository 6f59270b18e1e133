"""The shipped broker security (deploy/mosquitto): its real config, ACL and a password
file made by deploy/add-device.sh, with TLS certificates from deploy/make-certs.sh."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from collector_harness import CollectorProc, count_points, event, wait_for, write_config
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from spinesense.devservers import Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def add_device(passwd: Path, *args: str) -> dict:
    out = subprocess.run(["bash", str(DEPLOY / "add-device.sh"), "--passwd", str(passwd),
                          "--acl", str(passwd.parent.parent / "acl"), "--host", "localhost",
                          *args], capture_output=True, text=True, check=True).stdout
    return tomllib.loads(out)


def start_secure_broker(d: Path, drop: str = "") -> tuple[Mosquitto, dict]:
    """Mosquitto running deploy/mosquitto/mosquitto.conf with only paths and ports changed
    (and the line ``drop`` removed, for a control experiment), with accounts made by
    add-device.sh: devices alice and bob, collectors collector.spinesense and collector.b,
    and operator.spinesense."""
    subprocess.run(["bash", str(DEPLOY / "make-certs.sh"), str(d / "secrets" / "certs"),
                    "localhost", "IP:127.0.0.1"], check=True, capture_output=True)
    (d / "acl").write_text((DEPLOY / "mosquitto" / "acl").read_text())
    passwd = d / "secrets" / "passwd"
    creds = {name: add_device(passwd, name)["mqtt"] for name in ("alice", "bob")}
    creds["collector"] = add_device(passwd, "--collector")["mqtt"]
    creds["collector_b"] = add_device(passwd, "--collector", "b")["mqtt"]
    creds["operator"] = {"username": "operator.spinesense", "password": "op-secret"}
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "operator.spinesense",
                    "op-secret"], check=True)
    plain, tls = free_port(), free_port()
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/config/", f"{d}/").replace("/mosquitto/data/", f"{d}/")
    conf = conf.replace("listener 1883 127.0.0.1", f"listener {plain} 127.0.0.1")
    conf = re.sub(r"^listener 8883$", f"listener {tls} 127.0.0.1", conf, flags=re.M)
    assert str(tls) in conf and str(plain) in conf
    if drop:
        assert drop in conf
        conf = conf.replace(drop, "")
    if os.geteuid() == 0:
        conf += "user root\n"  # DESIGN B4: as root mosquitto would drop to user mosquitto
    broker = Mosquitto(d, port=plain)
    broker.conf.write_text(conf)
    broker.start()
    return broker, {"port": plain, "tls_port": tls, "creds": creds,
                    "ca": str(d / "secrets" / "certs" / "ca.crt")}


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    broker, info = start_secure_broker(tmp_path_factory.mktemp("secure"))
    yield info
    broker.stop()


class Client:
    """A paho client that records what it receives and the PUBACK reason codes."""

    def __init__(self, port: int, user: str = "", password: str = "", *, v5: bool = True,
                 ca: str = "", client_id: str = "", persistent: bool = False):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if user:
            self.c.username_pw_set(user, password)
        if ca:
            self.c.tls_set(ca_certs=ca)
        self.received: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, object] = {}
        self.suback: list = []
        self.connack = threading.Event()
        self.rc = None
        self.session_present = None
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.c.on_publish = lambda _c, _u, mid, rc, _p=None: self.pubacks.__setitem__(mid, rc)
        self.c.on_subscribe = lambda _c, _u, _m, rcs, _p=None: self.suback.extend(rcs)
        props = None
        if persistent:  # a session the broker keeps (and queues for) while we are away
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        if v5:
            self.c.connect("127.0.0.1", port, 30, clean_start=not persistent, properties=props)
        else:
            self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        self.connack.wait(10)

    def _on_connect(self, _c, _u, flags, rc, _p=None):
        self.rc = rc
        self.session_present = flags.session_present
        self.connack.set()

    @property
    def ok(self) -> bool:
        return self.rc is not None and not self.rc.is_failure

    def subscribe(self, topic: str) -> None:
        self.c.subscribe(topic, qos=1)
        wait_for(lambda: self.suback, 5, 0.02, what="SUBACK")

    def publish(self, topic: str, payload: bytes) -> object:
        info = self.c.publish(topic, payload, qos=1)
        return wait_for(lambda: self.pubacks.get(info.mid), 5, 0.02, what="PUBACK")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_anonymous_and_wrong_password_are_refused(secure_broker):
    anon = Client(secure_broker["port"])
    assert anon.rc is not None and anon.rc.is_failure, "anonymous client was let in"
    anon.close()
    bad = Client(secure_broker["port"], "alice", "not-the-password")
    assert bad.rc is not None and bad.rc.is_failure, "a wrong password was accepted"
    bad.close()


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v311"])
def test_device_cannot_publish_into_another_devices_topics(secure_broker, v5):
    creds = secure_broker["creds"]
    watcher = Client(secure_broker["port"], creds["collector"]["username"],
                     creds["collector"]["password"])
    assert watcher.ok
    watcher.subscribe("spinesense/+/events")
    alice = Client(secure_broker["port"], "alice", creds["alice"]["password"], v5=v5)
    assert alice.ok
    now = int(time.time() * 1000)
    forged = alice.publish("spinesense/bob/events", event("bob", 1, now))
    if v5:  # MQTT v5 tells the publisher: PUBACK reason code 135, not authorised
        assert forged.value == 135 and forged.is_failure, forged
    own = alice.publish("spinesense/alice/events", event("alice", 2, now))
    assert not own.is_failure
    wait_for(lambda: watcher.received, 5, what="alice's own event")
    time.sleep(0.5)
    assert [t for t, _ in watcher.received] == ["spinesense/alice/events"], \
        "a message forged into bob's topic was delivered"
    alice.close()
    watcher.close()


def test_device_reads_only_its_own_commands(secure_broker):
    creds = secure_broker["creds"]
    alice = Client(secure_broker["port"], "alice", creds["alice"]["password"])
    alice.subscribe("spinesense/+/cmd")  # a wildcard is allowed, but filtered per message
    collector = Client(secure_broker["port"], creds["collector"]["username"],
                       creds["collector"]["password"])
    # the collector account has no right to send commands either
    refused = collector.publish("spinesense/alice/cmd", b'{"cmd":"snooze"}')
    assert refused.is_failure
    bob = Client(secure_broker["port"], "bob", creds["bob"]["password"])
    assert bob.publish("spinesense/alice/cmd", b'{"cmd":"snooze"}').is_failure
    time.sleep(0.5)
    assert alice.received == []
    for c in (alice, collector, bob):
        c.close()


def test_tls_listener_accepts_devices_with_the_ca(secure_broker):
    creds = secure_broker["creds"]
    alice = Client(secure_broker["tls_port"], "alice", creds["alice"]["password"],
                   ca=secure_broker["ca"])
    assert alice.ok, alice.rc
    assert not alice.publish("spinesense/alice/status", b"{}").is_failure
    alice.close()


def test_collector_account_stores_device_data_end_to_end(secure_broker, influxd, unique_db,
                                                         tmp_path):
    creds = secure_broker["creds"]
    cfg = write_config(tmp_path / "c.toml", mqtt_port=secure_broker["port"],
                       influx_url=influxd.url, db=unique_db,
                       mqtt_extra={"username": creds["collector"]["username"],
                                   "password": creds["collector"]["password"]},
                       collector={"dead_letter_topic": "spinesense/_deadletter"})
    proc = CollectorProc(cfg, "sec", tmp_path).start()
    try:
        alice = Client(secure_broker["port"], "alice", creds["alice"]["password"])
        now = int(time.time() * 1000)
        for seq in range(20):
            assert not alice.publish("spinesense/alice/events",
                                     event("alice", seq, now - 1000 + seq)).is_failure
        wait_for(lambda: count_points(influxd, unique_db, "posture_event") == 20, 20,
                 what="alice's events stored")
        alice.close()
    finally:
        assert proc.terminate() == 0
    assert "refused the connection" not in proc.log()


def steal_attempt(info: dict) -> tuple[list, list, int]:
    """alice connects under the collector's and under bob's client ids (persistent, as a
    session takeover would) while both are away with messages queued for them. Returns
    what alice received, what the owners received when they came back, and how many
    messages were queued for each."""
    creds, port = info["creds"], info["port"]
    col_id = "collector.spinesense"  # its session (and the id it may ask for)
    collector = Client(port, creds["collector"]["username"], creds["collector"]["password"],
                       client_id=col_id, persistent=True)
    collector.subscribe("spinesense/+/events")
    bob = Client(port, "bob", creds["bob"]["password"], client_id="bob", persistent=True)
    bob.subscribe("spinesense/bob/cmd")
    collector.close()
    now = int(time.time() * 1000)
    n = 5  # bob's events, queued in the collector's session while it is away
    for seq in range(n):
        assert not bob.publish("spinesense/bob/events", event("bob", seq, now + seq)).is_failure
    bob.close()
    operator = Client(port, creds["operator"]["username"], creds["operator"]["password"])
    for _ in range(n):
        assert not operator.publish("spinesense/bob/cmd", b'{"cmd":"status"}').is_failure
    operator.close()
    stolen = []
    for victim_id in (col_id, "spinesense-collector-server", "bob"):
        alice = Client(port, "alice", creds["alice"]["password"], client_id=victim_id,
                       persistent=True)
        assert alice.ok
        time.sleep(0.7)
        stolen += alice.received
        alice.close()
    back = []
    for user, cid in (("collector", col_id), ("bob", "bob")):
        owner = Client(port, creds[user]["username"], creds[user]["password"], client_id=cid,
                       persistent=True)
        deadline = time.monotonic() + 3
        while len(owner.received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        back += owner.received
        owner.close()
    return stolen, back, n


def test_session_takeover_is_refused_by_the_shipped_config(tmp_path):
    """use_username_as_clientid: whatever client id alice asks for, her session is hers;
    the collector's and bob's queued messages wait for them. (A broker of its own: the
    sessions other tests leave behind would add deliveries.)"""
    broker, info = start_secure_broker(tmp_path)
    try:
        stolen, back, n = steal_attempt(info)
    finally:
        broker.stop()
    assert stolen == [], f"alice received another account's queued messages: {stolen[:3]}"
    assert sorted(t for t, _ in back) == ["spinesense/bob/cmd"] * n + \
        ["spinesense/bob/events"] * n


def test_session_takeover_works_without_the_binding(tmp_path):
    """The control experiment: the same broker without use_username_as_clientid lets alice
    take the sessions (so the test above would see the attack). The ACL still keeps the
    foreign messages from her, but they are gone: the owners come back to nothing."""
    broker, info = start_secure_broker(tmp_path, drop="use_username_as_clientid true")
    try:
        stolen, back, n = steal_attempt(info)
    finally:
        broker.stop()
    assert stolen or len(back) < 2 * n, "the takeover had no effect: the test cannot see it"


def test_several_collector_accounts_share_one_group(secure_broker, influxd, unique_db,
                                                    tmp_path):
    """Two collector instances, each with its own account (add-device.sh --collector b),
    in one shared group: every event is stored once and both take a share."""
    creds = secure_broker["creds"]
    procs = []
    for name, key in (("spinesense", "collector"), ("b", "collector_b")):
        cfg = write_config(tmp_path / f"{name}.toml", mqtt_port=secure_broker["port"],
                           influx_url=influxd.url, db=unique_db,
                           mqtt_extra={"username": creds[key]["username"],
                                       "password": creds[key]["password"]},
                           collector={"group": "spinesense"})
        procs.append(CollectorProc(cfg, name, tmp_path).start())
    try:
        alice = Client(secure_broker["port"], "alice", creds["alice"]["password"])
        now = int(time.time() * 1000)
        n = 200
        for seq in range(n):
            alice.c.publish("spinesense/alice/events", event("alice", seq, now - 5000 + seq),
                            qos=1)
        wait_for(lambda: count_points(influxd, unique_db, "posture_event") == n, 30,
                 what="alice's events stored")
        alice.close()
    finally:
        codes = [p.terminate() for p in procs]
    assert codes == [0, 0]
    shares = [int(re.search(r"stopped: (\d+) in", p.log()).group(1)) for p in procs]
    assert sum(shares) == n and min(shares) > 0, shares
