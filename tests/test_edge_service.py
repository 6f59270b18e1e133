"""`spinesense edge run` end to end on a real Mosquitto: outage, power cuts, bad commands.

The edge runs as a child process on an emulated sensor in accelerated time. A witness
subscribes with a persistent QoS 1 session and records every message with its seq; the
edge's events and metrics share one sequence, so "nothing lost" means every seq from 1
to the last one spooled arrived.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mqtt_witness import Witness

from spinesense.devservers import Mosquitto

EXE = [sys.executable, "-m", "spinesense"]
# Deadlines for conditions that normally hold within seconds. They are generous because CI
# shares two cores with other work: starting Python and SciPy alone can then take 20 s.
# A deadline only bounds a wait; it never makes a test pass.
PATIENCE = 180.0


def _config(tmp_path: Path, device: str, port: int) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(f"""[device]
id = "{device}"
state_dir = "{tmp_path / 'state'}"
[mqtt]
host = "127.0.0.1"
port = {port}
reconnect_max_s = 2.0
[spool]
replay_rate = 2000.0
delete_on = "puback"  # no collector here: these tests are about the edge-broker leg
""")
    return path


def _edge(cfg: Path, *args: str, env: dict | None = None, log: Path | None = None
          ) -> subprocess.Popen:
    return subprocess.Popen(
        [*EXE, "edge", "run", "-c", str(cfg), "--emulate", "mpu6050", "--scenario", "mixed",
         *args], stdout=subprocess.DEVNULL,
        stderr=log.open("ab") if log else subprocess.PIPE, env={**os.environ, **(env or {})})


def _spool(state: Path, above: int = 0) -> tuple[int, int]:
    """(last seq the edge gave out, messages with seq > ``above`` it still holds), read
    from its spool database beside it (read-only); (0, 0) before the edge created it."""
    path = state / "spool.sqlite3"
    if not path.exists():
        return 0, 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
            held = db.execute("SELECT count(*) FROM outbox WHERE seq > ?",
                              (above,)).fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # the edge is still creating it
        return 0, 0
    return (row[0] if row else 0), held


def _last_spooled(state: Path) -> int:
    return _spool(state)[0]


def _wait(cond, timeout: float = PATIENCE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _wait_running(edge: subprocess.Popen, cond, log: Path, what: str) -> None:
    """Wait for ``cond`` while the edge keeps running; fail with its log otherwise."""
    deadline = time.monotonic() + PATIENCE
    while not cond():
        assert edge.poll() is None, f"the edge exited before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {PATIENCE:g} s:\n" \
                                            f"{log.read_text()[-3000:]}"
        time.sleep(0.05)


def _assert_delivered(deliveries: list[tuple[dict, bool]], last: int, *,
                      edge_dups_ok: bool) -> None:
    """Every seq 1..last arrived, first arrivals in seq order, copies identical.

    A copy the broker re-sends to the witness carries DUP (the witness's own QoS 1 leg:
    its PUBACK was lost in the outage); a copy the *edge* sent twice arrives as a fresh
    delivery, because a broker never forwards the publisher's DUP flag (MQTT 3.3.1.1).
    So fresh deliveries count what the edge did: with ``edge_dups_ok`` False, each seq
    must be fresh exactly once.
    """
    seen: dict[int, dict] = {}
    order, fresh = [], []
    for m, dup in deliveries:
        if not dup:
            fresh.append(m["seq"])
        if m["seq"] in seen:
            assert m == seen[m["seq"]], f"seq {m['seq']}: a copy must be the same message"
        else:
            seen[m["seq"]] = m
            order.append(m["seq"])
    assert order == sorted(order), "messages arrived out of sequence order"
    missing = sorted(set(range(1, last + 1)) - set(seen))
    assert not missing, f"{len(missing)} seqs never arrived, e.g. {missing[:10]}"
    assert max(seen) == last
    if not edge_dups_ok:
        repeated = sorted({s for s in fresh if fresh.count(s) > 1})
        assert not repeated, f"the edge published seqs {repeated[:10]} twice"


def _run_with_outage(tmp_path: Path, mosquitto_factory, device: str, outage_s: float,
                     *, sigkill: bool) -> None:
    broker = mosquitto_factory()
    witness = Witness(broker.port, device)
    cfg = _config(tmp_path, device, broker.port)
    log = tmp_path / "edge.log"
    state = tmp_path / "state"
    # simulated minutes at 60x are real seconds: the run goes on well after the outage
    edge = _edge(cfg, "--seed", "5", "--speed", "60", "--duration", f"{outage_s + 40:g}m",
                 "--drain-timeout", "90", log=log)
    try:
        _wait_running(edge, lambda: len(witness.sequenced()) >= 10, log,
                      "10 messages at the witness")
        before = len(witness.sequenced())
        broker.kill() if sigkill else broker.stop()
        down_from = _last_spooled(state)
        time.sleep(outage_s)  # the outage itself, at least this long ...
        # ... and long enough for the edge to spool a backlog it must replay afterwards
        _wait_running(edge, lambda: _last_spooled(state) >= down_from + 10, log,
                      "backlog spooled during the outage")
        broker.start()
        assert edge.wait(PATIENCE * 3) == 0, log.read_text()[-3000:]
        last = _last_spooled(state)
        assert _wait(lambda: len({m["seq"] for m in witness.sequenced()}) >= last), \
            f"the witness got {len({m['seq'] for m in witness.sequenced()})} of {last} seqs"
        time.sleep(1.0)  # a late duplicate would show up here
        msgs = witness.sequenced()
        assert before < last - 20, "the outage must fall in the middle of the run"
        reconnected = log.read_text().split("disconnected", 1)[1]
        assert "stopping (duration reached)" in reconnected.split("connected (session")[1]
        _assert_delivered(witness.deliveries(), last, edge_dups_ok=sigkill)
        events = [m for m in msgs if m["type"] != "metric"]
        assert {"slouch_start", "slouch_end"} <= {m["type"] for m in events}
        assert "disconnected" in log.read_text()
    finally:
        if edge.poll() is None:
            edge.kill()
        witness.close()


def test_broker_outage_short_sigkill(tmp_path: Path, mosquitto_factory,
                                     unique_device: str) -> None:
    """A broker crash (SIGKILL) for 8 s: nothing lost, order kept. A crashed broker may
    redeliver what it had not yet saved: duplicates are allowed only as the same seq and
    the same message (the collector's point identity absorbs them)."""
    _run_with_outage(tmp_path, mosquitto_factory, unique_device, 8.0, sigkill=True)


@pytest.mark.slow
def test_broker_outage_60s_exactly_once(tmp_path: Path, mosquitto_factory,
                                        unique_device: str) -> None:
    """The broker is down for a full 60 s: every event and metric arrives exactly once,
    in seq order."""
    _run_with_outage(tmp_path, mosquitto_factory, unique_device, 60.0, sigkill=False)


@pytest.mark.slow
def test_power_cuts_lose_nothing_spooled(tmp_path: Path, mosquitto_factory,
                                         unique_device: str) -> None:
    broker = mosquitto_factory()
    witness = Witness(broker.port, unique_device)
    cfg = _config(tmp_path, unique_device, broker.port)
    log = tmp_path / "edge.log"
    state = tmp_path / "state"
    rng = random.Random(os.getpid())
    edge: subprocess.Popen | None = None
    try:
        for cut in range(3):
            start_seq = _last_spooled(state)
            edge = _edge(cfg, "--seed", str(cut), "--speed", "300", "--duration", "2h",
                         log=log)
            # the cut falls at a random point of the run, measured in messages spooled (so
            # never during start-up, however slowly a loaded machine gets there)
            target = start_seq + rng.randint(10, 150)
            _wait_running(edge, lambda t=target: _last_spooled(state) >= t, log,
                          f"seq {target} spooled (cut {cut})")
            if cut == 1:  # the Wi-Fi hangs first: PUBACKs stop, a backlog builds up
                broker.proc.send_signal(signal.SIGSTOP)
                frozen = _last_spooled(state)
                _wait_running(edge, lambda f=frozen: _spool(state, above=f)[1] >= 10, log,
                              "backlog while the broker hangs")
            edge.send_signal(signal.SIGKILL)  # the battery runs flat
            edge.wait(30)
            if cut == 1:
                # what the cut left behind was never acknowledged: the next start has it
                assert _spool(state, above=frozen)[1] >= 10
                broker.proc.send_signal(signal.SIGCONT)
        edge = _edge(cfg, "--seed", "9", "--speed", "300", "--duration", "20m", log=log)
        assert edge.wait(PATIENCE * 2) == 0, log.read_text()[-3000:]
        last = _last_spooled(state)
        assert _wait(lambda: len({m["seq"] for m in witness.sequenced()}) >= last), \
            f"the witness got {len({m['seq'] for m in witness.sequenced()})} of {last} seqs"
        assert last > 100
        _assert_delivered(witness.deliveries(), last, edge_dups_ok=True)
        assert "messages waiting" in log.read_text()  # a restart found unacknowledged ones
        offline = lambda: [s for s in witness.status()  # noqa: E731
                           if s["data"].get("state") == "offline"]
        assert _wait(lambda: offline() and offline()[-1]["data"]["reason"] == "stopped"), \
            offline()
        assert any(s["data"].get("reason") == "connection lost" for s in offline())  # the will
    finally:
        if edge is not None and edge.poll() is None:
            edge.kill()
        if broker.proc is not None and broker.proc.poll() is None:
            broker.proc.send_signal(signal.SIGCONT)  # a failure while it hung
        witness.close()


class NotifySocket:
    """Plays systemd's side of sd_notify: collects what the service sends."""

    def __init__(self, tmp_path: Path):
        self.path = str(tmp_path / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.notes: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        while self.running:
            with contextlib.suppress(TimeoutError):
                self.notes.append(self.sock.recv(256).decode())

    def close(self) -> list[str]:
        """Stop collecting, keep what is still queued in the socket, return it all."""
        self.running = False
        self.thread.join(5)
        if self.sock.fileno() >= 0:
            self.sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    self.notes.append(self.sock.recv(256).decode())
            self.sock.close()
        return self.notes


def test_bad_commands_are_refused_and_the_loop_keeps_running(
        tmp_path: Path, mosquitto: Mosquitto, unique_device: str) -> None:
    witness = Witness(mosquitto.port, unique_device)
    cfg = _config(tmp_path, unique_device, mosquitto.port)
    notify = NotifySocket(tmp_path)
    edge = _edge(cfg, "--seed", "2", "--speed", "100", "--log-format", "json",
                 env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"},
                 log=tmp_path / "edge.log")
    cmd_topic = f"spinesense/{unique_device}/cmd"
    try:
        _wait_running(edge, lambda: any(s["data"].get("state") == "online"
                                        for s in witness.status()), tmp_path / "edge.log",
                      "online status")
        _wait_running(edge, witness.sequenced, tmp_path / "edge.log",
                      "a metric (the pipeline has calibrated)")
        bad = [b"{not json", b'{"cmd": "dance"}', b'{"cmd": "snooze", "minutes": -5}',
               b'{"cmd": "set_thresholds", "slouch": {"threshold_deg": 400}}',
               b'{"cmd": "status", "pad": "' + b"x" * 10_000 + b'"}']
        for i, payload in enumerate(bad):
            witness.client.publish(cmd_topic, payload, qos=1)
            assert _wait(lambda i=i: len([s for s in witness.status()
                                          if s["type"] == "cmd_error"]) > i)
        errors = [s["data"]["error"] for s in witness.status() if s["type"] == "cmd_error"]
        for needle, error in zip(["not valid JSON", "unknown", "out of range", "out of range",
                                  "byte limit"], errors, strict=True):
            assert needle in error
        seq_before = max(m["seq"] for m in witness.sequenced())
        witness.client.publish(cmd_topic, json.dumps(
            {"cmd": "set_thresholds", "slouch": {"threshold_deg": 18}, "id": "t1"}), qos=1)
        witness.client.publish(cmd_topic, b'{"cmd": "snooze", "minutes": 30}', qos=1)
        witness.client.publish(cmd_topic, b'{"cmd": "status", "id": "s1"}', qos=1)
        assert _wait(lambda: len([s for s in witness.status() if s["type"] == "cmd_ok"]) >= 3)
        oks = {s["data"]["cmd"]: s["data"] for s in witness.status() if s["type"] == "cmd_ok"}
        assert oks["status"]["id"] == "s1" and oks["status"]["state"] == "online"
        assert oks["status"]["commands_refused"] == 5
        saved = json.loads((tmp_path / "state" / "thresholds.json").read_text())
        assert saved == {"slouch": {"threshold_deg": 18.0}}
        # the loop kept running: new metrics after all that
        assert _wait(lambda: max(m["seq"] for m in witness.sequenced()) > seq_before + 2)
        assert edge.poll() is None
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(PATIENCE) == 0
        assert _wait(lambda: witness.status()[-1]["data"].get("state") == "offline")
        assert witness.status()[-1]["data"]["reason"] == "stopped"
        lines = (tmp_path / "edge.log").read_text().splitlines()
        logged = [json.loads(line) for line in lines]  # --log-format json: every line
        assert any("command refused" in rec["msg"] for rec in logged)
        notes = notify.close()
        assert notes[0] == "READY=1" and "WATCHDOG=1" in notes and "STOPPING=1" in notes
    finally:
        if edge.poll() is None:
            edge.kill()
        witness.close()
        notify.close()
